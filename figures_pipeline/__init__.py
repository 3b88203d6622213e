"""Run lesson code blocks, cache their figures, and draw interpretability figures.

Lessons use the toolkit as ``import figures_pipeline as fp`` and ``fp.grad_cam(...)``. The names
below resolve lazily through the module-level ``__getattr__``, so importing this package never
imports torch or matplotlib: the toolkit module is imported on first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import Any

_TOOLKIT: dict[str, str] = {
    # Models and images
    "load_model": "models",
    "list_models": "models",
    "model_entry": "models",
    "register_model": "models",
    "unregister_model": "models",
    "entry_fingerprint": "models",
    "weights_path": "models",
    "LoadedModel": "models",
    "ModelEntry": "models",
    "WeightsSource": "models",
    "Preprocessing": "models",
    "ModelRegistryError": "models",
    "WeightsNotFoundError": "models",
    "WeightsHashError": "models",
    "load_image": "images",
    "SAMPLE_IMAGES": "images",
    # Attribution
    "grad_cam": "attribution",
    "grad_cam_plus_plus": "attribution",
    "saliency": "attribution",
    "normalize_maps": "attribution",
    # Features
    "filter_grid": "features",
    "activation_maps": "features",
    "plot_activation_maps": "features",
    "feature_pyramid": "features",
    "feature_visualisation": "features",
    # Receptive fields
    "receptive_fields": "receptive_field",
    "plot_receptive_fields": "receptive_field",
    "ReceptiveField": "receptive_field",
    # Plotting
    "overlay": "plotting",
    "show_image": "plotting",
    "show_heatmap": "plotting",
    "use_korean_font": "plotting",
}


def __getattr__(name: str) -> Any:
    module_name = _TOOLKIT.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TOOLKIT))
