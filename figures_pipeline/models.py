"""Model registry: named pretrained models that load offline, with their preprocessing and labels.

Lessons call :func:`load_model`::

    model = load_model("efficientnet_lite0")
    x = model.preprocess(load_image("chelsea"))      # (1, 3, 224, 224) float tensor
    model.predict(x, k=3)                            # [("Egyptian cat", 0.54), ...]

Each registry entry is a :class:`ModelEntry`: architecture (a timm or torchvision model name, or a
Python builder), weights source, preprocessing, class names and the weights' sha256. The built-in
entries live one per file in ``figures_pipeline/registry/*.toml``, so changing one entry changes
only that file, and :func:`load_model` records both that file and the weights file as dependencies
of the running code block (see :func:`figures_pipeline.dependencies.record_file`).
:func:`register_model` adds entries at run time, for example a tiny model in test fixtures.

Weights are never downloaded. The ``torch_cache`` source (torchvision's own weights) loads only
when the file is already in torch's cache folder and raises :class:`WeightsNotFoundError`, naming
the file and where it goes, otherwise.

Loading is cached per process (a worker keeps models between pages), but every call returns a
fresh deep copy, so a lesson that re-initialises or trains a model never affects the next call.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import importlib.resources
import json
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from figures_pipeline.dependencies import record_file

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

REGISTRY_DIR = Path(__file__).with_name("registry")
REGISTRY_ENV = "FIGURES_MODEL_REGISTRY"
"""Folder of the built-in entries, one ``<name>.toml`` file per model."""


class ModelRegistryError(Exception):
    """A registry entry is invalid, unknown, or its weights do not match it."""


class WeightsNotFoundError(ModelRegistryError, FileNotFoundError):
    """The weights file of an entry is not on this machine (nothing is ever downloaded)."""


class WeightsHashError(ModelRegistryError):
    """The weights file's sha256 differs from the one the registry entry pins."""


# ---------------------------------------------------------------------------------------------
# Public API


def load_model(name: str) -> "LoadedModel":
    """Load the registry entry ``name`` in eval mode, with its preprocessing and labels.

    Records the weights file (and the entry's registry file, for built-in entries) as
    dependencies of the running code block. Raises :class:`ModelRegistryError` for an unknown
    name, :class:`WeightsNotFoundError` when the weights are not on disk and
    :class:`WeightsHashError` when their sha256 differs from the entry's.
    """
    entry = model_entry(name)
    weights_file = weights_path(entry)
    if entry.registry_file is not None:
        record_file(entry.registry_file)
    record_file(weights_file)

    stat = weights_file.stat()
    cache_key = (entry.fingerprint(), str(weights_file), stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        pristine = _cache.get(cache_key)
        if pristine is None:
            pristine = _build(entry, weights_file)
            # A changed entry or weights file makes a new key, so drop older copies of this name.
            for key in [key for key in _cache if _cache[key].entry.name == entry.name]:
                del _cache[key]
            _cache[cache_key] = pristine
    return pristine.copy()


def list_models() -> list[str]:
    """Return the names of all registry entries, built-in and registered, sorted."""
    return sorted(set(_builtin_entries()) | set(_registered))


def model_entry(name: str) -> "ModelEntry":
    """Return the registry entry ``name``; an entry from :func:`register_model` wins."""
    if name in _registered:
        return _registered[name]
    builtin = _builtin_entries()
    if name in builtin:
        return _read_entry_file(builtin[name])
    raise ModelRegistryError(
        f"unknown model {name!r}: expected one of {', '.join(list_models())} "
        "(add one with figures_pipeline.models.register_model)"
    )


def register_model(entry: "ModelEntry", *, replace: bool = False) -> None:
    """Add ``entry`` to the registry of this process.

    An entry with the name of a built-in or earlier registered one is an error unless
    ``replace=True``. Registered entries are not written anywhere and last until
    :func:`unregister_model` or the end of the process.
    """
    if not replace and entry.name in list_models():
        raise ModelRegistryError(
            f"model {entry.name!r} is already registered: pass replace=True to override it"
        )
    _registered[entry.name] = entry


def unregister_model(name: str) -> None:
    """Remove an entry added with :func:`register_model` (built-in entries stay)."""
    _registered.pop(name, None)


def entry_fingerprint(name: str) -> str:
    """Return the sha256 of the entry's canonical JSON form (changes when any field changes)."""
    return model_entry(name).fingerprint()


def weights_path(entry: "ModelEntry | str") -> Path:
    """Return the weights file of an entry without loading it; raise if it is not on disk."""
    if isinstance(entry, str):
        entry = model_entry(entry)
    return entry.weights.resolve(entry.name)


def clear_cache() -> None:
    """Forget the models loaded in this process (the next :func:`load_model` reads from disk)."""
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------------------------------------
# Registry records


@dataclass(frozen=True)
class Preprocessing:
    """Resize, crop and normalisation settings that turn a photo into the model's input tensor.

    ``resize`` is either ``(height, width)``, the exact size (the aspect ratio is not kept), or an
    int, the length of the shorter side after resizing (the aspect ratio is kept). ``crop`` is the
    side of the centre crop taken after resizing, or ``None``. Resizing is bilinear with
    antialiasing on a float tensor in ``[0, 1]``; then each channel is normalised with ``mean``
    and ``std`` (RGB order).
    """

    resize: tuple[int, int] | int = (224, 224)
    crop: int | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def as_dict(self) -> dict[str, Any]:
        resize = list(self.resize) if isinstance(self.resize, tuple) else self.resize
        return {"resize": resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class WeightsSource:
    """Location of an entry's weights file.

    ``source`` is one of:

    - ``"package"``: ``file`` inside the installed Python package ``package``;
    - ``"path"``: ``file`` is a local path (in a registry file, relative to that file's folder;
      elsewhere, relative to the current folder);
    - ``"torch_cache"``: ``file`` in torch's cache folder ``torch.hub.get_dir()/checkpoints``,
      where torchvision keeps the weights named by ``torchvision_weights`` (an enum member such
      as ``"ResNet18_Weights.IMAGENET1K_V1"``). It is never downloaded.
    """

    source: str
    file: str = ""
    package: str | None = None
    torchvision_weights: str | None = None

    def resolve(self, model_name: str) -> Path:
        """Return the weights file's path; raise :class:`WeightsNotFoundError` when it is missing."""
        if self.source == "package":
            try:
                root = importlib.resources.files(self.package)
            except ModuleNotFoundError as error:
                raise WeightsNotFoundError(
                    f"model {model_name!r}: the package {self.package!r} that ships its weights is "
                    f"not installed ({error}); install it with pip"
                ) from None
            path = Path(str(root.joinpath(self.file)))
        elif self.source == "path":
            path = Path(self.file).expanduser()
        elif self.source == "torch_cache":
            path = _torch_checkpoints_dir() / self.file
            if not path.is_file():
                raise WeightsNotFoundError(
                    f"model {model_name!r}: weights file {self.file!r} not found at {path}. "
                    "Nothing is downloaded at build time: on a machine with a network, fetch it "
                    f"once with torchvision ({self.torchvision_weights}.get_state_dict()) or copy "
                    f"the file to {path.parent}/ (TORCH_HOME moves that folder)"
                )
        else:
            raise ModelRegistryError(
                f"model {model_name!r}: invalid weights source {self.source!r}, expected "
                "'package', 'path' or 'torch_cache'"
            )

        if not path.is_file():
            raise WeightsNotFoundError(f"model {model_name!r}: weights file not found at {path}")
        return path.resolve()

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file": self.file,
            "package": self.package,
            "torchvision_weights": self.torchvision_weights,
        }


@dataclass(frozen=True)
class ModelEntry:
    """One named model of the registry.

    Fields:
        name: registry name, as passed to :func:`load_model`.
        architecture: ``"timm"`` or ``"torchvision"`` (``arch_name`` is the library's model
            name), or ``"python"`` (``arch_name`` is ``"module:function"``, or ``builder`` is set).
        arch_name: model name in that library, or the builder's import path.
        weights: where the weights file is (:class:`WeightsSource`).
        sha256: hex sha256 of the weights file, or a prefix of it of at least 8 digits
            (torchvision names its files with such a prefix). Checked on every load from disk.
        preprocessing: :class:`Preprocessing` of photos for this model.
        labels: ``"imagenet"`` (the 1000 ImageNet-1k class names that torchvision ships) or the
            class names in output order.
        state_dict_keys: ``"by_name"`` (load_state_dict, strict) or ``"by_position"`` (the file's
            tensors in order onto the architecture's, with a shape check on every pair).
        default_target_layer: qualified module name of the usual Grad-CAM layer.
        description: one line for people; not part of the fingerprint.
        builder: a callable returning the architecture (for ``architecture="python"``); it is
            part of the fingerprint by its qualified name only.
        registry_file: the TOML file of a built-in entry (recorded as a dependency on load).
    """

    name: str
    architecture: str
    arch_name: str
    weights: WeightsSource
    sha256: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: str | tuple[str, ...] = "imagenet"
    state_dict_keys: str = "by_name"
    default_target_layer: str = ""
    description: str = ""
    builder: Callable[[], "nn.Module"] | None = None
    registry_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the entry as plain JSON-ready data (the fingerprint's input)."""
        builder = None
        if self.builder is not None:
            builder = f"{self.builder.__module__}:{self.builder.__qualname__}"
        return {
            "name": self.name,
            "architecture": self.architecture,
            "arch_name": self.arch_name,
            "weights": self.weights.as_dict(),
            "sha256": self.sha256,
            "preprocessing": self.preprocessing.as_dict(),
            "labels": self.labels if isinstance(self.labels, str) else list(self.labels),
            "state_dict_keys": self.state_dict_keys,
            "default_target_layer": self.default_target_layer,
            "builder": builder,
        }

    def fingerprint(self) -> str:
        """Return the sha256 of :meth:`as_dict` as canonical JSON."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The loaded model


class LoadedModel:
    """A registry model in eval mode with its preprocessing and labels.

    Attributes:
        name: registry name.
        module: the ``torch.nn.Module``, in eval mode.
        labels: class names in output order.
        entry: the :class:`ModelEntry` it was loaded from.
        weights_file: path of the weights file.
        default_target_layer: qualified name of the usual Grad-CAM layer (e.g. ``"bn2"``).
    """

    def __init__(self, entry: ModelEntry, module: "nn.Module", labels: list[str], weights_file: Path):
        self.name = entry.name
        self.entry = entry
        self.module = module
        self.labels = labels
        self.weights_file = weights_file
        self.default_target_layer = entry.default_target_layer

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, {len(self.labels)} classes, weights={str(self.weights_file)!r})"

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.module(x)

    def copy(self) -> "LoadedModel":
        """Return an independent copy (a deep copy of the module)."""
        return LoadedModel(self.entry, copy.deepcopy(self.module), list(self.labels), self.weights_file)

    def preprocess(self, image: "np.ndarray | torch.Tensor | Sequence[np.ndarray]") -> "torch.Tensor":
        """Turn photos into the model's input batch.

        ``image`` is an ``(H, W, 3)`` array (uint8 in ``[0, 255]`` or float in ``[0, 1]``), a PIL
        image, or a list of them. Returns a float32 tensor ``(N, 3, h, w)`` (``(1, 3, 224, 224)``
        for one photo and the default model), resized, centre-cropped and normalised as the
        entry's :class:`Preprocessing` specifies.
        """
        import torch

        images = image if isinstance(image, (list, tuple)) else [image]
        return torch.cat([_preprocess_one(item, self.entry.preprocessing) for item in images])

    def to_display(self, x: "torch.Tensor") -> "np.ndarray":
        """Undo the normalisation of one input ``(1, 3, H, W)`` or ``(3, H, W)``.

        Returns an ``(H, W, 3)`` float array clipped to ``[0, 1]`` for ``imshow``.
        """
        import torch

        if x.dim() == 4:
            x = x[0]
        mean = torch.tensor(self.entry.preprocessing.mean).view(3, 1, 1)
        std = torch.tensor(self.entry.preprocessing.std).view(3, 1, 1)
        picture = x.detach().cpu().float() * std + mean
        return picture.clamp(0, 1).permute(1, 2, 0).numpy()

    def predict(self, x: "torch.Tensor", k: int = 5) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """Return the top-``k`` class names with their softmax probabilities.

        ``x`` is a preprocessed batch ``(N, 3, H, W)``. For ``N == 1`` the result is a list of
        ``(label, probability)`` pairs, highest first; for a larger batch it is one such list per
        sample. The model's mode and gradients are left as they were.
        """
        import torch

        with torch.no_grad(), _eval_mode(self.module):
            probabilities = self.module(x).softmax(dim=-1)
        values, indices = probabilities.topk(k, dim=-1)
        results = [
            [(self.labels[int(i)], float(v)) for v, i in zip(row_values, row_indices)]
            for row_values, row_indices in zip(values, indices)
        ]
        return results[0] if len(results) == 1 else results

    def class_index(self, label: str) -> int:
        """Return the output index of the class named ``label`` (exact match)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"model {self.name!r} has no class named {label!r}") from None

    def layer(self, name: str) -> "nn.Module":
        """Return the submodule with the qualified name ``name`` (e.g. ``"blocks.6"``)."""
        return get_layer(self.module, name)


def get_layer(module: "nn.Module", name: str) -> "nn.Module":
    """Return ``module``'s submodule with the qualified name ``name``; a clear error if missing."""
    try:
        return module.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in module.named_modules() if n and n.count(".") < 2]
        raise KeyError(
            f"no layer named {name!r} in {type(module).__name__}; top-level layers include: "
            + ", ".join(names[:40])
        ) from None


# ---------------------------------------------------------------------------------------------
# Helpers

_registered: dict[str, ModelEntry] = {}
_cache: dict[tuple[Any, ...], LoadedModel] = {}
_cache_lock = threading.Lock()


def _builtin_entries() -> dict[str, Path]:
    """Registry files by model name: the package's own, then those of ``FIGURES_MODEL_REGISTRY``.

    ``FIGURES_MODEL_REGISTRY`` lists extra folders of ``<name>.toml`` files (separated like
    ``PATH``), so a project can add models without code; a package entry keeps its name.
    """
    folders = [REGISTRY_DIR]
    folders += [Path(folder) for folder in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if folder]
    entries: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            entries.setdefault(path.stem, path)
    return entries


def _read_entry_file(path: Path) -> ModelEntry:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        weights = WeightsSource(**data.pop("weights"))
        if weights.source == "path" and not Path(weights.file).expanduser().is_absolute():
            # A registry file names its weights relative to itself, wherever the build runs.
            weights = dataclasses.replace(weights, file=str(path.parent / weights.file))
        preprocessing_data = data.pop("preprocessing", {})
        resize = preprocessing_data.get("resize", [224, 224])
        preprocessing = Preprocessing(
            resize=tuple(resize) if isinstance(resize, list) else resize,
            crop=preprocessing_data.get("crop"),
            mean=tuple(preprocessing_data.get("mean", Preprocessing.mean)),
            std=tuple(preprocessing_data.get("std", Preprocessing.std)),
        )
        labels = data.pop("labels", "imagenet")
        return ModelEntry(
            name=path.stem,
            weights=weights,
            preprocessing=preprocessing,
            labels=labels if isinstance(labels, str) else tuple(labels),
            registry_file=path,
            **data,
        )
    except (tomllib.TOMLDecodeError, TypeError, KeyError) as error:
        raise ModelRegistryError(f"invalid registry file {path}: {error}") from None


def _torch_checkpoints_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _build(entry: ModelEntry, weights_file: Path) -> LoadedModel:
    import torch

    _check_sha256(entry, weights_file)
    module = _build_architecture(entry)
    state_dict = torch.load(weights_file, map_location="cpu", weights_only=True)
    if isinstance(state_dict, dict) and "state_dict" in state_dict and len(state_dict) <= 3:
        state_dict = state_dict["state_dict"]
    if entry.state_dict_keys == "by_position":
        state_dict = _rename_by_position(entry.name, state_dict, module.state_dict())
    elif entry.state_dict_keys != "by_name":
        raise ModelRegistryError(
            f"model {entry.name!r}: invalid state_dict_keys {entry.state_dict_keys!r}, "
            "expected 'by_name' or 'by_position'"
        )
    module.load_state_dict(state_dict, strict=True)
    module.eval()
    return LoadedModel(entry, module, _labels(entry), weights_file)


def _check_sha256(entry: ModelEntry, weights_file: Path) -> None:
    expected = entry.sha256.lower()
    if len(expected) < 8:
        raise ModelRegistryError(
            f"model {entry.name!r}: sha256 {entry.sha256!r} is too short (at least 8 hex digits)"
        )
    digest = hashlib.sha256()
    with open(weights_file, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if not actual.startswith(expected):
        raise WeightsHashError(
            f"model {entry.name!r}: weights file {weights_file} has sha256 {actual}, but the "
            f"registry entry expects {entry.sha256}. The file changed or is corrupt: restore it, "
            "or update the entry's sha256 if the new weights are intended"
        )


def _build_architecture(entry: ModelEntry) -> "nn.Module":
    if entry.architecture == "timm":
        import timm

        return timm.create_model(entry.arch_name, pretrained=False)
    if entry.architecture == "torchvision":
        import torchvision

        # weights=None builds the architecture only: the weights come from the checked file.
        return torchvision.models.get_model(entry.arch_name, weights=None)
    if entry.architecture == "python":
        builder = entry.builder
        if builder is None:
            module_name, _, function_name = entry.arch_name.partition(":")
            builder = getattr(importlib.import_module(module_name), function_name)
        return builder()
    raise ModelRegistryError(
        f"model {entry.name!r}: invalid architecture {entry.architecture!r}, "
        "expected 'timm', 'torchvision' or 'python'"
    )


def _rename_by_position(
    name: str, source: dict[str, "torch.Tensor"], target: dict[str, "torch.Tensor"]
) -> dict[str, "torch.Tensor"]:
    """Map the file's tensors, in order, onto the architecture's names, checking every shape."""
    if len(source) != len(target):
        raise ModelRegistryError(
            f"model {name!r}: the weights file has {len(source)} tensors, the architecture "
            f"expects {len(target)}"
        )
    renamed = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelRegistryError(
                f"model {name!r}: tensor {source_key!r} of shape {tuple(tensor.shape)} does not fit "
                f"{target_key!r}, expected shape {tuple(expected.shape)}"
            )
        renamed[target_key] = tensor
    return renamed


def _labels(entry: ModelEntry) -> list[str]:
    if entry.labels == "imagenet":
        # torchvision ships the ImageNet-1k class names in its weights' metadata (no download).
        from torchvision.models import ResNet18_Weights

        return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    if isinstance(entry.labels, str):
        raise ModelRegistryError(
            f"model {entry.name!r}: invalid labels {entry.labels!r}, expected 'imagenet' or a list"
        )
    return list(entry.labels)


def _preprocess_one(image: Any, preprocessing: Preprocessing) -> "torch.Tensor":
    import numpy as np
    import torch
    import torch.nn.functional as F

    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an image of shape (H, W, 3), got shape {array.shape}")
    array = array[..., :3]
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / 255.0
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)[None]

    height, width = x.shape[-2:]
    if isinstance(preprocessing.resize, int):
        scale = preprocessing.resize / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        size = tuple(preprocessing.resize)
    if size != (height, width):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    if preprocessing.crop is not None:
        crop = preprocessing.crop
        top = (x.shape[-2] - crop) // 2
        left = (x.shape[-1] - crop) // 2
        x = x[..., top : top + crop, left : left + crop]

    mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class _eval_mode:
    """Put a module in eval mode and restore every submodule's training flag afterwards."""

    def __init__(self, module: "nn.Module"):
        self.module = module

    def __enter__(self) -> None:
        self.flags = [(m, m.training) for m in self.module.modules()]
        self.module.eval()

    def __exit__(self, *exc: object) -> None:
        for module, training in self.flags:
            module.training = training
