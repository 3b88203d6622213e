"""The ``figures`` plugin: run ``python run`` blocks in worker processes and show their figures.

Once per build (before mkdocs-static-i18n splits it into one build per language) the plugin scans
every Markdown file of ``docs_dir``, checks each executable block against the figure store and
runs the stale pages in parallel workers (:mod:`figures_pipeline.runner`). Each page then gets its
blocks' outputs in place: standard output, a ``<figure>`` per block, or the error. Figures are
copied once under the site root, and the pages of both languages link to the same files.

A failing block is an author error: one warning naming ``content/…/lesson.md:LINE`` on the
``mkdocs`` logger, so ``--strict`` fails. Stale blocks that cannot run here (no torch or matplotlib
installed) are a setup error: a ``PluginError`` naming every stale block.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page as MkDocsPage

from figures_pipeline.blocks import parse_blocks, strip_run_marker
from figures_pipeline.pool import WorkerStartError
from figures_pipeline.runner import BlockStatus, Engine, FiguresUnavailable, Page, describe_failure

from . import render
from .config import FiguresConfig

log = logging.getLogger("mkdocs.plugins.figures")

_FENCE_INFO = re.compile(r"^(?P<head>[ \t]*(?:`{3,}|~{3,}))(?P<info>.*)$")
_DISABLED_VALUES = {"0", "false", "no", "off"}


class FiguresPlugin(BasePlugin[FiguresConfig]):
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.active = False
        self.persistent = False
        self.pages: dict[Path, Page] = {}
        self.referenced: set[str] = set()

    def on_startup(self, *, command: str, dirty: bool) -> None:
        """Keep this plugin (and its worker processes) alive across ``mkdocs serve`` rebuilds."""
        self.persistent = True

    def on_shutdown(self) -> None:
        """Stop the worker processes when MkDocs exits."""
        self._close_engine()

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        """Turn on unless disabled; create the engine once, with paths relative to ``mkdocs.yml``."""
        self.active = self.config.enabled and os.environ.get("FIGURES_ENABLED", "true").strip().lower() not in _DISABLED_VALUES
        if not self.active:
            return None
        root = Path(config.config_file_path).resolve().parent if config.config_file_path else Path.cwd()
        store_dir = root / self.config.store
        content_dir = Path(config.docs_dir)
        if self.engine is None or (self.engine.store_dir, self.engine.content_dir) != (store_dir.resolve(), content_dir.resolve()):
            self._close_engine()
            self.engine = Engine(
                root=root,
                content_dir=content_dir,
                store_dir=store_dir,
                jobs=_jobs(self.config.jobs),
                dpi=self.config.dpi,
            )
            atexit.register(self._close_engine)
        return config

    @event_priority(100)
    def on_files(self, files: Files, config: MkDocsConfig) -> Files | None:
        """Run every stale page of both language trees, once per build.

        mkdocs-static-i18n runs one MkDocs build per language from the first build's
        ``on_post_build``. Those nested builds reuse the first build's results, so each block runs
        at most once per ``mkdocs build`` (tested with two languages).
        """
        if not self.active or self.engine is None:
            return None
        if _is_nested_language_build(config) and self.pages:
            return None

        pages = self.engine.scan()
        self.pages = {page.path: page for page in pages}
        self.referenced = set()
        try:
            report = self.engine.run(pages, progress=_log_progress)
        except (FiguresUnavailable, WorkerStartError) as error:
            raise PluginError(str(error)) from None
        if report.ran:
            log.info("Ran the code blocks of %d page(s)", len(report.ran))
        return None

    def on_page_markdown(self, markdown: str, page: MkDocsPage, config: MkDocsConfig, files: Files) -> str | None:
        """Put each block's output after it and turn its fence into a plain ``python`` fence."""
        lines = markdown.split("\n")
        blocks = parse_blocks(markdown)
        if not blocks:
            return None
        if not self.active or self.engine is None:
            return "\n".join(_strip_markers(lines, blocks))

        source = Path(page.file.abs_src_path).resolve() if page.file.abs_src_path else None
        lesson = self.pages.get(source) if source else None
        if lesson is None:
            return "\n".join(_strip_markers(lines, blocks))
        language = _page_language(page, config)
        statuses = self.engine.resolve(lesson)
        self._warn(lesson, statuses)

        inserts: dict[int, str] = {}
        figure_number = 0
        for block, status in _match_blocks(blocks, lesson, statuses, self.engine.code_digests.digest):
            html, has_figure = self._render(lesson, status, page, language, figure_number + 1)
            figure_number += has_figure
            if html:
                indent = block.indent
                inserts[block.end_line] = "\n".join(f"{indent}{line}" if line else "" for line in html.split("\n"))

        output = []
        for number, line in enumerate(_strip_markers(lines, blocks), 1):
            output.append(line)
            if number in inserts:
                output.extend(["", inserts[number], ""])
        return "\n".join(output)

    def on_post_build(self, config: MkDocsConfig) -> None:
        """Copy the figures the pages link to under the site root."""
        if not self.active or self.engine is None:
            return
        target = Path(config.site_dir) / self.config.assets_dir
        for name in sorted(self.referenced):
            destination = target / name
            if destination.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.engine.store.object_path(name), destination)
        if not self.persistent and not _is_nested_language_build(config):
            # Without on_startup (MkDocs called as a library) nothing would stop the workers later.
            self._close_engine_pool()

    def on_build_error(self, error: Exception) -> None:
        """Stop the workers of a build that failed, unless ``mkdocs serve`` keeps them."""
        if not self.persistent:
            self._close_engine_pool()

    # Helpers

    def _render(self, lesson: Page, status: BlockStatus, page: MkDocsPage, language: str, number: int) -> tuple[str, bool]:
        block = status.block
        if status.state == "skipped":
            return render.notice_html("skipped", language), False
        if status.state == "stale":
            return render.notice_html("stale", language), False
        if status.state == "failed":
            _, traceback_text = describe_failure(lesson, block.index, status.failure.error)
            return render.error_html(traceback_text, language, expected=False), False

        parts = []
        images = []
        for output in status.entry.outputs:
            name = str(output["object"])
            if output["type"] == "stdout":
                data = self.engine.store.read_object(name) or b""
                parts.append(render.output_html(data.decode("utf-8", "replace"), language))
            elif output["type"] == "error":
                error = json.loads((self.engine.store.read_object(name) or b"{}").decode("utf-8"))
                _, traceback_text = describe_failure(lesson, block.index, error)
                parts.append(render.error_html(traceback_text, language, expected=True))
            elif output["type"] == "image":
                self.referenced.add(name)
                src = render.relative_url(page.file.dest_uri, f"{self.config.assets_dir}/{name}")
                scale = 100 / self.config.dpi
                images.append(render.Image(src, round(int(output["width"]) * scale), round(int(output["height"]) * scale)))
        if images:
            parts.append(render.figure_html(images, number, block.caption, block.alt, language))
        return "\n\n".join(parts), bool(images)

    def _warn(self, lesson: Page, statuses: list[BlockStatus]) -> None:
        for status in statuses:
            for error in status.block.errors:
                log.warning("%s:%d: %s", lesson.display, error.line, error.message)
            if status.state == "failed":
                line, traceback_text = describe_failure(lesson, status.block.index, status.failure.error)
                log.warning(
                    "%s:%d: code block failed: %s\n%s",
                    lesson.display,
                    line,
                    status.failure.error.get("summary", ""),
                    traceback_text,
                )
            elif status.state == "stale":
                log.warning(
                    "%s:%d: code block was not run: %s", lesson.display, status.block.fence_line, "; ".join(status.reasons)
                )

    def _close_engine_pool(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def _close_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _match_blocks(blocks, lesson: Page, statuses: list[BlockStatus], digest):
    """Pair the blocks of the page's Markdown with the statuses of the file's blocks.

    Another plugin may change the Markdown before this hook runs, so blocks are paired by
    normalised code in order rather than by position alone.
    """
    position = 0
    for block in blocks:
        same_text = position < len(statuses) and lesson.blocks[position].code == block.code
        normalised = lesson.normalised[position] if same_text else digest(block.code)
        candidate = position
        while candidate < len(statuses) and lesson.normalised[candidate] != normalised:
            candidate += 1
        if candidate < len(statuses):
            yield block, statuses[candidate]
            position = candidate + 1


def _strip_markers(lines: list[str], blocks) -> list[str]:
    lines = list(lines)
    for block in blocks:
        match = _FENCE_INFO.match(lines[block.fence_line - 1])
        if match is not None:
            lines[block.fence_line - 1] = match["head"] + strip_run_marker(match["info"])
    return lines


def _jobs(configured: int) -> int | None:
    # FIGURES_JOBS overrides the `jobs` option, for CI machines and benchmarks.
    override = os.environ.get("FIGURES_JOBS", "").strip()
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise PluginError(f"invalid FIGURES_JOBS={override!r}: expected a whole number of worker processes") from None
    return configured or None


def _is_nested_language_build(config: MkDocsConfig) -> bool:
    # mkdocs-static-i18n builds the other languages from its on_post_build, with `building` set.
    i18n = config.plugins.get("i18n")
    return bool(getattr(i18n, "building", False))


def _page_language(page: MkDocsPage, config: MkDocsConfig) -> str:
    first = page.file.src_uri.split("/", 1)[0]
    if first in render.STRINGS:
        return first
    i18n = config.plugins.get("i18n")
    current = getattr(i18n, "current_language", None)
    if current:
        return str(current)
    return str(config.theme.get("language") or "en")


def _log_progress(display: str, done: int, total: int, ran: bool) -> None:
    if ran:
        log.info("Ran code blocks of %s (%d/%d)", display, done, total)
    else:
        log.info("Reused the figures of a page with the same code for %s (%d/%d)", display, done, total)
