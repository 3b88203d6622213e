"""Plot helpers for lesson figures: heatmap overlays, photos, and Korean text in figures.

The helpers draw on the axes they are given and change no global matplotlib setting, except
:func:`use_korean_font`, which sets the font family (and ``axes.unicode_minus``) on purpose.
Nothing here is random, so the same inputs draw the same figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.image import AxesImage

KOREAN_FONT = "NanumGothic"
"""Font family set by :func:`use_korean_font` (shipped by the koreanize-matplotlib package)."""


def use_korean_font() -> str:
    """Make matplotlib render Korean text with NanumGothic, the font koreanize-matplotlib ships.

    Registers the package's ``.ttf`` files with matplotlib's font manager and sets
    ``rcParams["font.family"] = "NanumGothic"`` and ``rcParams["axes.unicode_minus"] = False``
    (NanumGothic has no Unicode minus sign), which is what ``import koreanize_matplotlib`` does.
    The package is not imported, because its import warns about the deprecated distutils
    (koreanize-matplotlib 0.1.1). Safe to call more than once. Returns the font family name.
    """
    import importlib.util
    from pathlib import Path

    import matplotlib
    from matplotlib import font_manager

    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "koreanize-matplotlib is not installed: install it with pip to render Korean text"
        )
    font_dir = Path(list(spec.submodule_search_locations)[0]) / "fonts"
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    for font_file in sorted(font_dir.glob("*.ttf")):
        if str(font_file) not in known:
            font_manager.fontManager.addfont(str(font_file))
    matplotlib.rcParams["font.family"] = KOREAN_FONT
    matplotlib.rcParams["axes.unicode_minus"] = False
    return KOREAN_FONT


def overlay(
    ax: "Axes",
    image: Any,
    heatmap: Any,
    cmap: str = "jet",
    alpha: float = 0.5,
    *,
    normalize: bool = True,
    clip_percentile: float | None = None,
    title: str | None = None,
) -> "AxesImage":
    """Draw ``heatmap`` over ``image`` on ``ax``, with the axis frame hidden.

    Args:
        ax: matplotlib axes to draw on.
        image: the photo, ``(H, W, 3)`` uint8 in ``[0, 255]`` or float in ``[0, 1]`` (for a
            model input use ``LoadedModel.to_display(x)``), or ``(H, W)`` grey.
        heatmap: ``(h, w)`` or ``(1, h, w)`` array or tensor, e.g. one map of :func:`grad_cam`.
            A map of another size is resized bilinearly (``align_corners=False``) to ``(H, W)``,
            so it must cover the same field of view as the photo: a map of a centre-cropped
            input does not line up with the uncropped photo.
        cmap: matplotlib colour map of the heatmap; the default ``"jet"`` runs blue (low) to red
            (high), as in the Grad-CAM paper's figures.
        alpha: opacity of the heatmap, 0 (invisible) to 1 (photo hidden).
        normalize: min-max scale the heatmap to ``[0, 1]`` first (a constant map shows as 0).
            With ``False`` the values are shown on a fixed ``[0, 1]`` range and clipped outside it.
        clip_percentile: if set (e.g. ``99``), values above this percentile are clipped to it
            before scaling, so a few extreme pixels do not darken a saliency map.
        title: optional axes title.

    Returns:
        The heatmap's ``AxesImage`` (pass it to ``figure.colorbar`` for a scale).
    """
    import numpy as np

    picture = _as_numpy(image)
    if picture.ndim == 3 and picture.shape[0] in (1, 3) and picture.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected an image of shape (H, W, 3), got {picture.shape}: "
            "use LoadedModel.to_display(x) for a model input"
        )
    heat = _as_numpy(heatmap).astype(np.float32)
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.ndim != 2:
        raise ValueError(f"expected a heatmap of shape (H, W), got shape {heat.shape}")
    if heat.shape != picture.shape[:2]:
        heat = _resize(heat, picture.shape[:2])
    heat = _scaled(heat, normalize, clip_percentile)

    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    handle = ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return handle


def show_image(ax: "Axes", image: Any, title: str | None = None) -> "AxesImage":
    """Show a photo ``(H, W, 3)`` (uint8 or float in ``[0, 1]``) or a grey ``(H, W)`` array
    on ``ax`` without the axis frame; returns the ``AxesImage``."""
    picture = _as_numpy(image)
    handle = ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return handle


def show_heatmap(
    ax: "Axes",
    heatmap: Any,
    cmap: str = "jet",
    title: str | None = None,
    *,
    clip_percentile: float | None = None,
) -> "AxesImage":
    """Show a map ``(H, W)`` alone (e.g. a saliency map), min-max scaled to ``[0, 1]``.

    ``clip_percentile`` works as in :func:`overlay`. Returns the ``AxesImage``.
    """
    import numpy as np

    heat = _as_numpy(heatmap).astype(np.float32)
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    heat = _scaled(heat, True, clip_percentile)
    handle = ax.imshow(heat, cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return handle


# ---------------------------------------------------------------------------------------------
# Helpers


def _as_numpy(value: Any) -> "np.ndarray":
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _scaled(heat: "np.ndarray", normalize: bool, clip_percentile: float | None) -> "np.ndarray":
    """Clip at a percentile if asked, then min-max scale to ``[0, 1]`` (a constant map gives 0)."""
    import numpy as np

    if clip_percentile is not None:
        heat = np.minimum(heat, np.percentile(heat, clip_percentile))
    if not normalize:
        return heat
    low, high = float(heat.min()), float(heat.max())
    spread = high - low
    if spread <= 1e-7 * max(abs(high), abs(low)):
        return np.zeros_like(heat)
    return (heat - low) / spread


def _resize(heat: "np.ndarray", size: tuple[int, int]) -> "np.ndarray":
    import numpy as np
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
