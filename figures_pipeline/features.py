"""Views of a CNN's layers: filter grids, activation maps, the feature pyramid and feature
visualisation by activation maximisation.

Functions take ``model`` as a ``torch.nn.Module`` or a
:class:`~figures_pipeline.models.LoadedModel` and leave it exactly as it was (mode, BatchNorm
statistics, ``requires_grad``, ``.grad`` and hooks), also when they raise. See
:func:`figures_pipeline.attribution.preserved_state`.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from figures_pipeline.attribution import _unwrap, preserved_state

if TYPE_CHECKING:
    import numpy as np
    import torch
    from matplotlib.figure import Figure
    from torch import nn


# ---------------------------------------------------------------------------------------------
# Public API


def filter_grid(
    weight: "torch.Tensor | nn.Module",
    *,
    scale: str = "symmetric",
    in_channel: int | None = None,
    columns: int | None = None,
    padding: int = 1,
    pad_value: float = 1.0,
) -> "np.ndarray":
    """Lay out a convolution layer's filters as one image.

    Args:
        weight: the weight ``(C_out, C_in, kh, kw)`` or the ``nn.Conv2d`` that owns it.
        scale: how weights become intensities in ``[0, 1]``:
            ``"symmetric"`` (default) maps each filter by ``w / (2 * max|w|) + 0.5``, so zero is
            mid-grey and the sign stays visible; ``"symmetric_global"`` does the same with the
            maximum over all filters, so filters compare in strength; ``"minmax"`` stretches each
            filter to its own min-max (the usual look of AlexNet's first-layer filters).
        in_channel: for ``C_in != 3``, the input channel to show in grey; ``None`` shows the
            mean over input channels. With ``C_in == 3`` and ``in_channel=None`` each tile is an
            RGB image with the weight's channel order kept (channel 0 is red for an RGB model).
        columns: tiles per row; default ``ceil(sqrt(C_out))``.
        padding: pixels of ``pad_value`` between and around tiles.

    Returns:
        A float array ``(rows * (kh + padding) + padding, columns * (kw + padding) + padding, 3)``
        in ``[0, 1]``; show it with ``imshow(..., interpolation="nearest")``.
    """
    import numpy as np
    import torch

    if not isinstance(weight, torch.Tensor):
        weight = weight.weight
    w = weight.detach().cpu().float()
    if w.dim() != 4:
        raise ValueError(f"expected a convolution weight (C_out, C_in, kh, kw), got shape {tuple(w.shape)}")
    if in_channel is not None:
        w = w[:, in_channel : in_channel + 1]
    elif w.shape[1] != 3:
        w = w.mean(dim=1, keepdim=True)
    if w.shape[1] == 1:
        w = w.repeat(1, 3, 1, 1)

    flat = w.flatten(1)
    if scale == "symmetric":
        peak = flat.abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        tiles = w / (2 * peak) + 0.5
    elif scale == "symmetric_global":
        tiles = w / (2 * flat.abs().max().clamp_min(1e-12)) + 0.5
    elif scale == "minmax":
        low = flat.amin(dim=1).view(-1, 1, 1, 1)
        spread = (flat.amax(dim=1).view(-1, 1, 1, 1) - low).clamp_min(1e-12)
        tiles = (w - low) / spread
    else:
        raise ValueError(f"invalid scale {scale!r}: expected 'symmetric', 'symmetric_global' or 'minmax'")

    count, _, height, width = tiles.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, 3),
        pad_value,
        dtype=np.float32,
    )
    pictures = tiles.permute(0, 2, 3, 1).numpy()
    for index in range(count):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = pictures[index]
    return grid.clip(0, 1)


def activation_maps(model: Any, x: "torch.Tensor", layers: Sequence[str]) -> dict[str, "torch.Tensor"]:
    """Return the outputs of the named layers for one image, from one forward pass.

    ``x`` is ``(1, C, H, W)`` or ``(C, H, W)``; ``layers`` are qualified module names, for example
    an early, a middle and a late one (``["blocks.0", "blocks.3", "bn2"]`` on EfficientNet-Lite0).
    Returns ``{name: tensor (K, h, w)}`` in the order given, detached, on the CPU. The pass runs
    under ``torch.no_grad()`` in eval mode; hooks are removed afterwards.
    """
    import torch

    from figures_pipeline.models import get_layer

    module, _ = _unwrap(model)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image (1, C, H, W), got shape {tuple(x.shape)}")

    chosen = {name: get_layer(module, name) for name in layers}
    outputs: dict[str, torch.Tensor] = {}
    with preserved_state(module), _output_hooks(chosen, outputs), torch.no_grad():
        module(x)
    missing = [name for name in layers if name not in outputs]
    if missing:
        raise ValueError(f"layers {missing} did not run in the forward pass")
    return {name: outputs[name][0].detach().cpu() for name in layers}


def plot_activation_maps(
    maps: dict[str, "torch.Tensor"], channels: int = 8, figure: "Figure | None" = None
) -> "Figure":
    """Draw the ``channels`` strongest maps of each layer from :func:`activation_maps`.

    One row per layer, in the dict's order; a layer's channels are ranked by their mean
    activation (largest first, ties by index, so the choice is deterministic). Each map is
    shown with its own colour range (``viridis``). Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if figure is None:
        figure = plt.figure(figsize=(1.4 * channels, 1.5 * len(maps)))
    axes = figure.subplots(len(maps), channels, squeeze=False)
    for row, (name, tensor) in enumerate(maps.items()):
        ranking = sorted(range(tensor.shape[0]), key=lambda k: (-float(tensor[k].mean()), k))
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(ranking):
                ax.set_axis_off()
                continue
            channel = ranking[column]
            ax.imshow(tensor[channel].numpy(), cmap="viridis")
            ax.set_title(f"#{channel}", fontsize=7)
        axes[row][0].set_ylabel(f"{name}\n{tuple(tensor.shape)}", fontsize=7)
    return figure


def feature_pyramid(model: Any, x: "torch.Tensor", depth: int = 2) -> list[tuple[str, int, int, int]]:
    """Return ``(name, C, H, W)`` for each stage of the network, in execution order.

    The stages are the model's direct children, except that an ``nn.Sequential`` or
    ``nn.ModuleList`` child is replaced by its own children, down to ``depth`` name parts
    (``"blocks.3"`` has two). Stages whose output is not 4-D (pooling to a vector, the
    classifier) are left out. On EfficientNet-Lite0 at 224x224 this lists ``conv_stem``,
    ``bn1``, ``blocks.0`` ... ``blocks.6``, ``conv_head`` and ``bn2``. ``x`` is an input batch
    ``(N, C, H, W)``; the sizes are those of one sample. Runs one forward pass under
    ``torch.no_grad()``.
    """
    import torch

    module, _ = _unwrap(model)
    stages = dict(_stage_modules(module, "", depth))
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []

    def make_hook(name: str):
        def hook(_module: "nn.Module", _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                if name not in shapes:
                    order.append(name)
                shapes[name] = tuple(output.shape[1:])

        return hook

    handles = []
    try:
        with preserved_state(module), torch.no_grad():
            for name, submodule in stages.items():
                handles.append(submodule.register_forward_hook(make_hook(name)))
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return [(name, *shapes[name]) for name in order]


def feature_visualisation(
    model: Any,
    layer: str,
    channel: int,
    steps: int = 64,
    seed: int = 0,
    *,
    image_size: int = 128,
    learning_rate: float = 0.05,
    transforms: bool = True,
    decorrelate: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> "np.ndarray":
    """Synthesise an image that maximises one channel of one layer (activation maximisation).

    Olah, Mordvintsev and Schubert, "Feature Visualization", Distill 2017
    (https://distill.pub/2017/feature-visualization/), following its Lucid implementation:

    - the image is parameterised in a decorrelated space: a Fourier spectrum scaled by
      ``1 / max(f, 1 / max(H, W))`` (frequency ``f`` in cycles per pixel, decay power 1),
      inverted with ``irfft2`` and divided by 4, then mapped through the square root of
      ImageNet's colour correlation (Lucid's 3x3 matrix, normalised by its largest column norm)
      and a sigmoid into ``[0, 1]``;
    - transformation robustness at every step: pad 12 pixels with grey 0.5, jitter 8, scale by
      one of ``1 + (i - 5) / 50`` for ``i`` in 0..10, rotate by -10..10 degrees (0 five times as
      likely), jitter 4;
    - the objective is the spatial mean of ``layer``'s output channel ``channel``, maximised
      with Adam (``learning_rate``) on the spectrum only.

    Args:
        model: ``nn.Module`` or ``LoadedModel`` (whose normalisation is then used).
        layer: qualified module name whose output ``(1, K, h, w)`` holds the channel.
        channel: channel index in that output.
        steps: optimisation steps. Lucid's default is 512, but 64 steps at 128 px already show
            the pattern. On a 2-core CPU with one torch thread they took 1.7 s for
            EfficientNet-Lite0's ``blocks.3`` and 3.1 s for ``blocks.5`` (bench/toolkit_bench.py
            ``--threads 1``; two threads on the same busy machine were several times slower).
        seed: seeds the initial spectrum (``torch.Generator``) and the transformations
            (``random.Random``): the same arguments give the same image on the same machine.
        image_size: side of the square image in pixels.
        transforms: ``False`` turns transformation robustness off.
        decorrelate: ``False`` optimises plain RGB pixels (through the sigmoid) instead.
        mean, std: input normalisation (default: the ``LoadedModel``'s, else ImageNet's).

    Returns:
        An ``(image_size, image_size, 3)`` float array in ``[0, 1]``, RGB.

    A channel that a ReLU keeps at zero over the whole starting image gets no gradient and
    the result stays grey: pick a layer before the activation or a block output (for
    EfficientNet-Lite0, ``"blocks.N"`` outputs have no activation at their end).

    Departures from Lucid: bilinear (not nearest) interpolation for scaling and rotation, and
    the forward pass stops at ``layer`` (the later layers cannot change the objective).
    """
    import numpy as np
    import torch

    from figures_pipeline.models import get_layer

    module, _ = _unwrap(model)
    target = get_layer(module, layer)
    preprocessing = getattr(getattr(model, "entry", None), "preprocessing", None)
    mean = mean or (preprocessing.mean if preprocessing else (0.485, 0.456, 0.406))
    std = std or (preprocessing.std if preprocessing else (0.229, 0.224, 0.225))
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    generator = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    image = _FourierImage(image_size, generator, decorrelate)
    optimizer = torch.optim.Adam([image.spectrum], lr=learning_rate)

    with preserved_state(module), _stop_after(target) as store, torch.enable_grad():
        for _ in range(steps):
            picture = image.rgb()
            if transforms:
                picture = _random_transform(picture, rng)
            store.clear()
            try:
                module((picture - mean_t) / std_t)
            except _StopForward:
                pass
            activation = store.get("output")
            if activation is None or activation.dim() < 2 or channel >= activation.shape[1]:
                raise ValueError(
                    f"layer {layer!r} gave no output with channel {channel} "
                    f"(shape {None if activation is None else tuple(activation.shape)})"
                )
            loss = -activation[:, channel].mean()
            (gradient,) = torch.autograd.grad(loss, image.spectrum)
            image.spectrum.grad = gradient
            optimizer.step()

    with torch.no_grad():
        result = image.rgb()[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(result.clip(0, 1))


# ---------------------------------------------------------------------------------------------
# Helpers

# Square root of ImageNet's colour correlation matrix, as in Lucid (lucid/optvis/param/color.py).
_COLOR_CORRELATION_SVD_SQRT = (
    (0.26, 0.09, 0.02),
    (0.27, 0.00, -0.05),
    (0.27, -0.09, 0.03),
)


def _stage_modules(module: "nn.Module", prefix: str, depth: int) -> Iterator[tuple[str, "nn.Module"]]:
    from torch import nn

    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and qualified.count(".") + 1 < depth:
            yield from _stage_modules(child, qualified + ".", depth)
        else:
            yield qualified, child


class _FourierImage:
    """Lucid's Fourier-space image parameterisation with colour decorrelation (one image)."""

    def __init__(self, size: int, generator: "torch.Generator", decorrelate: bool):
        import torch

        self.size = size
        self.decorrelate = decorrelate
        fy = torch.fft.fftfreq(size).view(-1, 1)
        fx = torch.fft.rfftfreq(size).view(1, -1)
        frequencies = torch.sqrt(fx * fx + fy * fy)
        self.scale = (1.0 / torch.clamp(frequencies, min=1.0 / size)) * size
        shape = (1, 3, size, size // 2 + 1, 2)
        self.spectrum = (0.01 * torch.randn(shape, generator=generator)).requires_grad_(True)

        matrix = torch.tensor(_COLOR_CORRELATION_SVD_SQRT, dtype=torch.float32)
        self.color = matrix / matrix.norm(dim=0).max()

    def rgb(self) -> "torch.Tensor":
        """Return the image ``(1, 3, size, size)`` in ``[0, 1]``."""
        import torch

        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(self.size, self.size)) / 4.0
        if self.decorrelate:
            image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)


def _random_transform(picture: "torch.Tensor", rng: random.Random) -> "torch.Tensor":
    import torch
    import torch.nn.functional as F

    picture = F.pad(picture, (12, 12, 12, 12), mode="constant", value=0.5)
    picture = _jitter(picture, 8, rng)

    factor = 1 + (rng.randrange(11) - 5) / 50
    size = max(8, round(picture.shape[-1] * factor))
    picture = F.interpolate(picture, size=(size, size), mode="bilinear", align_corners=False)

    angle = math.radians(rng.choice(list(range(-10, 11)) + [0] * 5))
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]],
        dtype=picture.dtype,
    ).unsqueeze(0)
    grid = F.affine_grid(rotation, list(picture.shape), align_corners=False)
    picture = F.grid_sample(picture, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _jitter(picture, 4, rng)


def _jitter(picture: "torch.Tensor", distance: int, rng: random.Random) -> "torch.Tensor":
    """Crop ``distance`` pixels in total from each axis at a random offset (Lucid's jitter)."""
    height, width = picture.shape[-2:]
    dy = rng.randrange(distance + 1)
    dx = rng.randrange(distance + 1)
    return picture[..., dy : dy + height - distance, dx : dx + width - distance]


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the needed layer has run."""


@contextmanager
def _stop_after(layer: "nn.Module") -> Iterator[dict[str, "torch.Tensor"]]:
    store: dict[str, Any] = {}

    def hook(_module: "nn.Module", _inputs: Any, output: Any) -> None:
        store["output"] = output
        raise _StopForward

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def _output_hooks(layers: dict[str, "nn.Module"], outputs: dict[str, "torch.Tensor"]) -> Iterator[None]:
    handles = []

    def make_hook(name: str):
        def hook(_module: "nn.Module", _inputs: Any, output: Any) -> None:
            # Clone: an in-place operation after the layer would otherwise change the record.
            outputs[name] = output.clone()

        return hook

    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_hook(make_hook(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()
