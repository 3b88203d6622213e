"""Small lesson projects written into a temporary folder, for the execution engine's tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from figures_pipeline.runner import Engine

ROOT = Path(__file__).resolve().parents[2]

MKDOCS_FIGURES_ONLY = """\
site_name: Test
docs_dir: content
use_directory_urls: true
plugins:
  - figures:
      jobs: 2
"""

MKDOCS_WITH_I18N = """\
site_name: Test
docs_dir: content
use_directory_urls: true
theme:
  name: material
  language: ko
plugins:
  - figures:
      jobs: 2
  - i18n:
      docs_structure: folder
      languages:
        - locale: ko
          name: 한국어
          default: true
          build: true
        - locale: en
          name: English
          build: true
markdown_extensions:
  - pymdownx.superfences
"""

# Makes torch and matplotlib unimportable, like the light install, and notes any attempt.
BLOCKER = """\
import os, sys

class _Blocker:
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in ("torch", "matplotlib"):
            with open(os.environ["BLOCKED_IMPORTS_LOG"], "a") as log:
                log.write(fullname + "\\n")
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, _Blocker())
"""


class LessonProject:
    """A project folder with ``content/<lang>/<stream>/`` lessons and a figure store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "content").mkdir(parents=True, exist_ok=True)
        self.engines: list[Engine] = []

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def lesson(self, relative: str, *blocks: str, prose: str = "Some prose.") -> Path:
        """Write a lesson whose body is a title, ``prose`` and the given ``python run`` blocks."""
        parts = ["---", "title: Test lesson", "---", "", "# Title", "", prose, ""]
        for block in blocks:
            parts.append(textwrap.dedent(block).strip("\n"))
            parts.append("")
        path = self.root / "content" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(parts), encoding="utf-8")
        return path

    def engine(self, jobs: int = 2, store: str = "figure_store") -> Engine:
        engine = Engine(self.root, self.root / "content", self.root / store, jobs=jobs)
        self.engines.append(engine)
        return engine

    def cli(self, *arguments: str, env: dict[str, str] | None = None, wait: bool = True):
        command = [sys.executable, "-m", "figures_pipeline", "--root", str(self.root), *arguments]
        environment = {**os.environ, **(env or {})}
        if not wait:
            return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)

    def mkdocs_build(self, *arguments: str, config: str = MKDOCS_FIGURES_ONLY, env: dict[str, str] | None = None, blocked: Path | None = None):
        (self.root / "mkdocs.yml").write_text(config, encoding="utf-8")
        environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1", **(env or {})}
        if blocked is not None:
            blocker_dir = self.root.parent / "blocker"
            blocker_dir.mkdir(exist_ok=True)
            (blocker_dir / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
            environment["PYTHONPATH"] = os.pathsep.join([str(blocker_dir), environment.get("PYTHONPATH", "")])
            environment["BLOCKED_IMPORTS_LOG"] = str(blocked)
        command = [sys.executable, "-m", "mkdocs", "build", "--config-file", str(self.root / "mkdocs.yml"), *arguments]
        return subprocess.run(command, cwd=self.root, env=environment, capture_output=True, text=True, timeout=300)

    def homepages(self) -> None:
        """Write the home page of each language, which mkdocs-static-i18n requires."""
        for language in ("ko", "en"):
            self.write(f"content/{language}/index.md", f"# Home ({language})\n")

    def close(self) -> None:
        for engine in self.engines:
            engine.close()


def statuses(engine: Engine) -> dict[str, list[str]]:
    """Return each page's block states, by display path."""
    return {page.display: [status.state for status in engine.resolve(page)] for page in engine.scan()}


def stale_reasons(engine: Engine) -> dict[tuple[str, int], list[str]]:
    """Return the reasons of each stale block, by (display path, fence line)."""
    return {
        (page.display, status.block.fence_line): status.reasons
        for page, status in engine.stale_blocks(engine.scan())
    }
