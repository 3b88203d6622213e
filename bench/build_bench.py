"""Time MkDocs builds with the figures plugin in the states that matter, and print medians and ratios.

Usage: python bench/build_bench.py [--content DIR] [--config mkdocs.yml] [--runs N]

The project (mkdocs.yml, the content folder, site_theme/ if present) and a snapshot of the
figures_pipeline and plugins packages are copied into a temporary folder, and the builds import the
snapshot (PYTHONPATH). So the repository's figure store and site are never touched, and edits to the
toolkit during the benchmark do not make warm builds stale. Each scenario runs ``--runs``
times (at least 3), one run of every scenario per round, and reports the median wall-clock time of
``mkdocs build``:

  disabled    FIGURES_ENABLED=false: code shows, nothing runs (the baseline)
  warm        store up to date
  prose       after a prose-only edit of one lesson
  block       after editing the last code block of one lesson
  cold-1      empty store and no local caches, one worker (FIGURES_JOBS=1)
  cold-2      empty store and no local caches, two workers (FIGURES_JOBS=2)
  upgrade-1   every block stale, as after a library upgrade, with the local caches (file hashes
              and the run times that order the pages) kept from earlier builds, one worker
  upgrade-2   the same with two workers

Peak memory is the largest sum of resident set sizes of the build's process tree (MkDocs and its
workers), sampled every 200 ms, so a shorter peak can be missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"warm": 1.15, "prose": 1.15}
COLD_SPEEDUP_TARGET = 1.6
#: Builds of a few seconds are repeated within each round: one slow spell moves them a lot.
REPEATS = {"disabled": 3, "warm": 3, "prose": 3}


def main() -> int:
    arguments = _parser().parse_args()
    runs = max(3, arguments.runs)
    with tempfile.TemporaryDirectory(prefix="figures-bench-") as folder:
        bench = Bench(Path(folder), Path(arguments.content).resolve(), Path(arguments.config).resolve())
        print(f"project copy: {bench.root}  content: {arguments.content}  runs per scenario: {runs}", flush=True)
        scenarios = {
            "cold-1": bench.cold(jobs=1),
            "cold-2": bench.cold(jobs=2),
            "upgrade-1": bench.upgrade(jobs=1),
            "upgrade-2": bench.upgrade(jobs=2),
            "disabled": bench.build({"FIGURES_ENABLED": "false"}),
            "warm": bench.unchanged(bench.build({})),
            "prose": bench.unchanged(bench.after_edit(bench.edit_prose)),
            "block": bench.after_edit(bench.edit_block),
        }
        chosen = {name: run for name, run in scenarios.items() if not arguments.only or name in arguments.only}
        # One run of each scenario per round, so a slow spell of the machine touches every scenario
        # alike rather than all the runs of one. Each round leaves the store up to date.
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in chosen}
        for number in range(1, runs + 1):
            for name, run in chosen.items():
                for _ in range(REPEATS.get(name, 1)):
                    elapsed, peak = run()
                    results[name].append((elapsed, peak))
                    print(f"round {number} {name:<10} {elapsed:6.2f} s", flush=True)
    _report(results)
    return 0


class Bench:
    def __init__(self, root: Path, content: Path, config: Path) -> None:
        self.root = root
        shutil.copytree(content, root / "content")
        shutil.copy(config, root / "mkdocs.yml")
        theme = config.parent / "site_theme"
        if theme.is_dir():
            shutil.copytree(theme, root / "site_theme")
        for package in ("figures_pipeline", "plugins"):
            shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
        self.lesson = _first_lesson_with_blocks(root / "content")
        self.manifest = root / "figure_store" / "manifest.txt"
        self.edits = 0

    def unchanged(self, scenario):
        """Wrap a scenario that must not run code, so it prints a warning if the store changed."""

        def run() -> tuple[float, int]:
            before = _mtime(self.manifest)
            result = scenario()
            if _mtime(self.manifest) != before:
                print("  WARNING: the store changed during this build, so it ran code", flush=True)
            return result

        return run

    def build(self, environment: dict[str, str]):
        def run() -> tuple[float, int]:
            return self._build(environment)

        return run

    def cold(self, jobs: int):
        def run() -> tuple[float, int]:
            shutil.rmtree(self.root / "figure_store", ignore_errors=True)
            shutil.rmtree(self.root / ".cache", ignore_errors=True)
            return self._build({"FIGURES_JOBS": str(jobs)})

        return run

    def upgrade(self, jobs: int):
        def run() -> tuple[float, int]:
            if not self.manifest.exists():
                self._build({})
            # A numpy version no entry was made with: every block is stale, nothing else changes.
            text = self.manifest.read_text(encoding="utf-8")
            text = re.sub(r'\["lib:numpy","[^"]*"\]', '["lib:numpy","0-benchmark"]', text)
            self.manifest.write_text(text, encoding="utf-8")
            return self._build({"FIGURES_JOBS": str(jobs)})

        return run

    def after_edit(self, edit):
        def run() -> tuple[float, int]:
            edit()
            return self._build({})

        return run

    def edit_prose(self) -> None:
        self.edits += 1
        with open(self.lesson, "a", encoding="utf-8") as handle:
            handle.write(f"\n\nA sentence added by the benchmark ({self.edits}).\n")

    def edit_block(self) -> None:
        from figures_pipeline.blocks import parse_blocks

        self.edits += 1
        lines = self.lesson.read_text(encoding="utf-8").split("\n")
        last = parse_blocks("\n".join(lines))[-1]
        lines.insert(last.end_line - 1, f"{last.indent}_benchmark_edit = {self.edits}")
        self.lesson.write_text("\n".join(lines), encoding="utf-8")

    def _build(self, environment: dict[str, str]) -> tuple[float, int]:
        command = [sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file", str(self.root / "mkdocs.yml")]
        env = {name: value for name, value in os.environ.items() if name not in ("FIGURES_ENABLED", "FIGURES_JOBS")}
        env.update({"NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(self.root), **environment})
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = _MemorySampler(process.pid)
        sampler.start()
        _, stderr = process.communicate()
        elapsed = time.perf_counter() - start
        sampler.stop()
        if process.returncode != 0:
            raise SystemExit(f"mkdocs build failed ({process.returncode}):\n{stderr}")
        return elapsed, sampler.peak_kib


class _MemorySampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(self.pid))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _tree_rss_kib(root_pid: int) -> int:
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as statm:
                pages = int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    tree = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return sum(rss.get(pid, 0) for pid in tree)


def _first_lesson_with_blocks(content: Path) -> Path:
    from figures_pipeline.blocks import parse_blocks

    for path in sorted(content.rglob("*.md")):
        if parse_blocks(path.read_text(encoding="utf-8")):
            return path
    raise SystemExit(f"no lesson with a `python run` block under {content}")


def _report(results: dict[str, list[tuple[float, int]]]) -> None:
    medians = {name: statistics.median(time for time, _ in runs) for name, runs in results.items()}
    baseline = medians.get("disabled", float("nan"))
    print()
    print(f"{'scenario':<10} {'median s':>9} {'x disabled':>10} {'peak MiB':>9}  runs (s)")
    for name, runs in results.items():
        times = ", ".join(f"{time:.2f}" for time, _ in runs)
        peak = max(memory for _, memory in runs) / 1024
        print(f"{name:<10} {medians[name]:>9.2f} {medians[name] / baseline:>10.2f} {peak:>9.0f}  {times}")
    print()
    for name, target in TARGETS.items():
        if name in medians:
            ratio = medians[name] / baseline
            verdict = "met" if ratio <= target else "MISSED"
            print(f"{name} / disabled = {ratio:.3f} (target <= {target}): {verdict}")
    for name in ("cold", "upgrade"):
        if f"{name}-1" in medians and f"{name}-2" in medians:
            speedup = medians[f"{name}-1"] / medians[f"{name}-2"]
            verdict = "met" if speedup >= COLD_SPEEDUP_TARGET else "MISSED"
            # Runs of one round are paired: they ran minutes apart, under similar load.
            paired = [one / two for (one, _), (two, _) in zip(results[f"{name}-1"], results[f"{name}-2"])]
            rounds = ", ".join(f"{ratio:.2f}" for ratio in paired)
            print(
                f"{name} 1 job / {name} 2 jobs = {speedup:.2f}x (target >= {COLD_SPEEDUP_TARGET}): {verdict}; "
                f"per round {rounds}, median {statistics.median(paired):.2f}x"
            )
    if "block" in medians:
        print(f"block edit / disabled = {medians['block'] / baseline:.2f}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default=str(ROOT / "content"), help="lesson folder to build (default: content/)")
    parser.add_argument("--config", default=str(ROOT / "mkdocs.yml"), help="mkdocs.yml to build with")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (at least 3)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these scenarios (cold-1 cold-2 upgrade-1 upgrade-2 disabled warm prose block)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
