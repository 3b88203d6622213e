"""Receptive fields of a CNN's layers: size, jump (effective stride) and start, and a plot.

For each convolution or pooling layer, with kernel ``k``, stride ``s``, padding ``p`` (on the
top or left side) and dilation ``d``, the effective kernel is ``k' = d * (k - 1) + 1`` and::

    size_out  = size_in + (k' - 1) * jump_in
    jump_out  = jump_in * s
    start_out = start_in + ((k' - 1) / 2 - p) * jump_in

starting from ``size = 1, jump = 1, start = 0`` at the input (Araujo, Norris and Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019,
https://distill.pub/2019/computing-receptive-fields/). ``start`` is the centre of output unit
``(0, 0)``'s receptive field in input pixel coordinates (pixel ``i`` has its centre at ``i``), and unit
``u`` is centred at ``start + u * jump``. Negative starts mean the field reaches into the padding.
``size`` is the extent from the first to the last input pixel that can reach the unit; with
dilation the field has gaps inside that extent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from figures_pipeline.attribution import _unwrap, preserved_state

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from torch import nn


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer's output units; each pair is ``(height, width)``.

    Fields: ``name`` (qualified module name), ``kind`` (module class name), ``size`` (extent in
    input pixels), ``jump`` (input pixels between neighbouring units), ``start`` (centre of unit
    ``(0, 0)`` in input pixel coordinates) and ``output_shape`` ``(C, H, W)``.
    """

    name: str
    kind: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]
    output_shape: tuple[int, int, int]


def receptive_fields(
    model: Any,
    input_size: int | Sequence[int] = 224,
    *,
    in_channels: int = 3,
    all_layers: bool = False,
) -> list[ReceptiveField]:
    """Compute the receptive field after each layer of ``model``, in execution order.

    Runs one forward pass on zeros of shape ``(1, in_channels, H, W)`` (``input_size`` is ``H``
    for a square input or ``(H, W)``) with hooks on the leaf modules, in eval mode, under
    ``torch.no_grad()``. The model is left unchanged.

    Convolutions (``nn.Conv2d``, including ``padding="same"``), ``nn.MaxPool2d`` and
    ``nn.AvgPool2d`` change the field. Leaf modules that keep the spatial size (BatchNorm,
    activations, dropout, an adaptive pool whose output equals its input) leave it unchanged
    and are listed only with ``all_layers=True``. Recording stops at the first module whose
    output is not 4-D or is a global pool (1x1 output), because units after it see the whole
    image. Any other module that changes the spatial size raises ``ValueError``.

    Each module's input is traced to the module that produced it, so parallel branches (a
    ResNet shortcut with its own strided 1x1 convolution) get their own fields. A tensor made by
    an operation outside any module (the residual sum ``x + shortcut``) takes the field of the
    latest module output of the same spatial size, which for a residual block is its longest
    branch. That is the union of both branches only when they are centred on the same pixel
    (symmetric padding, as in ResNet and EfficientNet); misaligned branches are not modelled.
    """
    import torch
    from torch import nn

    module, _ = _unwrap(model)
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    leaves = [(name, m) for name, m in module.named_modules() if name and not list(m.children())]

    # Field of every tensor a leaf module produced, keyed by id(). The tensors are kept alive in
    # `outputs` so that no id is reused during the pass.
    fields: dict[int, _Field] = {}
    outputs: list[tuple[torch.Tensor, _Field]] = []
    records: list[ReceptiveField] = []
    stopped = [False]

    def input_field(name: str, tensor: torch.Tensor) -> _Field:
        known = fields.get(id(tensor))
        if known is not None:
            return known
        # The tensor came from an operation outside any module (a residual sum, a functional
        # activation). Use the latest module output of the same spatial size: for a residual
        # sum that is the longest branch.
        for candidate, field in reversed(outputs):
            if candidate.shape[-2:] == tensor.shape[-2:]:
                return field
        raise ValueError(
            f"the input of layer {name!r} comes from an operation outside a module that changes "
            f"the spatial size to {tuple(tensor.shape[-2:])}; its receptive field is not modelled"
        )

    def make_hook(name: str):
        def hook(layer: "nn.Module", inputs: Any, output: Any) -> None:
            if stopped[0]:
                return
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                stopped[0] = True
                return
            source = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            if source is None or source.dim() != 4:
                stopped[0] = True
                return
            field = input_field(name, source)
            geometry = _geometry(layer)
            if geometry is None:
                global_pool = isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
                if global_pool and output.shape[-2:] == (1, 1):
                    stopped[0] = True
                    return
                if source.shape[-2:] != output.shape[-2:]:
                    raise ValueError(
                        f"layer {name!r} ({type(layer).__name__}) changes the spatial size from "
                        f"{tuple(source.shape[-2:])} to {tuple(output.shape[-2:])}, but its "
                        "receptive field is not modelled"
                    )
            else:
                field = field.through(*geometry)
            fields[id(output)] = field
            outputs.append((output, field))
            if geometry is not None or all_layers:
                records.append(field.record(name, layer, output))

        return hook

    handles = []
    try:
        with preserved_state(module), torch.no_grad():
            for name, leaf in leaves:
                handles.append(leaf.register_forward_hook(make_hook(name)))
            parameter = next(module.parameters(), None)
            device = parameter.device if parameter is not None else "cpu"
            x = torch.zeros(1, in_channels, height, width, device=device)
            initial = _Field((1, 1), (1, 1), (0.0, 0.0))
            fields[id(x)] = initial
            outputs.append((x, initial))
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return records


def plot_receptive_fields(
    records: Sequence[ReceptiveField],
    ax: "Axes | None" = None,
    *,
    language: str = "en",
    show_jump: bool = True,
) -> "Axes":
    """Plot the receptive-field size (and jump) against depth, one point per record.

    Uses the height axis of each record, a log-2 y axis in input pixels, and the layer names as
    x tick labels. ``language`` (``"en"`` or ``"ko"``) picks the axis labels and legend; ``"ko"``
    calls :func:`figures_pipeline.plotting.use_korean_font` first. Creates a new figure when
    ``ax`` is ``None``. Returns the axes.
    """
    import matplotlib.pyplot as plt

    texts = _PLOT_TEXTS.get(language)
    if texts is None:
        raise ValueError(f"invalid language {language!r}: expected one of {sorted(_PLOT_TEXTS)}")
    if language == "ko":
        from figures_pipeline.plotting import use_korean_font

        use_korean_font()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.32 * len(records) + 2), 3.6))

    depth = list(range(1, len(records) + 1))
    ax.plot(depth, [r.size[0] for r in records], marker="o", label=texts["size"])
    if show_jump:
        ax.plot(depth, [r.jump[0] for r in records], marker="s", linestyle="--", label=texts["jump"])
    ax.set_yscale("log", base=2)
    ax.set_xticks(depth)
    ax.set_xticklabels([r.name for r in records], rotation=90, fontsize=7)
    ax.set_xlabel(texts["x"])
    ax.set_ylabel(texts["y"])
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# Helpers

_PLOT_TEXTS = {
    "en": {"x": "layer", "y": "input pixels", "size": "receptive field size", "jump": "jump (effective stride)"},
    "ko": {"x": "층 (layer)", "y": "입력 픽셀", "size": "receptive field 크기", "jump": "jump (유효 stride)"},
}


def _geometry(layer: "nn.Module") -> tuple[tuple[int, int], ...] | None:
    """Return ``(kernel, stride, padding, dilation)`` pairs of a conv or pool layer, else None."""
    from torch import nn

    if isinstance(layer, nn.Conv2d):
        kernel = _pair(layer.kernel_size)
        dilation = _pair(layer.dilation)
        if isinstance(layer.padding, str):
            if layer.padding == "same":
                padding = tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dilation))
            else:
                padding = (0, 0)
        else:
            padding = _pair(layer.padding)
        return kernel, _pair(layer.stride), padding, dilation
    if isinstance(layer, nn.MaxPool2d):
        return _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding), _pair(layer.dilation)
    if isinstance(layer, nn.AvgPool2d):
        return _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding), (1, 1)
    return None


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


@dataclass(frozen=True)
class _Field:
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]

    def through(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> "_Field":
        """Return the field after a conv or pool layer with this geometry (per axis)."""
        size, jump, start = [], [], []
        for axis in (0, 1):
            effective = dilation[axis] * (kernel[axis] - 1) + 1
            start.append(self.start[axis] + ((effective - 1) / 2 - padding[axis]) * self.jump[axis])
            size.append(self.size[axis] + (effective - 1) * self.jump[axis])
            jump.append(self.jump[axis] * stride[axis])
        return _Field((size[0], size[1]), (jump[0], jump[1]), (start[0], start[1]))

    def record(self, name: str, layer: "nn.Module", output: Any) -> ReceptiveField:
        return ReceptiveField(
            name=name,
            kind=type(layer).__name__,
            size=self.size,
            jump=self.jump,
            start=self.start,
            output_shape=tuple(int(v) for v in output.shape[1:]),
        )
