"""Cache keys of code blocks and the dependencies they record.

A block has two keys:

* its **code key** covers the normalised code (comments and blank lines ignored), the full key of
  the block before it on the page and the rendering settings. It is known before the block runs.
* its **full key** covers the code key and the digest of every dependency the session recorded
  up to the end of the block: files it read, ``figures_pipeline`` toolkit modules it imported and
  the versions of the libraries that draw. It names the store entry of the block's outputs.

A dependency is a ``(spec, digest)`` pair. Specs are portable between checkouts and virtual
environments:

``lesson:data.csv``                file in the lesson's folder (resolved per language tree)
``repo:content/shared/x.npy``      file under the project root
``pkg:skimage/data/chelsea.png``   file inside an installed package (found without importing it)
``module:figures_pipeline/models.py``  source of a toolkit module
``abs:/srv/weights/model.pt``      any other file
``lib:torch``                      an installed library's version (digest is the version)

Nothing here imports torch or matplotlib: library versions come from package metadata.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: Libraries whose versions every block's key covers.
LIBRARIES = ("torch", "torchvision", "timm", "numpy", "matplotlib")
#: Bump when the key layout or the rendering of outputs changes, so every block re-runs.
KEY_FORMAT = 2
MISSING = "missing"


@dataclass(frozen=True)
class KeyContext:
    """The folders a page's dependency specs resolve against: the project root and the lesson folder."""

    root: Path
    lesson_dir: Path


def code_key(normalised_digest: str, previous_key: str | None, settings: dict[str, object]) -> str:
    """Return the code key of a block from the sha256 of its normalised code and the previous block's full key."""
    payload = {
        "format": KEY_FORMAT,
        "code": normalised_digest,
        "previous": previous_key,
        "settings": settings,
    }
    return _sha256_json(payload)


def full_key(block_code_key: str, dependencies: list[tuple[str, str]]) -> str:
    """Return the full key of a block from its code key and its recorded dependencies."""
    return _sha256_json({"code_key": block_code_key, "dependencies": sorted(dependencies)})


def library_versions() -> dict[str, str]:
    """Return the installed version of each library in :data:`LIBRARIES` (``"missing"`` if absent)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = MISSING
    return versions


def describe_spec(spec: str, context: KeyContext) -> str:
    """Return the path an author recognises for a dependency spec."""
    kind, _, rest = spec.partition(":")
    if kind == "lesson":
        return _display_path(context.lesson_dir / rest, context.root)
    if kind in ("pkg", "module"):
        return rest
    return rest


class CacheFile:
    """A JSON object kept in a file between builds: read once, written atomically when it changed.

    Values that ``valid`` rejects are dropped when the file is read, so a damaged or outdated file
    costs only the work it would have saved. Safe to use from several threads.
    """

    def __init__(self, path: Path | None, valid: Callable[[object], bool] = lambda value: True) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, object] = {}
        self._dirty = False
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self._values = {str(key): value for key, value in loaded.items() if valid(value)}

    def get(self, key: str) -> object | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: str, value: object) -> None:
        with self._lock:
            self._values[key] = value
            self._dirty = True

    def save(self) -> None:
        """Write the file if a value was added since it was read."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            text = json.dumps(self._values, sort_keys=True)
            self._dirty = False
        write_text_atomically(self.path, text)


class FileHasher:
    """sha256 digests of files, cached by (path, size, mtime_ns) in memory and optionally on disk.

    The disk cache keeps ``status`` and warm builds from re-reading large weights files. A rewrite
    that keeps the file's size and lands within one tick of the file system's timestamps is missed.
    The tick is 1 ns on ext4 and 2 s on FAT.
    """

    def __init__(self, cache_file: Path | None = None) -> None:
        self._cache = CacheFile(cache_file, _is_hash_entry)

    def digest(self, path: Path) -> str | None:
        """Return the sha256 of the file at ``path``, or None if it is not a readable file."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        cached = self._cache.get(str(path))
        if cached is not None and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return cached[2]
        try:
            digest = sha256_file(path)
        except OSError:
            return None
        self._cache.put(str(path), [stat.st_size, stat.st_mtime_ns, digest])
        return digest

    def save(self) -> None:
        """Write the cache file if any digest was computed since it was read."""
        self._cache.save()


class DependencyResolver:
    """Current digests of dependency specs, as the recorded ones are checked against them."""

    def __init__(self, hasher: FileHasher, versions: dict[str, str] | None = None) -> None:
        self.hasher = hasher
        self.versions = versions if versions is not None else library_versions()
        self._package_dirs: dict[str, Path | None] = {}

    def resolve_path(self, spec: str, context: KeyContext) -> Path | None:
        """Return the file a path spec names, or None if its package is not installed."""
        kind, _, rest = spec.partition(":")
        if kind == "lesson":
            return context.lesson_dir / rest
        if kind == "repo":
            return context.root / rest
        if kind in ("pkg", "module"):
            top, _, inner = rest.partition("/")
            package_dir = self._package_dir(top)
            return None if package_dir is None else package_dir / inner
        if kind == "abs":
            return Path(rest)
        raise ValueError(f"invalid dependency spec {spec!r}: unknown kind {kind!r}")

    def current_digest(self, spec: str, context: KeyContext) -> str | None:
        """Return the current digest of ``spec`` (a file's sha256 or a library's version)."""
        kind, _, rest = spec.partition(":")
        if kind == "lib":
            return self.versions.get(rest, MISSING)
        path = self.resolve_path(spec, context)
        return None if path is None else self.hasher.digest(path)

    def _package_dir(self, top: str) -> Path | None:
        if top not in self._package_dirs:
            self._package_dirs[top] = _find_package_dir(top)
        return self._package_dirs[top]


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def sha256_file(path: Path | str) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _find_package_dir(top: str) -> Path | None:
    # find_spec on a top-level name locates the package without executing it.
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if spec.origin:
        return Path(spec.origin).parent
    return None


def _display_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _is_hash_entry(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(number, int) for number in value[:2])
        and isinstance(value[2], str)
    )


def _sha256_json(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
