"""Decide which lesson blocks are stale, run them in workers and record their outputs in the store.

:class:`Engine` is what the MkDocs plugin and the command line share. It never imports MkDocs,
torch or matplotlib: checking the store only hashes files and reads package metadata, and lesson
code runs in worker processes.

A page's blocks form a chain: block ``i``'s code key covers block ``i-1``'s full key. So when one
block is stale, every later block of the page is too, and the whole page runs again in one session
(the earlier blocks rebuild the session's state). Pages whose blocks have the same normalised code,
typically a lesson's Korean and English versions, run once. The other pages of such a group reuse
the store entries when their lesson folders give the same dependencies.
"""

from __future__ import annotations

import bisect
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from figures_pipeline.blocks import CodeBlock, code_digest, code_rows, parse_blocks
from figures_pipeline.keys import (
    KEY_FORMAT,
    LIBRARIES,
    MISSING,
    CacheFile,
    DependencyResolver,
    FileHasher,
    KeyContext,
    code_key,
    describe_spec,
    full_key,
    sha256_bytes,
)
from figures_pipeline.pool import PageJob, PageRun, WorkerPool
from figures_pipeline.store import Entry, Store

#: Modules a stale block needs in this environment; the light install has neither.
RUNTIME_MODULES = ("matplotlib", "torch")
INSTALL_HINT = (
    'Regenerate the figure store with the full install (pip install -e ".[figures]", then '
    "python -m figures_pipeline run or mkdocs build) and commit figure_store/, or let CI regenerate it."
)


class FiguresUnavailable(RuntimeError):
    """Stale blocks must run, but this environment cannot run lesson code (the light install)."""


@dataclass
class Page:
    """A lesson Markdown file and its executable blocks."""

    path: Path
    display: str
    lesson_dir: Path
    blocks: list[CodeBlock]
    #: sha256 of each block's normalised code (see figures_pipeline.blocks.code_digest)
    normalised: list[str]
    mtime_ns: int


@dataclass
class Failure:
    """A block that raised, timed out or killed its worker; kept in memory, never in the store."""

    error: dict
    dependencies: list[tuple[str, str]]
    created_ns: int


@dataclass
class BlockStatus:
    """A block's state: ``fresh`` (a store entry matches), ``stale``, ``failed`` or ``skipped``."""

    block: CodeBlock
    state: str
    code_key: str | None = None
    entry: Entry | None = None
    failure: Failure | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """The pages :meth:`Engine.run` ran and the blocks that failed."""

    ran: list[str] = field(default_factory=list)
    failures: list[tuple[Page, int, Failure]] = field(default_factory=list)


class Engine:
    """Scan lessons, check their blocks against the store, and run the stale ones."""

    def __init__(
        self,
        root: Path,
        content_dir: Path,
        store_dir: Path | None = None,
        jobs: int | None = None,
        dpi: int = 150,
        hash_cache: Path | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.content_dir = Path(content_dir).resolve()
        self.store_dir = Path(store_dir).resolve() if store_dir else self.root / "figure_store"
        self.jobs = jobs or os.cpu_count() or 1
        self.settings = {"dpi": dpi, "image": "png"}
        cache_file = hash_cache if hash_cache is not None else self.root / ".cache" / "figures" / "file-hashes.json"
        self.hasher = FileHasher(cache_file)
        self.store = Store(self.store_dir, self.hasher)
        self.resolver = DependencyResolver(self.hasher)
        self.code_digests = CodeDigestCache(cache_file.with_name("code-digests.json"))
        self.run_times = RunTimes(cache_file.with_name("run-times.json"))
        self._failures: dict[str, Failure] = {}
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    # Scanning and checking

    def scan(self) -> list[Page]:
        """Return every Markdown page under the content folder that has executable blocks."""
        pages = []
        for path in sorted(self.content_dir.rglob("*.md")):
            page = self.load_page(path)
            if page.blocks:
                pages.append(page)
        return pages

    def load_page(self, path: Path) -> Page:
        """Parse one Markdown file."""
        path = Path(path).resolve()
        text = path.read_text(encoding="utf-8")
        blocks = parse_blocks(text)
        return Page(
            path=path,
            display=_display_path(path, self.root),
            lesson_dir=path.parent,
            blocks=blocks,
            normalised=[self.code_digests.digest(block.code) for block in blocks],
            mtime_ns=path.stat().st_mtime_ns,
        )

    def context(self, page: Page) -> KeyContext:
        return KeyContext(root=self.root, lesson_dir=page.lesson_dir)

    def resolve(self, page: Page) -> list[BlockStatus]:
        """Return the status of each block of ``page``, in order."""
        statuses: list[BlockStatus] = []
        previous: BlockStatus | None = None
        for block, normalised in zip(page.blocks, page.normalised):
            status = self._resolve_block(page, block, normalised, previous)
            statuses.append(status)
            previous = status
        return statuses

    def stale_blocks(self, pages: list[Page]) -> list[tuple[Page, BlockStatus]]:
        """Return every stale block of ``pages`` with its page."""
        return [(page, status) for page in pages for status in self.resolve(page) if status.state == "stale"]

    # Running

    def run(
        self,
        pages: list[Page] | None = None,
        shard: tuple[int, int] | None = None,
        progress: Callable[[str, int, int, bool], None] | None = None,
    ) -> RunReport:
        """Run every page that has a stale block; ``shard=(k, n)`` runs only the k-th of n parts.

        ``progress(page, done, total, ran)`` is called as each stale page is finished; ``ran`` is
        False when the page reused the entries of a page with the same code.

        Raises :class:`FiguresUnavailable` when a block is stale and lesson code cannot run here.
        """
        pages = self.scan() if pages is None else pages
        report = RunReport()
        stale_pages = [page for page in pages if any(s.state == "stale" for s in self.resolve(page))]
        if not stale_pages:
            return report
        self._require_runtime(stale_pages)

        groups: dict[tuple[str, ...], list[Page]] = {}
        for page in stale_pages:
            groups.setdefault(tuple(page.normalised), []).append(page)
        ordered = sorted(groups.values(), key=lambda group: group[0].display)
        if shard is not None:
            number, count = shard
            ordered = [group for position, group in enumerate(ordered) if position % count == number - 1]

        total = sum(len(group) for group in ordered)
        done = [0]

        def page_finished(display: str, ran: bool) -> None:
            done[0] += 1
            if progress is not None:
                progress(display, done[0], total, ran)

        first_wave = [group[0] for group in ordered]
        self._run_pages(first_wave, report, page_finished)
        # The other pages of a group reuse the first page's entries unless their files differ.
        second_wave = []
        for page in (page for group in ordered for page in group[1:]):
            if any(status.state == "stale" for status in self.resolve(page)):
                second_wave.append(page)
            else:
                page_finished(page.display, False)
        self._run_pages(second_wave, report, page_finished)
        self._save_caches()
        return report

    def close(self) -> None:
        """Stop the worker processes and save the file-hash cache."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._save_caches()

    def _save_caches(self) -> None:
        self.hasher.save()
        self.code_digests.save()
        self.run_times.save()

    def _run_pages(self, pages: list[Page], report: RunReport, finished: Callable[[str, bool], None]) -> None:
        if not pages:
            return
        if self._pool is None:
            self._pool = WorkerPool(self.jobs, self.root)
        by_display = {page.display: page for page in pages}
        jobs = [self._job(page) for page in self.run_times.longest_first(pages)]

        def record(run: PageRun) -> None:
            page = by_display[run.job.page]
            self.run_times.record(page, run.seconds)
            failure = self._record(page, run)
            with self._lock:
                report.ran.append(page.display)
                if failure is not None:
                    report.failures.append((page, failure[0], failure[1]))
            finished(page.display, True)

        self._pool.run(jobs, on_done=record)

    def _job(self, page: Page) -> PageJob:
        blocks = [
            {"index": block.index, "code": block.code, "timeout": block.timeout, "expect_error": block.expect_error}
            for block in page.blocks
        ]
        return PageJob(
            page=page.display,
            lesson_dir=str(page.lesson_dir),
            root=str(self.root),
            blocks=blocks,
            dpi=int(self.settings["dpi"]),
            ignored=[str(self.store_dir)],
        )

    def _record(self, page: Page, run: PageRun) -> tuple[int, Failure] | None:
        """Store the outputs of a page run; return the failing block's index and failure, if any."""
        context = self.context(page)
        entries: list[Entry] = []
        previous_key: str | None = None
        dependencies: list[tuple[str, str]] = self._library_dependencies()
        failure: tuple[int, Failure] | None = None
        for result, block in zip(run.results, page.blocks):
            block_code_key = code_key(page.normalised[block.index], previous_key, self.settings)
            if result["reads"] is not None:
                dependencies = self._dependencies(result, context)
            error = _error_with_rows(result["error"], page) if result["error"] else None

            if (error is None) == (not block.expect_error):
                outputs = self._store_outputs(result, error)
                entry = Entry(
                    code_key=block_code_key,
                    key=full_key(block_code_key, dependencies),
                    dependencies=dependencies,
                    outputs=outputs,
                    status="ok" if error is None else "error",
                )
                entries.append(entry)
                previous_key = entry.key
                continue

            if error is None:
                error = {
                    "summary": "the block is marked expect-error but ran without raising an exception",
                    "frames": [],
                }
            recorded = Failure(error=error, dependencies=dependencies, created_ns=time.time_ns())
            with self._lock:
                self._failures[block_code_key] = recorded
            failure = (block.index, recorded)
            break
        self.store.add_entries(entries)
        return failure

    def _store_outputs(self, result: dict, error: dict | None) -> list[dict[str, object]]:
        outputs: list[dict[str, object]] = []
        if result["stdout"]:
            outputs.append({"type": "stdout", "object": self.store.put_object(result["stdout"].encode("utf-8"), ".txt")})
        if error is not None:
            data = _canonical_json(error).encode("utf-8")
            outputs.append({"type": "error", "object": self.store.put_object(data, ".json")})
        for image in result["images"]:
            width, height = _png_size(image)
            outputs.append({"type": "image", "object": self.store.put_object(image, ".png"), "width": width, "height": height})
        return outputs

    def _library_dependencies(self) -> list[tuple[str, str]]:
        return [(f"lib:{name}", self.resolver.versions.get(name, MISSING)) for name in LIBRARIES]

    def _dependencies(self, result: dict, context: KeyContext) -> list[tuple[str, str]]:
        dependencies = dict(self._library_dependencies())
        for spec in result["reads"]:
            # A file the block read but that cannot be found again keeps the block stale, rather
            # than silently dropping out of its key.
            digest = self.resolver.current_digest(spec, context)
            dependencies[spec] = MISSING if digest is None else digest
        for spec, path in result["modules"]:
            digest = self.hasher.digest(Path(path))
            if digest is not None:
                dependencies[spec] = digest
        return sorted(dependencies.items())

    def _require_runtime(self, stale_pages: list[Page]) -> None:
        missing = [name for name in RUNTIME_MODULES if not _importable(name)]
        if not missing:
            return
        lines = [
            f"Lesson code blocks are out of date, and they cannot run here because "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed:"
        ]
        for page in stale_pages:
            for status in self.resolve(page):
                if status.state == "stale":
                    lines.append(f"  {page.display}:{status.block.fence_line}: {'; '.join(status.reasons)}")
        lines.append(INSTALL_HINT)
        raise FiguresUnavailable("\n".join(lines))

    # Checking one block

    def _resolve_block(
        self, page: Page, block: CodeBlock, normalised: str, previous: BlockStatus | None
    ) -> BlockStatus:
        if previous is not None and previous.state in ("failed", "skipped"):
            return BlockStatus(block, "skipped", reasons=["an earlier block on this page failed"])
        if previous is not None and previous.state == "stale":
            return BlockStatus(block, "stale", reasons=["an earlier block on this page is stale"])

        previous_key = previous.entry.key if previous is not None else None
        block_code_key = code_key(normalised, previous_key, self.settings)
        context = self.context(page)
        best_reasons: list[str] | None = None
        for entry in self.store.entries_for(block_code_key):
            reasons = self._mismatches(entry.dependencies, context)
            reasons += [f"store object missing or corrupt: {name}" for name in entry.object_names() if not self.store.object_is_valid(name)]
            if not reasons:
                return BlockStatus(block, "fresh", code_key=block_code_key, entry=entry)
            if best_reasons is None or len(reasons) < len(best_reasons):
                best_reasons = reasons

        failure = self._failures.get(block_code_key)
        if failure is not None and page.mtime_ns <= failure.created_ns and not self._mismatches(failure.dependencies, context):
            return BlockStatus(block, "failed", code_key=block_code_key, failure=failure)
        if best_reasons is None:
            best_reasons = ["no store entry for this code (new or changed code, or it failed last time)"]
        return BlockStatus(block, "stale", code_key=block_code_key, reasons=best_reasons)

    def _mismatches(self, dependencies: list[tuple[str, str]], context: KeyContext) -> list[str]:
        reasons = []
        for spec, recorded in dependencies:
            kind, _, name = spec.partition(":")
            if kind == "lib":
                current = self.resolver.versions.get(name, MISSING)
                # A library missing here (the light install) cannot contradict the store.
                if current != MISSING and current != recorded:
                    reasons.append(f"library version changed: {name} {recorded} -> {current}")
                continue
            if kind in ("pkg", "module") and self.resolver.resolve_path(spec, context) is None:
                continue
            current = self.resolver.current_digest(spec, context)
            if current != recorded:
                what = "toolkit module changed" if kind == "module" else "file changed"
                state = "" if current is not None else " (now missing)"
                reasons.append(f"{what}: {describe_spec(spec, context)}{state}")
        return reasons


class CodeDigestCache:
    """Digests of normalised code by the sha256 of the raw code, kept on disk between builds.

    Tokenizing every block is the largest cost of a build whose store is up to date, and a block's
    raw text changes far less often than a build runs.
    """

    def __init__(self, cache_file: Path | None) -> None:
        self._cache = CacheFile(cache_file, lambda value: isinstance(value, str))

    def digest(self, code: str) -> str:
        """Return :func:`figures_pipeline.blocks.code_digest` of ``code``, from the cache if possible."""
        # The key format is part of the cache key, so a new normalisation never reuses old digests.
        raw = sha256_bytes(f"{KEY_FORMAT}\0{code}".encode("utf-8"))
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        digest = code_digest(code)
        self._cache.put(raw, digest)
        return digest

    def save(self) -> None:
        self._cache.save()


class RunTimes:
    """How long each page took to run here last time, kept on disk to order the next run.

    Pages start longest first, so a long page does not start last and keep one worker busy after
    the others have finished. A page with no recorded time is estimated from its code size, at
    the rate (seconds per character) of the pages that have one. With no recorded time at all,
    pages are ordered by code size alone.

    The times are a local cache like the file hashes: they change the order, never a result.
    """

    def __init__(self, cache_file: Path | None) -> None:
        self._cache = CacheFile(cache_file, lambda value: isinstance(value, (int, float)) and value >= 0)

    def record(self, page: Page, seconds: float) -> None:
        self._cache.put(page.display, round(seconds, 2))

    def longest_first(self, pages: list[Page]) -> list[Page]:
        """Return ``pages`` ordered by estimated run time, longest first (ties by path)."""
        recorded = {page.display: self._cache.get(page.display) for page in pages}
        sizes = {page.display: sum(len(block.code) for block in page.blocks) for page in pages}
        measured = [(recorded[name], sizes[name]) for name in recorded if recorded[name] is not None]
        measured_size = sum(size for _, size in measured)
        rate = sum(seconds for seconds, _ in measured) / measured_size if measured_size else 1.0

        def estimate(page: Page) -> float:
            seconds = recorded[page.display]
            return float(seconds) if seconds is not None else sizes[page.display] * rate

        return sorted(pages, key=lambda page: (-estimate(page), page.display))

    def save(self) -> None:
        self._cache.save()


def describe_failure(page: Page, index: int, error: dict) -> tuple[int, str]:
    """Return the Markdown line of a failing block's statement and a traceback in Markdown lines."""
    lines = ["Traceback (most recent call last):"]
    location: int | None = None
    for frame in error.get("frames", []):
        if "block" in frame and frame["block"] < len(page.blocks):
            block = page.blocks[frame["block"]]
            rows = code_rows(block.code)
            row = rows[min(frame.get("row", 0), len(rows) - 1)] if rows else 1
            markdown_line = block.markdown_line(row)
            code_lines = block.code.splitlines()
            text = code_lines[row - 1].strip() if 0 < row <= len(code_lines) else ""
            lines.append(f'  File "{page.display}", line {markdown_line}, in {frame.get("name", "<module>")}')
            if frame["block"] == index:
                location = markdown_line
        else:
            lines.append(f'  File "{frame.get("file")}", line {frame.get("line")}, in {frame.get("name")}')
            text = frame.get("text", "")
        if text:
            lines.append(f"    {text}")
    lines.append(error.get("summary", "unknown error"))
    if location is None:
        location = page.blocks[index].fence_line
    return location, "\n".join(lines)


def _error_with_rows(error: dict, page: Page) -> dict:
    # Line numbers inside a block become row ordinals (see blocks.code_rows), so a traceback maps to
    # every page whose block has the same normalised code, whatever its comments.
    frames = []
    for frame in error.get("frames", []):
        if "block" in frame and frame["block"] < len(page.blocks) and frame.get("line") is not None:
            rows = code_rows(page.blocks[frame["block"]].code)
            ordinal = max(0, bisect.bisect_right(rows, int(frame["line"])) - 1)
            frames.append({"block": frame["block"], "row": ordinal, "name": frame.get("name", "<module>")})
        elif "block" not in frame:
            frames.append(frame)
    return {"summary": error.get("summary", ""), "frames": frames}


def _png_size(data: bytes) -> tuple[int, int]:
    # Width and height are the first two fields of the IHDR chunk, right after the 8-byte signature.
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _canonical_json(payload: object) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _display_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
