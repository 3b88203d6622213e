"""The worker process that runs lesson code blocks (started as ``python -m figures_pipeline.worker``).

The parent (:mod:`figures_pipeline.pool`) sends one page at a time. The worker runs the page's
blocks in order in one fresh namespace. After each block it sends the block's figures as PNG bytes,
its standard output, its error if it raised, and the dependencies the session recorded so far. Between
pages the worker stays alive, so heavy libraries (torch) are imported once per worker: at start-up,
for the libraries the parent names in ``FIGURES_PRELOAD`` (those its pages import).

Each page starts from the same state whatever ran before in this worker. Toolkit modules are
dropped from ``sys.modules``, so the modules a page imports can be recorded. All figures are
closed, matplotlib's rcParams are reset, and ``random``, numpy and torch are seeded with 0 (also
right after their first import). Environment variables, ``sys.path``, warning filters, numpy's
print options and torch's default dtype and grad mode are restored too. Other global state a page
changes (a library's module-level cache, for example) can still reach the next page. The page runs in a private copy of its lesson folder, so files it
writes never reach the repository. ``input()`` raises at once and standard input is empty.

Protocol: messages are pickled tuples with an 8-byte big-endian length prefix, read from the
worker's original standard input and written to its original standard output. The worker moves
file descriptors 0 and 1 away at start-up so nothing the lesson code prints can corrupt them.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import ctypes
import faulthandler
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import pickle
import random
import shutil
import signal
import struct
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from figures_pipeline import dependencies

#: Modules of the engine itself: kept between pages and never counted as a block's dependency.
ENGINE_MODULES = frozenset(
    f"figures_pipeline.{name}"
    for name in ("blocks", "cli", "dependencies", "keys", "pool", "runner", "store", "worker", "__main__")
)
#: Modules with import-time side effects on matplotlib, re-imported by each page that uses them.
RESET_MODULES = ("koreanize_matplotlib",)
BLOCK_FILENAME_PREFIX = "<lesson-block-"

_SKIPPED_SUFFIXES = (
    ".py", ".pyc", ".pyo", ".pyi", ".pyd", ".so", ".ttf", ".otf", ".ttc", ".afm", ".mplstyle",
)
_SKIPPED_PARTS = ("__pycache__", "mpl-data")
_SKIPPED_PREFIXES = ("/proc/", "/sys/", "/dev/", "/etc/", "/usr/share/", "/usr/lib/locale/", "/run/")
_HEADER = struct.Struct(">Q")
_INITIAL_STATE: dict = {}


def main() -> None:
    """Serve pages until the parent closes the pipe or sends ``("exit",)``."""
    channel = _Channel.from_standard_streams()
    _isolate_process()
    _preload_libraries()
    _INITIAL_STATE.update(environ=dict(os.environ), path=list(sys.path), warnings=list(warnings.filters))
    _install_import_hooks()
    sys.addaudithook(_audit_open)
    channel.send(("ready", os.getpid()))

    while True:
        message = channel.receive()
        if message is None or message[0] == "exit":
            return
        if message[0] == "page":
            try:
                _run_page(message[1], channel)
            except Exception as exception:  # noqa: BLE001 - the parent reports it on the page's block
                channel.send(("page-error", _describe_exception(exception)))
            channel.send(("page-done",))


def _preload_libraries() -> None:
    # The parent names the libraries its pages import (figures_pipeline.pool.preloaded_modules).
    # Importing them before the first page keeps the import out of that page's run time. A
    # library that fails to import is left out: the lesson that imports it gets the error.
    for name in filter(None, os.environ.pop("FIGURES_PRELOAD", "").split(",")):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any import failure is reported where a lesson imports it
            continue
    for name, setup in _AFTER_IMPORT.items():
        module = sys.modules.get(name)
        if module is not None:
            setup(module)


def block_filename(index: int) -> str:
    """Return the pseudo file name a block's code is compiled under."""
    return f"{BLOCK_FILENAME_PREFIX}{index}>"


# Running a page


def _run_page(job: dict, channel: "_Channel") -> None:
    _reset_session()
    lesson_dir = Path(job["lesson_dir"])
    session_root = os.environ.get("FIGURES_SESSION_ROOT")
    if session_root:
        os.makedirs(session_root, exist_ok=True)
    session_dir = Path(tempfile.mkdtemp(prefix="session-", dir=session_root))
    work_dir = session_dir / lesson_dir.name
    previous_cwd = os.getcwd()
    recorder = _Recorder(
        root=Path(job["root"]), lesson_dir=lesson_dir, work_dir=work_dir, ignored=job.get("ignored", [])
    )
    try:
        _copy_lesson_dir(lesson_dir, work_dir)
        os.chdir(work_dir)
        namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        with dependencies.recording() as reads:
            _Recorder.active_reads = reads
            for block in job["blocks"]:
                channel.send(("start", block["index"]))
                result = _run_block(block, namespace, channel, job["dpi"])
                result["reads"] = recorder.specs(reads)
                result["modules"] = _toolkit_modules()
                channel.send(("block", block["index"], result))
                if result["error"] is not None and not block["expect_error"]:
                    break
    finally:
        _Recorder.active_reads = None
        os.chdir(previous_cwd)
        _close_figures()
        shutil.rmtree(session_dir, ignore_errors=True)


def _run_block(block: dict, namespace: dict, channel: "_Channel", dpi: int) -> dict:
    filename = block_filename(block["index"])
    stdout = io.StringIO()
    error = None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        try:
            tree = ast.parse(block["code"], filename=filename)
            # One statement at a time, so the parent has the running line if the process dies.
            for statement in tree.body:
                channel.send(("line", block["index"], statement.lineno))
                module = ast.Module(body=[statement], type_ignores=[])
                exec(compile(module, filename, "exec"), namespace)
        except BaseException as exception:  # noqa: BLE001 - lesson code may raise anything
            error = _describe_exception(exception)
    images, figure_error = _collect_figures(dpi)
    if error is None and figure_error is not None:
        error = figure_error
    return {"stdout": stdout.getvalue(), "images": images, "error": error}


def _collect_figures(dpi: int) -> tuple[list[bytes], dict | None]:
    """Return every open matplotlib figure as PNG bytes (in figure-number order) and close them."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return [], None
    images = []
    try:
        for number in pyplot.get_fignums():
            buffer = io.BytesIO()
            pyplot.figure(number).savefig(
                buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None}
            )
            images.append(buffer.getvalue())
    except Exception as exception:  # noqa: BLE001 - a figure that fails to draw is the block's error
        return images, _describe_exception(exception)
    finally:
        pyplot.close("all")
    return images, None


def _describe_exception(exception: BaseException) -> dict:
    frames = []
    for frame in traceback.extract_tb(exception.__traceback__):
        if frame.filename == __file__:
            continue
        if frame.filename.startswith(BLOCK_FILENAME_PREFIX):
            frames.append({"block": _block_index(frame.filename), "line": frame.lineno, "name": frame.name})
        else:
            frames.append(
                {"file": _short_path(frame.filename), "line": frame.lineno, "name": frame.name, "text": frame.line or ""}
            )

    if isinstance(exception, SyntaxError) and (exception.filename or "").startswith(BLOCK_FILENAME_PREFIX):
        frames.append({"block": _block_index(exception.filename), "line": exception.lineno or 1, "name": "<module>"})
        summary = f"{type(exception).__name__}: {exception.msg}"
    else:
        summary = "".join(traceback.format_exception_only(type(exception), exception)).strip()
    return {"summary": summary, "frames": frames}


def _block_index(filename: str) -> int:
    return int(filename[len(BLOCK_FILENAME_PREFIX) : -1])


def _short_path(filename: str) -> str:
    # Paths inside sys.path entries are shown relative to them, so tracebacks do not depend on
    # where the virtual environment lives.
    for entry in sorted((p for p in sys.path if p), key=len, reverse=True):
        prefix = entry.rstrip("/") + "/"
        if filename.startswith(prefix):
            return filename[len(prefix) :]
    return filename


def _toolkit_modules() -> list[tuple[str, str]]:
    """Return (spec, file) of the figures_pipeline modules the page has imported."""
    package_parent = Path(dependencies.__file__).resolve().parent.parent
    used = []
    for name, module in list(sys.modules.items()):
        if name != "figures_pipeline" and not name.startswith("figures_pipeline."):
            continue
        path = getattr(module, "__file__", None)
        if name in ENGINE_MODULES or not path:
            continue
        resolved = Path(path).resolve()
        used.append((f"module:{resolved.relative_to(package_parent).as_posix()}", str(resolved)))
    return sorted(used)


# Session state


def _reset_session() -> None:
    # Process-wide state a page may change: restore what the worker started with.
    os.environ.clear()
    os.environ.update(_INITIAL_STATE["environ"])
    sys.path[:] = _INITIAL_STATE["path"]
    warnings.filters[:] = _INITIAL_STATE["warnings"]
    warnings._filters_mutated()
    for name in list(sys.modules):
        toolkit = name == "figures_pipeline" or name.startswith("figures_pipeline.")
        if (toolkit and name not in ENGINE_MODULES) or name.split(".")[0] in RESET_MODULES:
            del sys.modules[name]
    _close_figures()
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:
        matplotlib.rcdefaults()
    _seed_all()


def _close_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def _seed_all() -> None:
    random.seed(0)
    for name, seed in _SEEDERS.items():
        module = sys.modules.get(name)
        if module is not None:
            seed(module)


def _seed_numpy(numpy) -> None:
    numpy.random.seed(0)
    options = _INITIAL_STATE.setdefault("numpy_print_options", numpy.get_printoptions())
    numpy.set_printoptions(**options)


def _seed_torch(torch) -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)


def _setup_matplotlib(matplotlib) -> None:
    matplotlib.use("Agg")
    matplotlib.rcdefaults()


_SEEDERS = {"numpy": _seed_numpy, "torch": _seed_torch}
_AFTER_IMPORT = {**_SEEDERS, "matplotlib": _setup_matplotlib}


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Runs a setup function right after numpy, torch or matplotlib is first imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _AFTER_IMPORT:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec_module = loader.exec_module

        def exec_module(module):
            original_exec_module(module)
            _AFTER_IMPORT[fullname](module)

        loader.exec_module = exec_module
        return spec


def _install_import_hooks() -> None:
    sys.meta_path.insert(0, _AfterImportFinder())


def _refuse_input(prompt: object = "") -> str:
    raise RuntimeError("input() is not available: lesson code runs at build time with no keyboard")


def _isolate_process() -> None:
    # Standard input is empty and input() raises; the protocol descriptors were moved already.
    builtins.input = _refuse_input
    sys.stdin = io.StringIO("")
    faulthandler.enable(file=sys.__stderr__, all_threads=False)
    faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=False)
    # Die with the parent (Linux), so a killed build leaves no worker behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        os._exit(0)


# Recording reads


def _audit_open(event: str, args: tuple) -> None:
    if event != "open" or _Recorder.active_reads is None:
        return
    try:
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return
        if isinstance(mode, str):
            if any(letter in mode for letter in "wax+"):
                return
        elif isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR):
            return
        if _importing():
            return
        _Recorder.active_reads.add(os.path.realpath(os.fsdecode(path)))
    except Exception:  # noqa: BLE001 - an audit hook must never break the lesson's open() call
        return


def _importing() -> bool:
    # Files opened while a module is imported belong to the library, and the key covers its version.
    # Recording them would also make a page's dependencies depend on what the worker ran before.
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


class _Recorder:
    """Turns recorded absolute paths into portable dependency specs (see figures_pipeline.keys)."""

    active_reads: set[str] | None = None

    def __init__(self, root: Path, lesson_dir: Path, work_dir: Path, ignored: list[str]) -> None:
        self.root = str(root.resolve())
        self.lesson_dir = str(lesson_dir.resolve())
        self.work_dir = str(work_dir)
        self.ignored = [str(Path(path).resolve()) for path in ignored]
        self.temp_dir = os.path.realpath(tempfile.gettempdir())
        self.home_caches = [
            os.path.realpath(os.path.expanduser(path)) for path in ("~/.cache/matplotlib", "~/.config/matplotlib")
        ]
        mpl_config = os.environ.get("MPLCONFIGDIR")
        if mpl_config:
            self.home_caches.append(os.path.realpath(mpl_config))
        self.search_paths = sorted(
            {os.path.realpath(entry) for entry in sys.path if entry and os.path.isdir(entry)}, key=len, reverse=True
        )

    def specs(self, reads: set[str]) -> list[str]:
        specs = set()
        for path in list(reads):
            spec = self.spec(path)
            if spec is not None:
                specs.add(spec)
        return sorted(specs)

    def spec(self, path: str) -> str | None:
        work_prefix = os.path.realpath(self.work_dir) + "/"
        if path.startswith(work_prefix):
            relative = path[len(work_prefix) :]
            # A file the block wrote itself has no original, so it is not an input.
            if os.path.isfile(os.path.join(self.lesson_dir, relative)):
                return None if _skipped_file(relative) else f"lesson:{relative}"
            return None
        if not os.path.isfile(path) or _skipped_file(path) or _under(path, self.ignored):
            return None
        if _under(path, [self.lesson_dir]):
            return f"lesson:{os.path.relpath(path, self.lesson_dir)}"
        for entry in self.search_paths:
            relative = os.path.relpath(path, entry)
            # Only a file inside a package folder can be found again by the package's name.
            inside_package = "/" in relative
            if entry != self.root and inside_package and _under(path, [entry]) and not _under(self.root, [entry]):
                return f"pkg:{relative}"
        if _under(path, [self.root]):
            return f"repo:{os.path.relpath(path, self.root)}"
        if path.startswith(_SKIPPED_PREFIXES) or _under(path, [self.temp_dir, *self.home_caches]):
            return None
        return f"abs:{path}"


def _skipped_file(path: str) -> bool:
    parts = path.split("/")
    if any(part in _SKIPPED_PARTS or part.endswith((".dist-info", ".egg-info")) for part in parts):
        return True
    return path.endswith(_SKIPPED_SUFFIXES) or parts[-1] == "matplotlibrc"


def _under(path: str, directories: list[str]) -> bool:
    return any(path == directory or path.startswith(directory.rstrip("/") + "/") for directory in directories)


def _copy_lesson_dir(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, symlinks=True, ignore=shutil.ignore_patterns(".*"))


# Protocol


class _Channel:
    def __init__(self, reader, writer) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    def from_standard_streams(cls) -> "_Channel":
        reader = os.fdopen(os.dup(0), "rb", buffering=0)
        writer = os.fdopen(os.dup(1), "wb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        # Output written by native code to descriptor 1 goes to the worker's log (descriptor 2).
        os.dup2(2, 1)
        return cls(reader, writer)

    def send(self, message: tuple) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(_HEADER.pack(len(data)) + data)

    def receive(self) -> tuple | None:
        header = self._read_exactly(_HEADER.size)
        if header is None:
            return None
        data = self._read_exactly(_HEADER.unpack(header)[0])
        return None if data is None else pickle.loads(data)

    def _read_exactly(self, size: int) -> bytes | None:
        chunks = []
        while size:
            chunk = self.reader.read(size)
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


if __name__ == "__main__":
    main()
    # Skip the interpreter's teardown (about 1.5 s per worker measured here, with torch imported):
    # the worker has nothing left to write, and the parent removes its folder.
    os._exit(0)
