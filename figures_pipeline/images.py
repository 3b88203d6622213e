"""Sample photos by name (files that scikit-image ships) or a project image by path.

``load_image("chelsea")`` returns scikit-image's cat photo as an ``(H, W, 3)`` uint8 array and
records its file as a dependency of the running code block. Only photos in the scikit-image wheel
are offered: its other data sets are fetched from the network, which never happens here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from figures_pipeline.dependencies import record_file

if TYPE_CHECKING:
    import numpy as np

SAMPLE_IMAGES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}
"""Names accepted by :func:`load_image`, mapped to their file in ``skimage/data/``."""


def load_image(name_or_path: str | os.PathLike[str]) -> "np.ndarray":
    """Return a photo as an ``(H, W, 3)`` uint8 array (RGB).

    ``name_or_path`` is a name from :data:`SAMPLE_IMAGES` (e.g. ``"chelsea"``, 300x451) or the path
    of an image file (relative paths are relative to the current folder, which is the lesson's
    folder inside a running block). Grey-scale photos (``camera``, the textures) are repeated over
    three channels and an alpha channel is dropped, so every result has three channels.
    Records the file as a dependency of the running block.
    """
    path = image_path(name_or_path)
    record_file(path)

    import numpy as np
    from skimage import io

    image = np.asarray(io.imread(path))
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        # Some readers return 16-bit or float data; scale to the usual 8-bit range.
        if image.dtype == np.uint16:
            maximum = 65535
        elif image.dtype.kind == "f":
            maximum = 1.0
        else:
            maximum = 255
        image = np.clip(np.rint(image.astype(np.float64) / maximum * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def image_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Return the file behind a sample name or path; raise ``FileNotFoundError`` when missing."""
    if isinstance(name_or_path, str) and name_or_path in SAMPLE_IMAGES:
        import skimage

        path = Path(skimage.__file__).parent / "data" / SAMPLE_IMAGES[name_or_path]
        if not path.is_file():
            raise FileNotFoundError(f"sample photo {name_or_path!r} not found at {path}")
        return path

    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"image {str(name_or_path)!r} not found: expected a sample name "
            f"({', '.join(sorted(SAMPLE_IMAGES))}) or the path of an image file"
        )
    return path.resolve()
