"""Model registry, weights checks, per-process cache, dependency recording and photos."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import figures_pipeline as fp
from figures_pipeline import models
from figures_pipeline.dependencies import recording

from .conftest import TinyNet, make_tiny

TINY_LABELS = ("cat", "dog", "cup", "rocket")


def build_tiny() -> TinyNet:
    return TinyNet()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_entry(tmp_path):
    """Register a tiny model whose weights file lives in tmp_path; unregister afterwards."""
    weights = tmp_path / "tiny.pt"
    torch.save(make_tiny(1).state_dict(), weights)
    entry = models.ModelEntry(
        name="tiny_test",
        architecture="python",
        arch_name="",
        builder=build_tiny,
        weights=models.WeightsSource(source="path", file=str(weights)),
        sha256=sha256_of(weights),
        preprocessing=models.Preprocessing(resize=20, crop=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        labels=TINY_LABELS,
        default_target_layer="conv2",
    )
    models.register_model(entry)
    yield entry
    models.unregister_model("tiny_test")
    models.clear_cache()


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """Point torch's cache at an empty folder and make every download attempt fail the test."""
    import torch.hub

    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_download(*args, **kwargs):
        raise AssertionError("the registry must never download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return home


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_builtin_entries():
    names = fp.list_models()
    for name in ("efficientnet_lite0", "resnet18", "alexnet", "vgg16"):
        assert name in names
    entry = fp.model_entry("efficientnet_lite0")
    assert entry.architecture == "timm"
    assert entry.state_dict_keys == "by_position"
    assert entry.sha256 == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    assert entry.registry_file == models.REGISTRY_DIR / "efficientnet_lite0.toml"


def test_unknown_model_names_choices():
    with pytest.raises(models.ModelRegistryError, match="unknown model 'resnet99'.*efficientnet_lite0"):
        fp.load_model("resnet99")


def test_fingerprint_changes_with_each_field(tiny_entry):
    base = tiny_entry.fingerprint()
    assert fp.entry_fingerprint("tiny_test") == base
    changes = [
        {"sha256": "0" * 64},
        {"labels": ("a", "b", "c", "d")},
        {"preprocessing": models.Preprocessing(resize=(16, 16))},
        {"weights": models.WeightsSource(source="path", file="/elsewhere/tiny.pt")},
        {"default_target_layer": "conv1"},
        {"state_dict_keys": "by_position"},
    ]
    fingerprints = {base}
    for change in changes:
        fingerprints.add(dataclasses.replace(tiny_entry, **change).fingerprint())
    assert len(fingerprints) == len(changes) + 1
    assert fp.entry_fingerprint("efficientnet_lite0") != fp.entry_fingerprint("resnet18")


def test_registry_files_are_read_on_each_lookup(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "REGISTRY_DIR", tmp_path)
    source = (Path(models.__file__).with_name("registry") / "efficientnet_lite0.toml").read_text()
    copied = tmp_path / "lite_copy.toml"
    copied.write_text(source)
    (tmp_path / "broken.toml").write_text("architecture = [unclosed\n")

    assert fp.list_models() == ["broken", "lite_copy"]
    before = fp.entry_fingerprint("lite_copy")
    copied.write_text(source.replace('default_target_layer = "bn2"', 'default_target_layer = "conv_head"'))
    assert fp.entry_fingerprint("lite_copy") != before
    assert fp.model_entry("lite_copy").default_target_layer == "conv_head"
    with pytest.raises(models.ModelRegistryError, match="invalid registry file .*broken.toml"):
        fp.model_entry("broken")


def test_register_refuses_duplicate_name(tiny_entry):
    with pytest.raises(models.ModelRegistryError, match="already registered"):
        models.register_model(tiny_entry)
    models.register_model(tiny_entry, replace=True)


# ---------------------------------------------------------------------------------------------
# Loading a registered tiny model


def test_tiny_model_loads_with_preprocessing(tiny_entry):
    loaded = fp.load_model("tiny_test")
    assert not loaded.module.training
    assert loaded.labels == list(TINY_LABELS)
    assert loaded.default_target_layer == "conv2"
    expected = make_tiny(1).state_dict()
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, expected[key]), key

    photo = np.full((30, 40, 3), 255, dtype=np.uint8)
    x = loaded.preprocess(photo)
    assert x.shape == (1, 3, 16, 16)  # shorter side 20, then a centre crop of 16
    assert torch.allclose(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25
    assert np.allclose(loaded.to_display(x), 1.0)

    top = loaded.predict(x, k=2)
    with torch.no_grad():
        probabilities = make_tiny(1)(x).softmax(-1)[0]
    best = int(probabilities.argmax())
    assert top[0][0] == TINY_LABELS[best]
    assert top[0][1] == pytest.approx(float(probabilities[best]), abs=1e-6)
    assert len(top) == 2
    assert len(loaded.predict(torch.cat([x, x]), k=3)) == 2


def test_weights_hash_mismatch_is_clear(tiny_entry, tmp_path):
    weights = Path(tiny_entry.weights.file)
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(models.WeightsHashError) as error:
        fp.load_model("tiny_test")
    message = str(error.value)
    assert str(weights) in message
    assert tiny_entry.sha256 in message
    assert sha256_of(weights) in message


def test_changed_weights_file_is_reloaded(tiny_entry):
    first = fp.load_model("tiny_test")
    weights = Path(tiny_entry.weights.file)
    torch.save(make_tiny(2).state_dict(), weights)
    models.register_model(dataclasses.replace(tiny_entry, sha256=sha256_of(weights)), replace=True)
    second = fp.load_model("tiny_test")
    assert not torch.equal(first.module.conv1.weight, second.module.conv1.weight)
    assert torch.equal(second.module.conv1.weight, make_tiny(2).conv1.weight)


def test_each_load_returns_pristine_copy(tiny_entry):
    first = fp.load_model("tiny_test")
    with torch.no_grad():
        first.module.conv1.weight.zero_()
    first.module.train()
    second = fp.load_model("tiny_test")
    assert second.module is not first.module
    assert not second.module.training
    assert torch.equal(second.module.conv1.weight, make_tiny(1).conv1.weight)


def test_load_records_weights_file(tiny_entry):
    with recording() as files:
        fp.load_model("tiny_test")
        fp.load_model("tiny_test")  # a cached load records again
    assert files == {str(Path(tiny_entry.weights.file).resolve())}


@pytest.mark.slow
def test_load_records_registry_file(real_model):
    with recording() as files:
        fp.load_model("efficientnet_lite0")
    assert str(models.REGISTRY_DIR / "efficientnet_lite0.toml") in files
    assert str(real_model.weights_file) in files
    assert real_model.weights_file.name == "efficientnet-lite0-57934424.pth"


def test_by_position_checks_every_shape(tiny_entry, tmp_path):
    wrong = tmp_path / "wrong.pt"
    state = make_tiny(1).state_dict()
    state["conv2.weight"] = torch.zeros(8, 6, 5, 5)
    torch.save(state, wrong)
    entry = dataclasses.replace(
        tiny_entry,
        name="tiny_wrong",
        state_dict_keys="by_position",
        weights=models.WeightsSource(source="path", file=str(wrong)),
        sha256=sha256_of(wrong),
    )
    models.register_model(entry)
    try:
        with pytest.raises(models.ModelRegistryError, match=r"'conv2.weight' of shape \(8, 6, 5, 5\)"):
            fp.load_model("tiny_wrong")
    finally:
        models.unregister_model("tiny_wrong")


# ---------------------------------------------------------------------------------------------
# torchvision entries and the local torch cache


@pytest.mark.parametrize(
    "name, file_name",
    [("resnet18", "resnet18-f37072fd.pth"), ("alexnet", "alexnet-owt-7be5be79.pth"), ("vgg16", "vgg16-397923af.pth")],
)
def test_torchvision_entry_without_cache_names_file(empty_torch_home, name, file_name):
    with pytest.raises(models.WeightsNotFoundError) as error:
        fp.load_model(name)
    message = str(error.value)
    assert file_name in message
    assert str(empty_torch_home / "hub" / "checkpoints") in message


def test_torchvision_entry_loads_from_cache(empty_torch_home):
    import torchvision

    checkpoints = empty_torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    cached = checkpoints / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), cached)

    # These are not torchvision's weights, so the sha256 prefix in the file name does not match.
    with pytest.raises(models.WeightsHashError, match="resnet18-f37072fd.pth"):
        fp.load_model("resnet18")

    entry = dataclasses.replace(fp.model_entry("resnet18"), sha256=sha256_of(cached), registry_file=None)
    models.register_model(entry, replace=True)
    try:
        loaded = fp.load_model("resnet18")
    finally:
        models.unregister_model("resnet18")
        models.clear_cache()
    assert torch.equal(loaded.module.fc.weight, reference.fc.weight)
    assert loaded.labels[281] == "tabby"
    assert loaded.preprocess(np.zeros((300, 400, 3), dtype=np.uint8)).shape == (1, 3, 224, 224)


# ---------------------------------------------------------------------------------------------
# The embedded default model


@pytest.mark.slow
def test_default_model_top1_on_photos(real_model):
    chelsea = real_model.predict(real_model.preprocess(fp.load_image("chelsea")), k=3)
    coffee = real_model.predict(real_model.preprocess(fp.load_image("coffee")), k=3)
    assert chelsea[0][0] == "Egyptian cat"
    assert chelsea[0][1] == pytest.approx(0.54, abs=0.02)
    assert [label for label, _ in chelsea[1:]] == ["tiger cat", "tabby"]
    assert coffee[0][0] == "espresso"
    assert coffee[0][1] == pytest.approx(0.90, abs=0.02)
    assert not real_model.module.training
    assert len(real_model.labels) == 1000
    assert real_model.default_target_layer == "bn2"


# ---------------------------------------------------------------------------------------------
# Photos


def test_load_image_sample_photo():
    with recording() as files:
        chelsea = fp.load_image("chelsea")
    assert chelsea.shape == (300, 451, 3)
    assert chelsea.dtype == np.uint8
    assert any(path.endswith("chelsea.png") for path in files)
    camera = fp.load_image("camera")
    assert camera.shape == (512, 512, 3)
    assert np.array_equal(camera[..., 0], camera[..., 2])


def test_load_image_from_path(tmp_path):
    from skimage import io

    picture = np.zeros((5, 7, 3), dtype=np.uint8)
    picture[1, 2] = (255, 0, 10)
    path = tmp_path / "dot.png"
    io.imsave(path, picture, check_contrast=False)
    with recording() as files:
        loaded = fp.load_image(path)
    assert np.array_equal(loaded, picture)
    assert files == {str(path.resolve())}


def test_load_image_unknown_name():
    with pytest.raises(FileNotFoundError, match="'kitten' not found.*chelsea"):
        fp.load_image("kitten")


# ---------------------------------------------------------------------------------------------
# Lazy package import


def test_package_import_does_not_import_torch():
    code = (
        "import sys, figures_pipeline as fp\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "fp.use_korean_font\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_toolkit_name_resolves():
    import figures_pipeline

    for name in figures_pipeline._TOOLKIT:
        assert getattr(fp, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'grad_camm'"):
        fp.grad_camm
