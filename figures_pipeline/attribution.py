"""Attribution maps for image classifiers: Grad-CAM, Grad-CAM++ and (SmoothGrad) saliency.

Every function takes ``model`` as a ``torch.nn.Module`` or a
:class:`~figures_pipeline.models.LoadedModel`, an input batch ``x`` of shape ``(N, C, H, W)``
(already preprocessed) and ``targets``: ``None`` (each sample's top-1 class), one class index
for the whole batch (a Python or NumPy integer), one index per sample (a list, array or 1-D
tensor), or class names when ``model`` is a ``LoadedModel``. Each returns a detached float
tensor ``(N, H, W)`` on ``x``'s device, with the input's height and width (so a non-square
input gives a non-square map with the same orientation).

The model is left exactly as it was, also when a call raises: the forward pass runs in eval mode
and every module's training flag is restored afterwards (so BatchNorm statistics never change),
``requires_grad`` and every parameter's ``.grad`` are untouched (gradients come from
``torch.autograd.grad``, never ``backward``), and the hooks live only inside a ``with`` block that
removes them. Calls work inside ``torch.no_grad()`` too.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    import torch
    from torch import nn

# ---------------------------------------------------------------------------------------------
# Public API


def grad_cam(
    model: Any,
    x: "torch.Tensor",
    target_layer: "str | nn.Module | None" = None,
    targets: Any = None,
    *,
    upsample: bool = True,
    normalize: bool = True,
) -> "torch.Tensor":
    """Compute Grad-CAM maps, one per sample.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017 (https://arxiv.org/abs/1610.02391). For the class score ``S`` (the
    logit, before softmax) and the target layer's output ``A`` of shape ``(N, K, h, w)``:

    1. channel weights ``alpha_k = mean_ij dS/dA_kij`` (the gradient's spatial mean);
    2. ``cam = ReLU(sum_k alpha_k A_k)``, shape ``(N, h, w)``;
    3. bilinear upsampling (``align_corners=False``) to the input's ``(H, W)``;
    4. min-max normalisation of each map to ``[0, 1]`` after upsampling. A constant map
       (max - min at most 1e-7 of its largest magnitude, float32 rounding) becomes all zeros.

    Args:
        model: ``nn.Module`` or ``LoadedModel`` returning logits ``(N, classes)``.
        x: input batch ``(N, C, H, W)``.
        target_layer: qualified module name (e.g. ``"bn2"``) or the module itself; ``None`` uses
            a ``LoadedModel``'s ``default_target_layer``. Its output must be ``(N, K, h, w)``; if
            the module runs more than once per forward pass, its last output is used.
        targets: see the module docstring.
        upsample: ``False`` returns the map at the layer's resolution ``(N, h, w)``.
        normalize: ``False`` skips step 4. With both flags ``False`` this equals captum's
            ``LayerGradCam(..., relu_attributions=True)`` squeezed over its channel dimension.

    Departures from the paper: none in the map itself. The paper upsamples before combining with
    guided backpropagation and does not fix a normalisation; step 4 is ours, for display.
    For a network that ends in global average pooling and one linear layer, the un-normalised
    map at the last convolutional output is ``ReLU(CAM) / (h * w)``, where CAM (Zhou et al.,
    2016) uses the linear layer's weights: the two agree after normalisation.
    """
    return _class_activation_map(model, x, target_layer, targets, "grad_cam", upsample, normalize)


def grad_cam_plus_plus(
    model: Any,
    x: "torch.Tensor",
    target_layer: "str | nn.Module | None" = None,
    targets: Any = None,
    *,
    upsample: bool = True,
    normalize: bool = True,
) -> "torch.Tensor":
    """Compute Grad-CAM++ maps, one per sample (same arguments and output as :func:`grad_cam`).

    Chattopadhay et al., "Grad-CAM++: Improved Visual Explanations for Deep Convolutional
    Networks", WACV 2018 (https://arxiv.org/abs/1710.11063). With ``g = dS/dA`` for the logit
    ``S``, the pixel weights are the paper's equation 19::

        a_kij = g_kij**2 / (2 * g_kij**2 + sum_ab A_kab * g_kij**3)

    the channel weights are ``w_k = sum_ij a_kij * ReLU(g_kij)``, and the map is
    ``ReLU(sum_k w_k A_k)``, then upsampled and normalised as in :func:`grad_cam`.

    Departures from the paper: equation 19 comes from the score ``Y = exp(S)``, whose
    derivatives are ``exp(S)`` times powers of ``g``. The factor cancels in ``a``. In ``w`` it
    is one positive number per sample, which the min-max normalisation removes, so this
    implementation drops it (it also avoids overflow for large logits). Where the denominator
    is zero (``g == 0``) ``a`` is set to zero.
    """
    return _class_activation_map(model, x, target_layer, targets, "grad_cam_plus_plus", upsample, normalize)


def saliency(
    model: Any,
    x: "torch.Tensor",
    targets: Any = None,
    smoothgrad_samples: int = 0,
    noise_level: float = 0.15,
    seed: int = 0,
) -> "torch.Tensor":
    """Compute gradient saliency maps, optionally smoothed with SmoothGrad.

    Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image Classification Models
    and Saliency Maps", 2014 (https://arxiv.org/abs/1312.6034): the map is
    ``max_c |dS/dx_c|`` for the class logit ``S``, the maximum over colour channels of the
    absolute gradient. Values are raw gradient magnitudes (not normalised), shape ``(N, H, W)``;
    :func:`figures_pipeline.plotting.overlay` scales them for display. With
    ``smoothgrad_samples=0`` this equals captum's ``Saliency`` (``abs=True``) followed by the
    channel maximum.

    SmoothGrad (Smilkov et al., 2017, https://arxiv.org/abs/1706.03825): with
    ``smoothgrad_samples = n > 0``, the absolute gradient is averaged over ``n`` copies of ``x``
    with Gaussian noise of standard deviation ``noise_level * (max(x_i) - min(x_i))`` per sample
    ``x_i`` (the paper's 10-20 % noise level), then maximised over channels. The noise comes from
    a ``torch.Generator`` seeded with ``seed``, so results repeat exactly. Departure from the
    paper: it averages the signed gradients; this averages their absolute values (as captum's
    ``NoiseTunnel`` over ``Saliency`` does), so opposite signs do not cancel.
    """
    import torch

    module, labels = _unwrap(model)
    if x.dim() != 4:
        raise ValueError(f"expected an input batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if smoothgrad_samples < 0:
        raise ValueError(f"smoothgrad_samples must be >= 0, got {smoothgrad_samples}")

    with preserved_state(module), torch.enable_grad():
        gradient, target_indices = _input_gradient(module, x.detach(), targets, labels)
        if smoothgrad_samples == 0:
            total = gradient.abs()
        else:
            generator = torch.Generator().manual_seed(seed)
            spread = x.detach().flatten(1).amax(1) - x.detach().flatten(1).amin(1)
            sigma = (noise_level * spread).view(-1, 1, 1, 1)
            total = torch.zeros_like(x, dtype=gradient.dtype)
            for _ in range(smoothgrad_samples):
                noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                noisy_gradient, _ = _input_gradient(module, x.detach() + sigma * noise, target_indices, labels)
                total += noisy_gradient.abs()
            total /= smoothgrad_samples
    return total.amax(dim=1).detach()


@contextmanager
def preserved_state(module: "nn.Module") -> Iterator["nn.Module"]:
    """Run ``module`` in eval mode and restore its state when the ``with`` block ends.

    Restores every submodule's ``training`` flag and every parameter's ``requires_grad`` and
    ``.grad``, also when the block raises. In eval mode BatchNorm uses and keeps its running
    statistics, so they are unchanged too.
    """
    flags = [(submodule, submodule.training) for submodule in module.modules()]
    parameters = [(p, p.requires_grad, p.grad) for p in module.parameters()]
    module.eval()
    try:
        yield module
    finally:
        for submodule, training in flags:
            submodule.training = training
        for parameter, requires_grad, grad in parameters:
            if parameter.requires_grad != requires_grad:
                parameter.requires_grad_(requires_grad)
            if parameter.grad is not grad:
                parameter.grad = grad


@contextmanager
def captured_output(layer: "nn.Module") -> Iterator[dict[str, "torch.Tensor"]]:
    """Record ``layer``'s output during the ``with`` block; the hook is always removed.

    The dict gets key ``"output"`` (the last call's output). The hook passes a clone on to the
    rest of the network, so an in-place operation after the layer (``ReLU(inplace=True)``) can
    neither change the recorded tensor nor break its gradient.
    """
    import torch

    store: dict[str, torch.Tensor] = {}

    def hook(_module: "nn.Module", _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"layer {type(_module).__name__} returns {type(output).__name__}, expected a tensor"
            )
        store["output"] = output
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def resolve_targets(targets: Any, logits: "torch.Tensor", labels: Sequence[str] | None = None) -> "torch.Tensor":
    """Turn ``targets`` into a 1-D long tensor of class indices, one per sample of ``logits``.

    ``None`` gives each sample's top-1 class; an int or a class name applies to every sample;
    a sequence or tensor gives one target per sample. Raises ``ValueError`` for a wrong length or
    an index out of range, ``KeyError`` for an unknown class name.
    """
    import torch

    batch, classes = logits.shape[0], logits.shape[-1]
    if targets is None:
        indices = logits.detach().argmax(dim=-1)
    else:
        if isinstance(targets, torch.Tensor):
            values = targets.reshape(-1).tolist()
        elif isinstance(targets, (numbers.Integral, str)):
            values = [targets] * batch
        else:
            values = list(targets)
        values = [_class_index(value, labels) for value in values]
        if len(values) == 1 and batch > 1:
            values = values * batch
        if len(values) != batch:
            raise ValueError(f"got {len(values)} targets for a batch of {batch} samples")
        indices = torch.tensor(values, dtype=torch.long, device=logits.device)
    bad = [int(i) for i in indices if not 0 <= int(i) < classes]
    if bad:
        raise ValueError(f"target class index {bad[0]} is out of range for {classes} classes")
    return indices


def normalize_maps(maps: "torch.Tensor") -> "torch.Tensor":
    """Min-max normalise each map of ``(N, H, W)`` to ``[0, 1]``; a constant map becomes zeros.

    A map counts as constant when max - min is at most 1e-7 times its largest magnitude (float32
    rounding of a constant), so no division by zero, NaN or warning can occur.
    """
    import torch

    flat = maps.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1)
    high = flat.amax(dim=1).view(-1, 1, 1)
    spread = high - low
    magnitude = torch.maximum(high.abs(), low.abs())
    constant = spread <= 1e-7 * magnitude
    safe_spread = torch.where(constant, torch.ones_like(spread), spread)
    return torch.where(constant, torch.zeros_like(maps), (maps - low) / safe_spread)


# ---------------------------------------------------------------------------------------------
# Helpers


def _unwrap(model: Any) -> "tuple[nn.Module, list[str] | None]":
    """Return the ``nn.Module`` and the class names (or None) of a module or LoadedModel."""
    module = getattr(model, "module", model)
    labels = getattr(model, "labels", None)
    return module, labels


def _resolve_layer(model: Any, module: "nn.Module", target_layer: "str | nn.Module | None") -> "nn.Module":
    from figures_pipeline.models import get_layer

    if target_layer is None:
        target_layer = getattr(model, "default_target_layer", None)
        if not target_layer:
            raise ValueError("target_layer is required for a plain nn.Module (e.g. 'layer4' or 'features.29')")
    if isinstance(target_layer, str):
        return get_layer(module, target_layer)
    return target_layer


def _class_index(value: Any, labels: Sequence[str] | None) -> int:
    if isinstance(value, str):
        if labels is None:
            raise KeyError(f"class name {value!r} needs a LoadedModel (a plain module has no labels)")
        try:
            return list(labels).index(value)
        except ValueError:
            raise KeyError(f"no class named {value!r}") from None
    return int(value)


def _class_activation_map(
    model: Any,
    x: "torch.Tensor",
    target_layer: "str | nn.Module | None",
    targets: Any,
    method: str,
    upsample: bool,
    normalize: bool,
) -> "torch.Tensor":
    import torch
    import torch.nn.functional as F

    module, labels = _unwrap(model)
    if x.dim() != 4:
        raise ValueError(f"expected an input batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    layer = _resolve_layer(model, module, target_layer)

    with preserved_state(module), captured_output(layer) as store, torch.enable_grad():
        # The input requires grad so the graph exists even when every parameter is frozen.
        logits = module(x.detach().requires_grad_(True))
        if "output" not in store:
            raise ValueError(f"the target layer {type(layer).__name__} did not run in the forward pass")
        activation = store["output"]
        if activation.dim() != 4:
            raise ValueError(
                f"the target layer's output has shape {tuple(activation.shape)}, expected (N, K, h, w)"
            )
        indices = resolve_targets(targets, logits, labels)
        # Samples are independent in eval mode, so the gradient of the summed scores with
        # respect to sample n's activation is the gradient of sample n's own score.
        score = logits.gather(1, indices.view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(score, activation)

    activation = activation.detach()
    if method == "grad_cam":
        weights = gradient.mean(dim=(2, 3), keepdim=True)
    else:
        squared = gradient.pow(2)
        denominator = 2 * squared + activation.sum(dim=(2, 3), keepdim=True) * gradient.pow(3)
        nonzero = denominator != 0
        safe_denominator = torch.where(nonzero, denominator, torch.ones_like(denominator))
        alpha = torch.where(nonzero, squared / safe_denominator, torch.zeros_like(squared))
        weights = (alpha * F.relu(gradient)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))

    if upsample:
        cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    if normalize:
        cam = normalize_maps(cam)
    return cam


def _input_gradient(
    module: "nn.Module", x: "torch.Tensor", targets: Any, labels: Sequence[str] | None
) -> "tuple[torch.Tensor, torch.Tensor]":
    import torch

    x = x.clone().requires_grad_(True)
    logits = module(x)
    indices = resolve_targets(targets, logits, labels)
    score = logits.gather(1, indices.view(-1, 1)).sum()
    (gradient,) = torch.autograd.grad(score, x)
    return gradient, indices
