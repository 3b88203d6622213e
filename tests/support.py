"""Helpers shared by the test folders: the repository root, temporary MkDocs projects, a local server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

# LESSON_SITE_ROOT points the site tests at another checkout of the project (default: this one).
ROOT = Path(os.environ.get("LESSON_SITE_ROOT") or Path(__file__).resolve().parent.parent)

os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")


@dataclass
class BuildResult:
    returncode: int
    output: str
    site: Path


class Project:
    """A throwaway site that inherits the real ``mkdocs.yml``, with lessons written by the test."""

    def __init__(self, root: Path, plugins_to_drop: tuple[str, ...] = ("figures",)):
        self.root = root
        self.content = root / "content"
        self.content.mkdir(parents=True)
        (root / "site_theme").symlink_to(ROOT / "site_theme")
        self.plugins = [plugin for plugin in _real_plugins() if _plugin_name(plugin) not in plugins_to_drop]
        shutil.copy(ROOT / "content" / "streams.yml", self.content / "streams.yml")
        for language in ("ko", "en"):
            self.write(f"{language}/index.md", "# Home\n\nHome page.\n")

    def write(self, relative: str, text: str) -> Path:
        path = self.content / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def build(self, strict: bool = True, env: dict[str, str] | None = None, **overrides) -> BuildResult:
        # INHERIT keeps the real theme and Markdown settings; the plugin list is replaced whole.
        config = {"INHERIT": str(ROOT / "mkdocs.yml"), "docs_dir": "content", "plugins": self.plugins, **overrides}
        config_path = self.root / "mkdocs.yml"
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        site = self.root / "site"
        command = [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site), "--config-file", str(config_path)]
        if strict:
            command.append("--strict")
        completed = subprocess.run(
            command, capture_output=True, text=True, cwd=self.root, env={**os.environ, **(env or {})}
        )
        return BuildResult(completed.returncode, completed.stdout + completed.stderr, site)


def lesson_text(**fields) -> str:
    """Front matter of a valid lesson, with ``fields`` overriding or removing (value None) keys."""
    meta = {
        "id": "cnn-01",
        "stream": "cnn",
        "number": 1,
        "title": "Images as tensors",
        "minutes": 2,
        "tags": ["tensors"],
        "status": "published",
        "exercises": [{"id": "cnn-01-shapes", "title": "Print shapes"}],
    }
    body = fields.pop("body", "## 합성곱은 무엇인가\n\n합성곱은 필터를 이미지 위로 밀며 계산합니다.\n")
    for key, value in fields.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n\n" + body


def _plugin_name(plugin) -> str:
    return plugin if isinstance(plugin, str) else next(iter(plugin))


def _real_plugins() -> list:
    """The plugin list of the real ``mkdocs.yml``; Python tags elsewhere in it are read as None."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)["plugins"]


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 at a free port; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the name is fixed by the base class
        pass

    def copyfile(self, source, outputfile):
        # A browser that closes a connection early is normal; do not print its traceback.
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            pass
