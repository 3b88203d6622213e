"""Receptive fields checked against the gradient support of a linearised copy of the network."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import figures_pipeline as fp


def linearised(model: nn.Module) -> nn.Module:
    """Copy ``model`` with positive constant weights, no ReLU or BatchNorm, max-pool as average.

    A classifier head (``nn.Linear``) becomes the identity: it comes after every recorded layer.

    Every path from an input pixel to an output unit then has a positive weight, so the
    gradient of the unit is non-zero exactly on the pixels that can reach it. With constant
    weights every channel carries the same values, so each convolution becomes a one-channel
    convolution of the same geometry (kernel, stride, padding, dilation): the support is the
    same and the check runs fast.
    """
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        replacement = None
        if isinstance(module, nn.Conv2d):
            replacement = nn.Conv2d(
                1, 1, module.kernel_size, module.stride, module.padding, module.dilation, bias=False
            )
            kernel_height, kernel_width = replacement.kernel_size
            nn.init.constant_(replacement.weight, 1.0 / (kernel_height * kernel_width))
        elif isinstance(module, (nn.ReLU, nn.ReLU6, nn.BatchNorm2d, nn.Linear)):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            assert module.dilation in (1, (1, 1))
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
        if replacement is not None:
            parent_name, _, child_name = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child_name, replacement)
    return model


def gradient_support(model: nn.Module, names: list[str], size: tuple[int, int]) -> dict[str, tuple]:
    """For each layer, the input rows and columns that reach its centre output unit."""
    outputs = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: outputs.__setitem__(name, output)
        )
        for name in names
    ]
    x = torch.zeros(1, 1, *size, requires_grad=True)
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()

    supports = {}
    for name in names:
        output = outputs[name]
        centre = (output.shape[2] // 2, output.shape[3] // 2)
        (gradient,) = torch.autograd.grad(output[0, :, centre[0], centre[1]].sum(), x, retain_graph=True)
        mask = gradient[0].abs().sum(dim=0) > 0
        rows = torch.nonzero(mask.any(dim=1)).flatten()
        columns = torch.nonzero(mask.any(dim=0)).flatten()
        supports[name] = (centre, (int(rows.min()), int(rows.max())), (int(columns.min()), int(columns.max())))
    return supports


def assert_fields_match_support(model: nn.Module, size: tuple[int, int]) -> list:
    records = fp.receptive_fields(model, size)
    supports = gradient_support(linearised(model), [r.name for r in records], size)
    for record in records:
        centre, *extents = supports[record.name]
        for axis in (0, 1):
            low, high = extents[axis]
            assert 0 < low, f"{record.name}: field touches the top or left border"
            assert high < size[axis] - 1, f"{record.name}: field touches the bottom or right border"
            unit_centre = record.start[axis] + centre[axis] * record.jump[axis]
            assert high - low + 1 == record.size[axis], (record.name, axis)
            assert low == unit_centre - (record.size[axis] - 1) / 2, (record.name, axis)
            assert high == unit_centre + (record.size[axis] - 1) / 2, (record.name, axis)
    return records


def test_fields_match_support_with_dilation_and_padding():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 5, stride=2, padding=2),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, (3, 5), padding=(0, 1)),
        nn.Conv2d(4, 4, 4, stride=2, padding=1),
        nn.Conv2d(4, 4, 3, padding="same", dilation=3),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 2, stride=1, padding=0),
    )
    records = assert_fields_match_support(model, (150, 170))
    assert [r.name for r in records] == ["0", "2", "3", "4", "6", "7", "8", "9", "10"]
    # Hand check of the first layers: 3x3 -> 3; 5x5 after jump 1 -> 7, jump 2; 3x3 pool -> 11.
    assert [r.size[0] for r in records[:3]] == [3, 7, 11]
    assert [r.jump[0] for r in records[:3]] == [1, 2, 4]
    # The (3, 5) kernel with padding (0, 1) moves the start by +1 row and +1 column jump.
    assert records[4].start[0] - records[3].start[0] == 1 * records[3].jump[0]
    assert records[4].start[1] - records[3].start[1] == 1 * records[3].jump[1]


def test_resnet18_fields_match_support():
    import torchvision

    records = assert_fields_match_support(torchvision.models.resnet18(), (448, 448))
    by_name = {r.name: r for r in records}
    assert by_name["layer4.1.conv2"].size == (435, 435)  # the published value for ResNet-18
    assert by_name["layer4.1.conv2"].jump == (32, 32)
    assert by_name["layer2.0.downsample.0"].size == (43, 43)  # the shortcut's own field


def test_efficientnet_lite0_fields_match_support():
    # timm's architecture without weights: depthwise convolutions and residual sums.
    import timm

    records = assert_fields_match_support(timm.create_model("efficientnet_lite0"), (896, 896))
    assert records[-1].name == "conv_head"
    assert records[-1].size == (851, 851)
    assert records[-1].jump == (32, 32)


def test_alexnet_published_value():
    import torchvision

    records = fp.receptive_fields(torchvision.models.alexnet(), 224)
    assert records[-1].name == "features.12"
    assert records[-1].size == (195, 195)
    assert records[-1].jump == (32, 32)
    assert records[-1].output_shape == (256, 6, 6)


def test_all_layers_option_lists_pointwise_layers():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    assert [r.name for r in fp.receptive_fields(model, 16)] == ["0", "2"]
    everything = fp.receptive_fields(model, 16, all_layers=True)
    assert [(r.name, r.size[0]) for r in everything] == [("0", 3), ("1", 3), ("2", 5)]


def test_unmodelled_layer_raises():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match="changes the spatial size"):
        fp.receptive_fields(model, 16)


def test_plot_receptive_fields_draws_sizes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Conv2d(2, 2, 3, stride=2), nn.Conv2d(2, 2, 3))
    records = fp.receptive_fields(model, 32)
    figure, ax = plt.subplots()
    returned = fp.plot_receptive_fields(records, ax)
    assert returned is ax
    size_line, jump_line = ax.get_lines()
    assert list(size_line.get_ydata()) == [3, 5, 9]
    assert list(jump_line.get_ydata()) == [1, 2, 2]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["0", "1", "2"]
    assert ax.get_ylabel() == "input pixels"
    plt.close(figure)
