"""Overlay and image helpers, Korean font setup, and byte-stable drawing."""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import figures_pipeline as fp  # noqa: E402


def draw_overlay() -> bytes:
    photo = np.zeros((6, 8, 3), dtype=np.uint8)
    photo[:, 4:] = 200
    heatmap = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    figure, ax = plt.subplots(figsize=(2, 2))
    fp.overlay(ax, photo, heatmap, title="Grad-CAM")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def test_overlay_scales_and_resizes_heatmap():
    photo = np.full((6, 8, 3), 128, dtype=np.uint8)
    heatmap = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])  # (1, 2, 2): resized to the photo
    figure, ax = plt.subplots()
    handle = fp.overlay(ax, photo, heatmap, cmap="viridis", alpha=0.3)
    data = np.asarray(handle.get_array())
    assert data.shape == (6, 8)
    assert data.min() == pytest.approx(0.0)
    assert data.max() == pytest.approx(1.0)
    assert data[0, 0] < data[0, -1] < data[-1, -1]  # orientation kept: top-left low, bottom-right high
    assert handle.get_alpha() == 0.3
    assert handle.get_cmap().name == "viridis"
    assert handle.get_clim() == (0.0, 1.0)
    assert not ax.axison
    plt.close(figure)


def test_overlay_constant_heatmap_and_bad_image():
    figure, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handle = fp.overlay(ax, np.zeros((4, 4, 3)), np.full((4, 4), 3.0))
    assert np.count_nonzero(np.asarray(handle.get_array())) == 0
    with pytest.raises(ValueError, match="to_display"):
        fp.overlay(ax, torch.zeros(3, 4, 5), np.zeros((4, 5)))
    plt.close(figure)


def test_helpers_leave_rcparams_unchanged():
    before = dict(matplotlib.rcParams)
    draw_overlay()
    figure, ax = plt.subplots()
    fp.show_image(ax, np.zeros((3, 3, 3)), title="photo")
    fp.show_heatmap(ax, np.arange(9.0).reshape(3, 3))
    plt.close(figure)
    assert dict(matplotlib.rcParams) == before


def test_overlay_drawing_is_byte_stable():
    assert draw_overlay() == draw_overlay()


def test_korean_font_renders_korean_title():
    from matplotlib import font_manager

    with matplotlib.rc_context():
        assert fp.use_korean_font() == "NanumGothic"
        fp.use_korean_font()  # a second call changes nothing
        assert matplotlib.rcParams["font.family"] == ["NanumGothic"]
        assert matplotlib.rcParams["axes.unicode_minus"] is False
        path = font_manager.findfont(font_manager.FontProperties(family="NanumGothic"), fallback_to_default=False)
        assert path.endswith("NanumGothic.ttf")

        figure, ax = plt.subplots()
        ax.set_title("수용 영역 (receptive field)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            figure.canvas.draw()
        plt.close(figure)
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert matplotlib.rcParams["font.family"] != ["NanumGothic"]


def test_show_heatmap_clips_percentile():
    heat = np.zeros((10, 10))
    heat[0, :5] = 1.0
    heat[9, 9] = 100.0  # one extreme pixel
    figure, ax = plt.subplots()
    plain = np.asarray(fp.show_heatmap(ax, heat).get_array())
    clipped = np.asarray(fp.show_heatmap(ax, heat, clip_percentile=98).get_array())
    plt.close(figure)
    assert plain[0, 0] == pytest.approx(0.01)
    assert clipped[0, 0] == pytest.approx(1.0)
    assert clipped[9, 9] == pytest.approx(1.0)
