"""Record the files a running code block reads, so its cache key can cover them.

The worker that runs lesson code activates a recorder around each block. Toolkit functions that
load a model or a photo call :func:`record_file` so those inputs are never missed, even when a
library reads them through a path the automatic recorder does not see.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

_active: set[str] | None = None


def record_file(path: str | os.PathLike[str]) -> None:
    """Add ``path`` to the dependencies of the running block; do nothing outside a block."""
    if _active is None:
        return
    _active.add(os.path.realpath(os.fspath(path)))


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect every path passed to :func:`record_file` while the ``with`` body runs."""
    global _active
    previous = _active
    collected: set[str] = set()
    _active = collected
    try:
        yield collected
    finally:
        _active = previous
