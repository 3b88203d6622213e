"""The committed figure store: content-addressed output objects plus a text manifest.

Layout of the store folder (``figure_store/`` at the project root by default)::

    manifest.txt            one JSON entry per line, sorted; "#" lines are comments
    objects/<sha256>.png    figures, named by the sha256 of their bytes
    objects/<sha256>.txt    standard output of a block
    objects/<sha256>.json   the traceback of a block marked ``expect-error``

A manifest entry records one successful run of one block::

    {"code_key": "...", "key": "...", "status": "ok",
     "dependencies": [["lib:numpy", "2.4.6"], ["lesson:data.csv", "<sha256>"], ...],
     "outputs": [{"type": "stdout", "object": "<sha256>.txt"},
                 {"type": "image", "object": "<sha256>.png", "width": 640, "height": 480}]}

Several entries may share a code key, for example when the Korean and English trees hold different
data files. A block uses the entry whose dependencies match the current files. One entry per
line lets git merge manifests of parallel CI jobs by union (``merge=union`` in the store's
``.gitattributes``); duplicate lines collapse when the manifest is next written.

Writers take a file lock, re-read the manifest, merge and replace it atomically; objects are
written to a temporary file and renamed before the entry that names them, so a killed build leaves
no half-written entry, only unreferenced objects that ``prune`` removes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from filelock import FileLock

from figures_pipeline.keys import FileHasher, sha256_bytes

MANIFEST_NAME = "manifest.txt"
OBJECTS_DIR = "objects"
_HEADER = (
    "# Figure store manifest: one JSON entry per line (see figures_pipeline/store.py).\n"
    "# Regenerate with `python -m figures_pipeline run`; check with `python -m figures_pipeline verify`.\n"
)
_GITATTRIBUTES = f"{MANIFEST_NAME} merge=union\n"
_GITIGNORE = ".lock\n*.tmp\n"


@dataclass
class Entry:
    """One recorded run of one block: its keys, dependencies and outputs."""

    code_key: str
    key: str
    dependencies: list[tuple[str, str]]
    outputs: list[dict[str, object]] = field(default_factory=list)
    status: str = "ok"

    def to_line(self) -> str:
        payload = {
            "code_key": self.code_key,
            "key": self.key,
            "status": self.status,
            "dependencies": [list(pair) for pair in sorted(self.dependencies)],
            "outputs": self.outputs,
        }
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> "Entry":
        payload = json.loads(line)
        return cls(
            code_key=str(payload["code_key"]),
            key=str(payload["key"]),
            status=str(payload.get("status", "ok")),
            dependencies=[(str(spec), str(digest)) for spec, digest in payload["dependencies"]],
            outputs=list(payload.get("outputs", [])),
        )

    def object_names(self) -> list[str]:
        return [str(output["object"]) for output in self.outputs if "object" in output]


class Store:
    """A figure store folder; safe to share between processes."""

    def __init__(self, directory: Path, hasher: FileHasher | None = None) -> None:
        self.directory = Path(directory)
        self.objects_dir = self.directory / OBJECTS_DIR
        self.manifest_path = self.directory / MANIFEST_NAME
        self.hasher = hasher or FileHasher()
        self.invalid_lines: list[int] = []
        self._entries: dict[str, Entry] | None = None
        self._manifest_stat: tuple[int, int] | None = None
        self._by_code_key: dict[str, list[Entry]] = {}

    # Reading

    def entries(self) -> dict[str, Entry]:
        """Return the manifest's entries by full key, re-read when the file changed on disk."""
        stat = _stat_signature(self.manifest_path)
        if self._entries is None or stat != self._manifest_stat:
            self._entries, self.invalid_lines = _read_manifest(self.manifest_path)
            self._manifest_stat = stat
            self._by_code_key = {}
            for entry in self._entries.values():
                self._by_code_key.setdefault(entry.code_key, []).append(entry)
        return self._entries

    def entries_for(self, block_code_key: str) -> list[Entry]:
        """Return the entries recorded for a code key."""
        self.entries()
        return self._by_code_key.get(block_code_key, [])

    def object_path(self, name: str) -> Path:
        return self.objects_dir / name

    def object_is_valid(self, name: str) -> bool:
        """Return True if the object exists and its bytes hash to its name."""
        digest = self.hasher.digest(self.object_path(name))
        return digest is not None and digest == name.partition(".")[0]

    def read_object(self, name: str) -> bytes | None:
        """Return an object's bytes, or None when it is missing or corrupt."""
        try:
            data = self.object_path(name).read_bytes()
        except OSError:
            return None
        return data if sha256_bytes(data) == name.partition(".")[0] else None

    # Writing

    def put_object(self, data: bytes, suffix: str) -> str:
        """Write ``data`` as an object (atomically) and return its name."""
        name = f"{sha256_bytes(data)}{suffix}"
        path = self.object_path(name)
        if self.object_is_valid(name):
            return name
        self._ensure_layout()
        _atomic_write(path, data)
        return name

    def add_entries(self, new_entries: Iterable[Entry]) -> None:
        """Merge entries into the manifest under the store lock."""
        new_entries = list(new_entries)
        if not new_entries:
            return
        self._ensure_layout()
        with FileLock(str(self.directory / ".lock")):
            entries, _ = _read_manifest(self.manifest_path)
            for entry in new_entries:
                entries[entry.key] = entry
            self._write_manifest(entries)

    def remove_entries(self, keys: Iterable[str]) -> int:
        """Remove entries by full key under the store lock; return how many were removed."""
        keys = set(keys)
        if not self.manifest_path.exists():
            return 0
        with FileLock(str(self.directory / ".lock")):
            entries, _ = _read_manifest(self.manifest_path)
            kept = {key: entry for key, entry in entries.items() if key not in keys}
            removed = len(entries) - len(kept)
            self._write_manifest(kept)
        return removed

    def remove_unreferenced_objects(self) -> list[str]:
        """Delete objects and leftover temporary files no manifest entry names; return their names."""
        if not self.objects_dir.is_dir():
            return []
        with FileLock(str(self.directory / ".lock")):
            entries, _ = _read_manifest(self.manifest_path)
            referenced = {name for entry in entries.values() for name in entry.object_names()}
            removed = []
            for path in sorted(self.objects_dir.iterdir()):
                if path.name not in referenced:
                    path.unlink()
                    removed.append(path.name)
        return removed

    def _write_manifest(self, entries: dict[str, Entry]) -> None:
        lines = sorted(entry.to_line() for entry in entries.values())
        text = _HEADER + "".join(f"{line}\n" for line in lines)
        _atomic_write(self.manifest_path, text.encode("utf-8"))
        self._entries = None

    def _ensure_layout(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        for name, text in ((".gitattributes", _GITATTRIBUTES), (".gitignore", _GITIGNORE)):
            path = self.directory / name
            if not path.exists():
                _atomic_write(path, text.encode("utf-8"))


def _read_manifest(path: Path) -> tuple[dict[str, Entry], list[int]]:
    entries: dict[str, Entry] = {}
    invalid: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return entries, invalid
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # A line that does not parse (a bad merge or a hand edit) is ignored: its block re-runs.
        try:
            entry = Entry.from_line(line)
        except (ValueError, KeyError, TypeError):
            invalid.append(number)
            continue
        entries[entry.key] = entry
    return entries, invalid


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _stat_signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
