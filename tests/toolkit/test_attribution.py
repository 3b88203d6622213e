"""Grad-CAM, Grad-CAM++ and saliency: hand-computed values, captum agreement, model state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

import figures_pipeline as fp
from figures_pipeline.attribution import normalize_maps

from .conftest import make_tiny


class HandNet(nn.Module):
    """1x1 conv with two fixed filters, global average pooling and a fixed linear head."""

    def __init__(self, head: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -0.5]).view(2, 1, 1, 1))
        self.head = head
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activation = self.conv(x)
        if self.head is not None:
            return self.head(activation.flatten(1))
        return self.fc(activation.mean(dim=(2, 3)))


HAND_INPUT = torch.tensor([[[[1.0, 2.0, 0.0], [3.0, -1.0, 1.0]]]])  # (1, 1, 2, 3)


def min_max(maps: np.ndarray) -> np.ndarray:
    """Reference min-max normalisation per map, written independently of the toolkit."""
    out = np.zeros_like(maps)
    for i, item in enumerate(maps):
        if item.max() > item.min():
            out[i] = (item - item.min()) / (item.max() - item.min())
    return out


# ---------------------------------------------------------------------------------------------
# Hand-computed values


def test_grad_cam_hand_computed_class0():
    # S0 = 2 * mean(A0) + 1 * mean(A1) over 6 pixels, so the channel weights are (2/6, 1/6).
    # A0 = x and A1 = -x / 2, hence cam = x / 3 - x / 12 = x / 4 before the ReLU.
    cam = fp.grad_cam(HandNet(), HAND_INPUT, "conv", 0, upsample=False, normalize=False)
    expected = torch.tensor([[[0.25, 0.5, 0.0], [0.75, 0.0, 0.25]]])
    assert cam.shape == (1, 2, 3)
    assert torch.allclose(cam, expected, atol=1e-7)


def test_grad_cam_hand_computed_class1_normalised():
    # S1 = -mean(A0) + 3 * mean(A1): weights (-1/6, 3/6), cam = -x/6 - x/4 = -5x/12.
    # After the ReLU only x = -1 survives (value 5/12), and min-max makes it 1, the rest 0.
    raw = fp.grad_cam(HandNet(), HAND_INPUT, "conv", 1, upsample=False, normalize=False)
    assert torch.allclose(raw, torch.tensor([[[0.0, 0.0, 0.0], [0.0, 5 / 12, 0.0]]]), atol=1e-7)
    normalised = fp.grad_cam(HandNet(), HAND_INPUT, "conv", 1, upsample=False)
    assert torch.equal(normalised, torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))


def test_grad_cam_upsamples_like_interpolate():
    cam = fp.grad_cam(HandNet(), F.interpolate(HAND_INPUT, size=(4, 6)), "conv", 0, normalize=False)
    low = fp.grad_cam(HandNet(), F.interpolate(HAND_INPUT, size=(4, 6)), "conv", 0, upsample=False, normalize=False)
    expected = F.interpolate(low[:, None], size=(4, 6), mode="bilinear", align_corners=False)[:, 0]
    assert cam.shape == (1, 4, 6)
    assert torch.allclose(cam, expected)


def test_grad_cam_plus_plus_equation_19():
    # A linear head on the flattened activation makes every gradient g_kij = V_kij a constant
    # we know, so equation 19 can be evaluated by hand with the literal numbers below.
    weights = torch.tensor([[0.5, -1.0, 2.0, 1.5, 0.0, -0.25, 1.0, 0.75, -2.0, 0.5, 3.0, -1.0]])
    head = nn.Linear(12, 1, bias=False)
    with torch.no_grad():
        head.weight.copy_(weights)
    model = HandNet(head=head)
    cam = fp.grad_cam_plus_plus(model, HAND_INPUT, "conv", 0, upsample=False, normalize=False)

    x = HAND_INPUT[0, 0].numpy().astype(np.float64)
    activations = np.stack([x, -0.5 * x])  # (2, 2, 3): the two fixed 1x1 filters
    gradients = weights.numpy().astype(np.float64).reshape(2, 2, 3)
    expected = np.zeros((2, 3))
    channel_weights = []
    for k in range(2):
        total_activation = activations[k].sum()
        w_k = 0.0
        for i in range(2):
            for j in range(3):
                g = gradients[k, i, j]
                denominator = 2 * g**2 + total_activation * g**3
                alpha = g**2 / denominator if denominator != 0 else 0.0
                w_k += alpha * max(g, 0.0)
        channel_weights.append(w_k)
    for k in range(2):
        expected += channel_weights[k] * activations[k]
    expected = np.maximum(expected, 0.0)

    assert expected.max() > 0
    assert np.allclose(cam[0].numpy(), expected, atol=1e-6)


def test_grad_cam_equals_cam_for_gap_linear_head():
    # CAM (Zhou et al., 2016) for class c is sum_k W_ck A_k, while Grad-CAM's weights are W_ck / (h*w).
    torch.manual_seed(3)
    backbone = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
    fc = nn.Linear(5, 3)
    model = nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()
    x = torch.randn(2, 3, 6, 8)
    targets = [2, 0]

    raw = fp.grad_cam(model, x, backbone, targets, upsample=False, normalize=False)
    with torch.no_grad():
        activation = backbone(x)
        cam = torch.einsum("nkhw,nk->nhw", activation, fc.weight[targets])
    assert torch.allclose(raw, F.relu(cam) / (6 * 8), atol=1e-6)
    normalised = fp.grad_cam(model, x, backbone, targets, upsample=False)
    assert np.allclose(normalised.numpy(), min_max(F.relu(cam).numpy()), atol=1e-6)


def test_constant_map_gives_zeros_without_warning():
    model = HandNet()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam = fp.grad_cam(model, torch.zeros(1, 1, 4, 5), "conv", 0)
        plus = fp.grad_cam_plus_plus(model, torch.zeros(1, 1, 4, 5), "conv", 0)
        constant = normalize_maps(torch.full((1, 3, 3), 0.7))
    for result in (cam, plus, constant):
        assert not torch.isnan(result).any()
        assert torch.count_nonzero(result) == 0


# ---------------------------------------------------------------------------------------------
# Agreement with captum


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layer", ["conv2", "relu1", "bn1"])
def test_grad_cam_matches_captum(seed, layer):
    model = make_tiny(seed)
    torch.manual_seed(100 + seed)
    x = torch.randn(2, 3, 12, 10)
    targets = [1, 3]

    ours = fp.grad_cam(model, x, layer, targets)
    reference = LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target=targets, relu_attributions=True
    )
    raw = fp.grad_cam(model, x, layer, targets, upsample=False, normalize=False)
    assert torch.allclose(raw, reference[:, 0].detach(), atol=1e-5)
    upsampled = LayerAttribution.interpolate(reference, (12, 10), "bilinear")[:, 0].detach().numpy()
    assert ours.shape == (2, 12, 10)
    assert np.abs(ours.numpy() - min_max(upsampled)).max() <= 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_saliency_matches_captum(seed):
    model = make_tiny(seed)
    torch.manual_seed(200 + seed)
    x = torch.randn(3, 3, 9, 14)
    targets = [0, 2, 3]

    ours = fp.saliency(model, x, targets)
    reference = Saliency(model).attribute(x.clone().requires_grad_(True), target=targets, abs=True)
    assert ours.shape == (3, 9, 14)
    assert torch.allclose(ours, reference.amax(dim=1).detach(), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Batches, shapes, in-place operations


def test_batch_equals_single_runs(tiny):
    torch.manual_seed(5)
    x = torch.randn(2, 3, 10, 10)
    targets = [2, 1]
    for method in (fp.grad_cam, fp.grad_cam_plus_plus):
        batch = method(tiny, x, "conv2", targets)
        for n in range(2):
            single = method(tiny, x[n : n + 1], "conv2", targets[n])
            assert torch.allclose(batch[n], single[0], atol=1e-6)
    batch = fp.saliency(tiny, x, targets)
    for n in range(2):
        assert torch.allclose(batch[n], fp.saliency(tiny, x[n : n + 1], targets[n])[0], atol=1e-7)


def test_default_target_is_top1(tiny):
    torch.manual_seed(6)
    x = torch.randn(2, 3, 8, 8)
    top1 = tiny(x).argmax(dim=1).tolist()
    assert torch.equal(fp.grad_cam(tiny, x, "conv2"), fp.grad_cam(tiny, x, "conv2", top1))
    assert torch.equal(fp.saliency(tiny, x), fp.saliency(tiny, x, top1))


def test_inplace_relu_after_layer_gives_same_map():
    plain = make_tiny(4, inplace=False)
    inplace = make_tiny(4, inplace=True)
    torch.manual_seed(7)
    x = torch.randn(2, 3, 10, 12)
    for layer in ("conv2", "bn1", "conv1"):
        expected = fp.grad_cam(plain, x, layer, [0, 3])
        assert torch.equal(fp.grad_cam(inplace, x, layer, [0, 3]), expected)
        expected = fp.grad_cam_plus_plus(plain, x, layer, [0, 3])
        assert torch.equal(fp.grad_cam_plus_plus(inplace, x, layer, [0, 3]), expected)


def test_non_square_input_keeps_orientation():
    # Positive weights everywhere: the class score grows with a bright patch, and Grad-CAM
    # must peak on the patch, placed in the top-right corner of a wide 16x40 input.
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    nn.init.constant_(conv.weight, 0.1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 1)).eval()
    nn.init.constant_(model[4].weight, 1.0)
    x = torch.zeros(1, 1, 16, 40)
    x[0, 0, 1:5, 33:38] = 1.0

    cam = fp.grad_cam(model, x, conv, 0)
    assert cam.shape == (1, 16, 40)
    row, column = divmod(int(cam[0].argmax()), 40)
    assert 1 <= row <= 4
    assert 33 <= column <= 37
    saliency = fp.saliency(model, x, 0)
    assert saliency.shape == (1, 16, 40)


def test_works_inside_no_grad(tiny):
    x = torch.randn(1, 3, 8, 8)
    expected = fp.grad_cam(tiny, x, "conv2", 1)
    with torch.no_grad():
        assert torch.equal(fp.grad_cam(tiny, x, "conv2", 1), expected)
        assert fp.saliency(tiny, x, 1).shape == (1, 8, 8)


def test_smoothgrad_is_seeded(tiny):
    x = torch.randn(2, 3, 8, 8)
    first = fp.saliency(tiny, x, [0, 1], smoothgrad_samples=6, seed=3)
    again = fp.saliency(tiny, x, [0, 1], smoothgrad_samples=6, seed=3)
    other = fp.saliency(tiny, x, [0, 1], smoothgrad_samples=6, seed=4)
    plain = fp.saliency(tiny, x, [0, 1])
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, plain)


def test_targets_accept_numpy_and_tensors(tiny):
    x = torch.randn(2, 3, 8, 8)
    expected = fp.grad_cam(tiny, x, "conv2", [2, 2])
    assert torch.equal(fp.grad_cam(tiny, x, "conv2", np.int64(2)), expected)
    assert torch.equal(fp.grad_cam(tiny, x, "conv2", torch.tensor([2, 2])), expected)
    assert torch.equal(fp.grad_cam(tiny, x, "conv2", np.array([2, 2])), expected)


def test_invalid_targets_raise(tiny):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="out of range"):
        fp.grad_cam(tiny, x, "conv2", 4)
    with pytest.raises(ValueError, match="3 targets for a batch of 2"):
        fp.saliency(tiny, x, [0, 1, 2])
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        fp.grad_cam(tiny, x, "conv9", 0)


# ---------------------------------------------------------------------------------------------
# The model is left unchanged


def snapshot(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()
        ],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["hooks"] == after["hooks"]
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for old, new in zip(before["grad"], after["grad"]):
        assert (old is None and new is None) or torch.equal(old, new)


def prepared_model() -> nn.Module:
    """A tiny model in train mode with frozen conv1, a stored .grad and one user hook."""
    model = make_tiny(9)
    model.train()
    model.conv1.weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)
    model.relu2.register_forward_hook(lambda module, inputs, output: None)
    return model


def test_visualisers_leave_model_unchanged():
    model = prepared_model()
    before = snapshot(model)
    x = torch.randn(2, 3, 12, 12)
    fp.grad_cam(model, x, "conv2", [0, 1])
    fp.grad_cam_plus_plus(model, x, "bn1", None)
    fp.saliency(model, x, 2)
    fp.saliency(model, x, 2, smoothgrad_samples=3)
    fp.activation_maps(model, x[:1], ["conv1", "relu2"])
    fp.feature_pyramid(model, x)
    fp.feature_visualisation(model, "conv2", 1, steps=2, image_size=24)
    fp.receptive_fields(model, 16)
    assert_same(before, snapshot(model))


def test_model_unchanged_when_call_raises():
    model = prepared_model()
    before = snapshot(model)
    x = torch.randn(2, 3, 12, 12)
    with pytest.raises(ValueError):
        fp.grad_cam(model, x, "conv2", [0, 7])
    with pytest.raises(ValueError):
        fp.saliency(model, x, [0, 7])
    with pytest.raises(ValueError):
        fp.feature_visualisation(model, "conv2", 99, steps=1, image_size=24)
    assert_same(before, snapshot(model))


def test_train_mode_model_gives_eval_map():
    model = make_tiny(10)
    x = torch.randn(2, 3, 8, 8)
    expected = fp.grad_cam(model, x, "conv2", [1, 2])
    model.train()
    assert torch.equal(fp.grad_cam(model, x, "conv2", [1, 2]), expected)
    assert model.training


# ---------------------------------------------------------------------------------------------
# The real pretrained model

# The cat's face in scikit-image's chelsea photo (451x300), annotated once by looking at the
# picture: from the left edge of the left eye to the right cheek, from the forehead to the chin.
CAT_FACE_BOX = {"left": 120, "right": 390, "top": 60, "bottom": 300}


@pytest.mark.slow
def test_real_model_grad_cam_matches_captum(real_model, chelsea_input):
    target = real_model.class_index("Egyptian cat")
    ours = fp.grad_cam(real_model, chelsea_input, "bn2", target)
    reference = LayerGradCam(real_model.module, real_model.layer("bn2")).attribute(
        chelsea_input, target=target, relu_attributions=True
    )
    upsampled = LayerAttribution.interpolate(reference, (224, 224), "bilinear")[:, 0].detach().numpy()
    assert np.abs(ours.numpy() - min_max(upsampled)).max() <= 1e-5

    ours = fp.saliency(real_model, chelsea_input, target)
    reference = Saliency(real_model.module).attribute(chelsea_input.clone().requires_grad_(True), target=target)
    assert torch.allclose(ours, reference.amax(dim=1), atol=1e-5)


@pytest.mark.slow
def test_real_model_grad_cam_points_at_face(real_model, chelsea_input):
    cam = fp.grad_cam(real_model, chelsea_input, targets=None)[0]  # top-1 is "Egyptian cat"
    row, column = divmod(int(cam.argmax()), cam.shape[1])
    # The photo was squeezed to 224x224 without cropping: scale the peak back to photo pixels.
    y = (row + 0.5) * 300 / 224
    x = (column + 0.5) * 451 / 224
    assert CAT_FACE_BOX["top"] <= y <= CAT_FACE_BOX["bottom"]
    assert CAT_FACE_BOX["left"] <= x <= CAT_FACE_BOX["right"]


@pytest.mark.slow
def test_randomised_model_maps_differ(real_model, chelsea_input):
    # "Sanity Checks for Saliency Maps" (Adebayo et al., 2018), full re-initialisation: the
    # Spearman rank correlation between the trained and the randomised model's maps. Measured
    # on chelsea with seeds 0, 1, 2 for the re-initialisation: Grad-CAM 0.53, -0.17, 0.25 and
    # saliency 0.22, 0.20, 0.21, while the trained model against itself gives 1.0. The
    # thresholds 0.6 and 0.4 sit above those values.
    from scipy.stats import spearmanr

    target = real_model.class_index("Egyptian cat")
    randomised = fp.load_model("efficientnet_lite0")
    torch.manual_seed(0)
    for module in randomised.module.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()

    trained_cam = fp.grad_cam(real_model, chelsea_input, targets=target)[0].flatten().numpy()
    random_cam = fp.grad_cam(randomised, chelsea_input, targets=target)[0].flatten().numpy()
    assert spearmanr(trained_cam, random_cam)[0] < 0.6

    trained_saliency = fp.saliency(real_model, chelsea_input, target)[0].flatten().numpy()
    random_saliency = fp.saliency(randomised, chelsea_input, target)[0].flatten().numpy()
    assert spearmanr(trained_saliency, random_saliency)[0] < 0.4
    # The randomisation did not leak into the cached model.
    assert fp.load_model("efficientnet_lite0").predict(chelsea_input, k=1)[0][0] == "Egyptian cat"


@pytest.mark.slow
def test_real_model_batch_equals_single_runs(real_model, chelsea_input):
    coffee = real_model.preprocess(fp.load_image("coffee"))
    batch = torch.cat([chelsea_input, coffee])
    targets = ["Egyptian cat", "espresso"]
    together = fp.grad_cam(real_model, batch, targets=targets)
    assert together.shape == (2, 224, 224)
    for n, (single_input, target) in enumerate(zip([chelsea_input, coffee], targets)):
        single = fp.grad_cam(real_model, single_input, targets=target)
        assert torch.allclose(together[n], single[0], atol=1e-5)
