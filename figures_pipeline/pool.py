"""Worker processes on the parent side: start them, send pages, enforce timeouts, survive crashes.

:class:`WorkerPool` keeps ``size`` workers (see :mod:`figures_pipeline.worker`) and runs pages on
them in parallel, one page per worker at a time. A block that exceeds its timeout gets its worker
killed. A worker that dies (``os._exit``, a signal, the kernel's out-of-memory killer) is reported
with its exit status. Either way the next page gets a fresh worker.
"""

from __future__ import annotations

import ast
import os
import pickle
import queue
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from figures_pipeline.keys import LIBRARIES

_HEADER = struct.Struct(">Q")
_FRAME_LINE = re.compile(r'File "<lesson-block-(\d+)>", line (\d+) in (\S+)')
#: Seconds a worker may take to start, importing the libraries its pages use.
_STARTUP_TIMEOUT = 120.0
# Workers ask the kernel to kill them when the thread that started them exits (PR_SET_PDEATHSIG
# is tied to the thread, not the process), so one long-lived thread starts every worker.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures-spawner")
_SCRATCH_PREFIX = "figures-worker-"
#: Module a worker imports as it starts, for each library the key covers by version, when a page
#: to run imports that library. So no page's run time includes the import.
PRELOADABLE = {name: "matplotlib.pyplot" if name == "matplotlib" else name for name in LIBRARIES}
TOOLKIT_PACKAGE = "figures_pipeline"


class WorkerStartError(RuntimeError):
    """A worker process could not be started (a broken installation, not an author error)."""


@dataclass
class PageJob:
    """One page to run: its blocks' code in order and where it runs."""

    page: str
    lesson_dir: str
    root: str
    blocks: list[dict]
    dpi: int
    ignored: list[str] = field(default_factory=list)


@dataclass
class PageRun:
    """A worker's results for a page: one result per block that ran, in order."""

    job: PageJob
    results: list[dict] = field(default_factory=list)
    #: Wall-clock seconds of the page's blocks, without the worker's start-up.
    seconds: float = 0.0


class WorkerPool:
    """A set of worker processes that stays alive between runs (and ``mkdocs serve`` rebuilds)."""

    def __init__(self, size: int, root: Path) -> None:
        self.size = max(1, size)
        self.root = Path(root)
        self._workers = [_Worker(self.root) for _ in range(self.size)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._closed = False

    def run(self, jobs: Iterable[PageJob], on_done: Callable[[PageRun], None] | None = None) -> list[PageRun]:
        """Run pages in parallel; return their runs in the order of ``jobs``."""
        jobs = list(jobs)
        if not jobs:
            return []
        preload = preloaded_modules(jobs)
        for worker in self._workers:
            worker.want(preload)
        with ThreadPoolExecutor(max_workers=min(self.size, len(jobs)), thread_name_prefix="figures") as executor:
            futures = [executor.submit(self._run_one, job, on_done) for job in jobs]
            return [future.result() for future in futures]

    def close(self) -> None:
        """Stop every worker: ask politely, then kill the ones that do not exit."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            worker.stop()

    def _run_one(self, job: PageJob, on_done: Callable[[PageRun], None] | None) -> PageRun:
        worker = self._idle.get()
        try:
            run = worker.run_page(job)
        finally:
            self._idle.put(worker)
        if on_done is not None:
            on_done(run)
        return run


def preloaded_modules(jobs: Iterable[PageJob]) -> list[str]:
    """Return the libraries of :data:`PRELOADABLE` that the code of ``jobs`` imports.

    Only import statements are read, anywhere in a block (inside functions too). A page that
    imports the toolkit gets every library, since the toolkit is built on them.
    """
    imported: set[str] = set()
    for job in jobs:
        for block in job.blocks:
            try:
                tree = ast.parse(block["code"])
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    if TOOLKIT_PACKAGE in imported:
        imported.update(PRELOADABLE)
    return [module for name, module in PRELOADABLE.items() if name in imported]


class _Worker:
    """One worker process, started on first use and restarted after it dies or is killed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Modules the worker imports as it starts. A running worker keeps the ones it imported.
        self.preload: list[str] = []
        self.process: subprocess.Popen | None = None
        self.scratch_dir: Path | None = None
        self.log_path: Path | None = None
        self._buffer = b""

    def want(self, modules: list[str]) -> None:
        """Add ``modules`` to what the worker imports when it next starts."""
        requested = set(self.preload) | set(modules)
        self.preload = [module for module in PRELOADABLE.values() if module in requested]

    def run_page(self, job: PageJob) -> PageRun:
        self._ensure_started()
        started = time.monotonic()
        run = self._run_blocks(job)
        run.seconds = time.monotonic() - started
        return run

    def _run_blocks(self, job: PageJob) -> PageRun:
        run = PageRun(job)
        with _suppress_process_errors():
            os.truncate(self.log_path, 0)
        self._send(("page", job.__dict__))

        blocks = {block["index"]: block for block in job.blocks}
        current: int | None = None
        current_line: int | None = None
        deadline: float | None = None
        while True:
            try:
                message = self._receive(deadline)
            except TimeoutError:
                block = blocks[current]
                run.results.append(self._timed_out(block, current_line))
                return run
            except EOFError:
                if current is not None and len(run.results) <= _position(job, current):
                    run.results.append(self._died(current, current_line))
                return run

            kind = message[0]
            if kind == "start":
                current, current_line = message[1], None
                deadline = time.monotonic() + float(blocks[current]["timeout"])
            elif kind == "line":
                current_line = message[2]
            elif kind == "block":
                run.results.append(message[2])
                deadline = None
            elif kind == "page-error":
                # The page could not be set up or run (not an error of the lesson code itself).
                error = message[1]
                error["summary"] = f"the worker failed to run the page: {error['summary']}"
                run.results.append(_failure(error["summary"], error["frames"]))
            elif kind == "page-done":
                return run

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self._send(("exit",))
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self._kill()
        self._cleanup()

    # Failures

    def _timed_out(self, block: dict, line: int | None) -> dict:
        # Ask faulthandler for the Python traceback of the hanging statement before killing.
        stack = []
        with _suppress_process_errors():
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
            stack = _block_frames(self._log_tail())
        self._kill()
        timeout = float(block["timeout"])
        frames = stack or ([{"block": block["index"], "line": line, "name": "<module>"}] if line else [])
        return _failure(f"TimeoutError: the block did not finish within {timeout:g} s and was stopped", frames)

    def _died(self, index: int, line: int | None) -> dict:
        status = self.process.wait()
        log = self._log_tail()
        if status < 0:
            name = signal.Signals(-status).name
            summary = f"the worker process was killed by signal {-status} ({name})"
            if -status == signal.SIGKILL:
                summary += ", for example by the out-of-memory killer"
        else:
            summary = f"the worker process exited with status {status} (os._exit or a crash in native code)"
        frames = _block_frames(log) or ([{"block": index, "line": line, "name": "<module>"}] if line else [])
        self._cleanup()
        return _failure(f"WorkerDied: {summary}", frames)

    # Process handling

    def _ensure_started(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self._cleanup()

        # The worker's log and its pages' session folders live in one folder removed at clean-up,
        # so a killed worker leaves nothing behind in the temporary folder.
        _remove_orphaned_scratch_dirs()
        self.scratch_dir = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-"))
        self.log_path = self.scratch_dir / "worker.log"
        handle = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        environment = _worker_environment()
        environment["FIGURES_SESSION_ROOT"] = str(self.scratch_dir)
        environment["FIGURES_PRELOAD"] = ",".join(self.preload)
        self.process = _SPAWNER.submit(
            subprocess.Popen,
            [sys.executable, "-m", "figures_pipeline.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=handle,
            cwd=self.root,
            env=environment,
            # A separate session: Ctrl-C in a terminal reaches MkDocs, which stops the workers.
            start_new_session=True,
        ).result()
        os.close(handle)
        self._buffer = b""

        try:
            message = self._receive(time.monotonic() + _STARTUP_TIMEOUT)
        except (EOFError, TimeoutError):
            log = self._log_tail().strip()
            self._kill()
            raise WorkerStartError(
                f"the figures worker process failed to start within {_STARTUP_TIMEOUT:g} s "
                f"(importing {', '.join(self.preload) or 'nothing'}). "
                f"Check that `{sys.executable} -m figures_pipeline.worker` can import its modules.\n{log}"
            ) from None
        if message[0] != "ready":
            raise WorkerStartError(f"the figures worker sent {message[0]!r} instead of 'ready' at start-up")

    def _kill(self) -> None:
        if self.process is None:
            return
        with _suppress_process_errors():
            self.process.kill()
        with _suppress_process_errors():
            self.process.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.process is not None:
            for stream in (self.process.stdin, self.process.stdout):
                with _suppress_process_errors():
                    stream.close()
        self.process = None
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)
            self.scratch_dir = None
            self.log_path = None

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, os.path.getsize(self.log_path) - 65536))
                return log.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def _send(self, message: tuple) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(_HEADER.pack(len(data)) + data)
        self.process.stdin.flush()

    def _receive(self, deadline: float | None) -> tuple:
        size = None
        while True:
            if size is None and len(self._buffer) >= _HEADER.size:
                size = _HEADER.unpack(self._buffer[: _HEADER.size])[0]
            if size is not None and len(self._buffer) >= _HEADER.size + size:
                data = self._buffer[_HEADER.size : _HEADER.size + size]
                self._buffer = self._buffer[_HEADER.size + size :]
                return pickle.loads(data)

            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            descriptor = self.process.stdout.fileno()
            ready, _, _ = select.select([descriptor], [], [], timeout)
            if not ready:
                raise TimeoutError
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk


def _worker_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        {
            "MPLBACKEND": "Agg",
            "PYTHONHASHSEED": "0",
            # One thread per worker: results do not depend on the thread count, and jobs scale.
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return environment


def _remove_orphaned_scratch_dirs() -> None:
    # A parent killed with SIGKILL cannot clean up; its scratch folders carry its process id.
    for path in Path(tempfile.gettempdir()).glob(f"{_SCRATCH_PREFIX}*-*"):
        owner = path.name[len(_SCRATCH_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and path.is_dir() and not _process_exists(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _failure(summary: str, frames: list[dict]) -> dict:
    return {"stdout": "", "images": [], "error": {"summary": summary, "frames": frames}, "reads": None, "modules": None}


def _block_frames(log: str) -> list[dict]:
    # faulthandler prints the most recent call first; keep the last dump only.
    dump = log.rsplit("Stack (most recent call first):", 1)[-1] if "Stack (most recent" in log else log
    dump = dump.rsplit("Current thread", 1)[-1] if "Current thread" in dump else dump
    frames = [
        {"block": int(match[1]), "line": int(match[2]), "name": match[3]} for match in _FRAME_LINE.finditer(dump)
    ]
    return list(reversed(frames))


def _position(job: PageJob, index: int) -> int:
    return [block["index"] for block in job.blocks].index(index)


class _suppress_process_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, trace):
        return kind is not None and issubclass(kind, (OSError, ValueError, subprocess.TimeoutExpired, AttributeError))
