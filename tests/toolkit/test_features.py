"""Filter grids, activation maps, the feature pyramid and feature visualisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import figures_pipeline as fp

from .conftest import make_tiny


def test_filter_grid_symmetric_scaling_keeps_rgb_order():
    weight = torch.zeros(2, 3, 2, 2)
    weight[0, 0] = 2.0  # filter 0: red only
    weight[1, 2, 0, 0] = -1.0  # filter 1: one negative blue pixel
    weight[1, 1, 1, 1] = 0.5
    grid = fp.filter_grid(weight)

    assert grid.shape == (4, 7, 3)  # one row of two 2x2 tiles with 1-pixel padding
    assert np.allclose(grid[0], 1.0)  # padding
    assert np.allclose(grid[1:3, 1:3], [1.0, 0.5, 0.5])  # w / (2 max|w|) + 0.5
    assert np.allclose(grid[1, 4], [0.5, 0.5, 0.0])
    assert np.allclose(grid[2, 5], [0.5, 0.75, 0.5])


def test_filter_grid_other_scales_and_grey_channels():
    weight = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]], [[[-2.0, 0.0], [0.0, 2.0]]]])  # (2, 1, 2, 2)
    minmax = fp.filter_grid(weight, scale="minmax", padding=0)
    assert minmax.shape == (2, 4, 3)
    assert np.allclose(minmax[:, :2, 0], [[0.0, 0.25], [0.5, 1.0]])
    assert np.allclose(minmax[..., 0], minmax[..., 2])  # grey tiles
    shared = fp.filter_grid(weight, scale="symmetric_global", padding=0)
    assert np.allclose(shared[:, 2:, 1], [[0.25, 0.5], [0.5, 0.75]])
    conv = nn.Conv2d(5, 4, 3)
    assert fp.filter_grid(conv, in_channel=2, columns=4).shape == (5, 17, 3)
    with pytest.raises(ValueError, match="invalid scale"):
        fp.filter_grid(weight, scale="log")


def test_activation_maps_match_forward():
    model = make_tiny(0, inplace=True)
    reference = make_tiny(0)
    x = torch.randn(1, 3, 12, 10)
    maps = fp.activation_maps(model, x, ["bn1", "relu2"])
    assert list(maps) == ["bn1", "relu2"]
    with torch.no_grad():
        bn1 = reference.bn1(reference.conv1(x))
        relu2 = reference.relu2(reference.conv2(reference.relu1(bn1)))
    # The in-place ReLU after bn1 must not reach the recorded map (it keeps negative values).
    assert torch.allclose(maps["bn1"], bn1[0], atol=1e-6)
    assert (maps["bn1"] < 0).any()
    assert maps["relu2"].shape == (8, 6, 5)
    assert torch.allclose(maps["relu2"], relu2[0], atol=1e-6)
    with pytest.raises(ValueError, match="one image"):
        fp.activation_maps(model, torch.randn(2, 3, 8, 8), ["bn1"])


def test_plot_activation_maps_draws_top_channels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = {"a": torch.arange(4.0).view(4, 1, 1).expand(4, 3, 3).clone(), "b": torch.ones(2, 2, 2)}
    figure = fp.plot_activation_maps(maps, channels=3)
    axes = figure.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == ["#3", "#2", "#1"]
    assert [ax.get_title() for ax in axes[3:5]] == ["#0", "#1"]
    plt.close(figure)


def test_feature_pyramid_tiny():
    stages = fp.feature_pyramid(make_tiny(0), torch.zeros(1, 3, 12, 12))
    assert stages == [
        ("conv1", 6, 12, 12),
        ("bn1", 6, 12, 12),
        ("relu1", 6, 12, 12),
        ("conv2", 8, 6, 6),
        ("relu2", 8, 6, 6),
        ("pool", 8, 1, 1),
    ]


def test_feature_visualisation_is_seeded_and_raises_objective():
    model = make_tiny(3)
    first = fp.feature_visualisation(model, "conv2", 2, steps=12, image_size=24, seed=1)
    again = fp.feature_visualisation(model, "conv2", 2, steps=12, image_size=24, seed=1)
    other = fp.feature_visualisation(model, "conv2", 2, steps=12, image_size=24, seed=2)
    start = fp.feature_visualisation(model, "conv2", 2, steps=0, image_size=24, seed=1)
    assert first.shape == (24, 24, 3)
    assert first.dtype == np.float32
    assert first.min() >= 0.0
    assert first.max() <= 1.0
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)

    def objective(picture: np.ndarray) -> float:
        x = torch.from_numpy(picture).permute(2, 0, 1)[None]
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        maps = fp.activation_maps(model, x, ["conv2"])
        return float(maps["conv2"][2].mean())

    # Measured: -0.004 at the start, 0.020 after 12 steps (0.049 after 30).
    assert objective(first) > objective(start) + 0.015


@pytest.mark.slow
def test_real_model_layers(real_model, chelsea_input):
    stages = fp.feature_pyramid(real_model, chelsea_input)
    assert [name for name, *_ in stages] == [
        "conv_stem", "bn1", *[f"blocks.{i}" for i in range(7)], "conv_head", "bn2",
    ]
    assert stages[-1] == ("bn2", 1280, 7, 7)
    maps = fp.activation_maps(real_model, chelsea_input, ["blocks.1", "blocks.3", "bn2"])
    assert [tuple(m.shape) for m in maps.values()] == [(24, 56, 56), (80, 14, 14), (1280, 7, 7)]
    grid = fp.filter_grid(real_model.layer("conv_stem"))
    assert grid.shape == (6 * 4 + 1, 6 * 4 + 1, 3)  # 32 filters of 3x3 in 6 columns
