"""The figure store: what re-runs after an edit, corruption, concurrency, killed runs, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

from figures_pipeline.store import Store

from lesson_projects import stale_reasons, statuses

PLOT = """
```python run caption="Sine"
# Draw one period.
import numpy as np
import matplotlib.pyplot as plt
x = np.linspace(0, 6.3, 50)
plt.plot(x, np.sin(x))
```
"""

READS_DATA = """
```python run
import numpy as np
values = np.loadtxt("data.csv", delimiter=",")
print(values.sum())
```
"""


def _object_names(engine, suffix: str) -> set[str]:
    return {
        str(output["object"])
        for page in engine.scan()
        for status in engine.resolve(page)
        if status.entry is not None
        for output in status.entry.outputs
        if str(output["object"]).endswith(suffix)
    }


def test_prose_and_comment_edits_rerun_nothing(project):
    path = project.lesson("ko/s/01-a.md", PLOT, "```python run\nprint(1)\n```")
    engine = project.engine()
    assert len(engine.run().ran) == 1

    text = path.read_text()
    text = text.replace("Some prose.", "Rewritten prose, much longer than before.\n\nAnd a new paragraph.")
    text = text.replace("# Draw one period.", "# 한 주기를 그립니다.\n\n# Another comment.")
    text = text.replace("x = np.linspace(0, 6.3, 50)", "x = np.linspace(0, 6.3, 50)  # inputs\n")
    path.write_text(text)

    assert stale_reasons(engine) == {}
    assert engine.run().ran == []


def test_code_edit_reruns_that_block_and_later(project):
    path = project.lesson("ko/s/01-a.md", "```python run\nprint(1)\n```", PLOT)
    engine = project.engine()
    engine.run()
    path.write_text(path.read_text().replace("print(1)", "print(2)"))
    reasons = stale_reasons(engine)
    assert reasons[("content/ko/s/01-a.md", 9)] == ["no store entry for this code (new or changed code, or it failed last time)"]
    assert reasons[("content/ko/s/01-a.md", 13)] == ["an earlier block on this page is stale"]


def test_data_file_edit_reruns_only_readers(project):
    project.write("content/ko/s/data.csv", "1,2,3\n")
    project.lesson("ko/s/01-reads.md", "```python run\nprint('first')\n```", READS_DATA)
    project.lesson("ko/s/02-plot.md", PLOT)
    engine = project.engine()
    engine.run()
    assert statuses(engine) == {"content/ko/s/01-reads.md": ["fresh", "fresh"], "content/ko/s/02-plot.md": ["fresh"]}

    (project.root / "content/ko/s/data.csv").write_text("1,2,4\n")
    assert stale_reasons(engine) == {("content/ko/s/01-reads.md", 13): ["file changed: content/ko/s/data.csv"]}
    report = engine.run()
    assert report.ran == ["content/ko/s/01-reads.md"]
    assert stale_reasons(engine) == {}


def test_korean_and_english_share_one_run(project):
    korean = PLOT.replace("# Draw one period.", "# 한 주기를 그립니다.\n# 두 번째 주석").replace('caption="Sine"', 'caption="사인"')
    project.lesson("ko/s/01-a.md", korean, prose="한국어 설명.")
    project.lesson("en/s/01-a.md", PLOT)
    engine = project.engine()
    report = engine.run()
    assert len(report.ran) == 1
    assert statuses(engine) == {"content/en/s/01-a.md": ["fresh"], "content/ko/s/01-a.md": ["fresh"]}
    pages = engine.scan()
    entries = {page.display: engine.resolve(page)[0].entry.key for page in pages}
    assert entries["content/en/s/01-a.md"] == entries["content/ko/s/01-a.md"]
    assert len(_object_names(engine, ".png")) == 1


def test_corrupt_or_missing_object_reruns(project):
    project.lesson("ko/s/01-a.md", PLOT)
    project.lesson("ko/s/02-b.md", "```python run\nprint('hello')\n```")
    engine = project.engine()
    engine.run()
    png = next(iter(_object_names(engine, ".png")))
    text = next(iter(_object_names(engine, ".txt")))
    store = engine.store
    with open(store.object_path(png), "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x00\x00\x00")
    store.object_path(text).unlink()

    reasons = stale_reasons(engine)
    assert reasons[("content/ko/s/01-a.md", 9)] == [f"store object missing or corrupt: {png}"]
    assert reasons[("content/ko/s/02-b.md", 9)] == [f"store object missing or corrupt: {text}"]
    assert sorted(engine.run().ran) == ["content/ko/s/01-a.md", "content/ko/s/02-b.md"]
    assert store.read_object(png) is not None
    assert store.read_object(text) == b"hello\n"


def test_invalid_manifest_line_reruns_block(project):
    project.lesson("ko/s/01-a.md", "```python run\nprint('hello')\n```")
    engine = project.engine()
    engine.run()
    manifest = engine.store.manifest_path
    manifest.write_text(manifest.read_text().replace('"key":', '"key:', 1))
    assert list(stale_reasons(engine)) == [("content/ko/s/01-a.md", 9)]
    assert engine.store.invalid_lines == [3]
    assert project.cli("verify").returncode == 1


def test_concurrent_runs_share_store(project):
    for number in range(1, 5):
        project.lesson(f"ko/s/0{number}-a.md", PLOT.replace("50)", f"{number * 10})"))
    first = project.cli("run", "--jobs", "1", "--quiet", wait=False)
    second = project.cli("run", "--jobs", "1", "--quiet", wait=False)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    first.stdout.close(), first.stderr.close(), second.stdout.close(), second.stderr.close()

    verify = project.cli("verify")
    assert verify.returncode == 0, verify.stdout
    store = Store(project.root / "figure_store")
    assert len(store.entries()) == 4
    assert store.invalid_lines == []
    leftovers = [path.name for path in (project.root / "figure_store").rglob("*.tmp")]
    assert leftovers == []


def test_killed_run_leaves_no_partial_entry(project, tmp_path):
    pid_file = tmp_path / "worker.pid"
    project.lesson("ko/s/01-fast.md", "```python run\nprint('fast')\n```")
    project.lesson(
        "ko/s/02-slow.md",
        f"""
        ```python run
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        ```
        """,
    )
    process = project.cli("run", "--jobs", "2", "--quiet", wait=False)
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the slow block never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close(), process.stderr.close()

    store = Store(project.root / "figure_store")
    assert store.invalid_lines == []
    for entry in store.entries().values():
        assert all(store.object_is_valid(name) for name in entry.object_names())
    # The worker dies with its parent instead of finishing the page.
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)

    status = project.cli("status")
    assert "content/ko/s/02-slow.md:9: stale" in status.stdout


def test_cli_status_run_verify_prune(project):
    project.write("content/ko/s/data.csv", "1,2,3\n")
    project.lesson("ko/s/01-a.md", READS_DATA)
    assert project.cli("verify").returncode == 1
    run = project.cli("run", "--jobs", "2")
    assert run.returncode == 0, run.stderr
    assert "ran 1 page(s), 0 failing block(s)" in run.stdout
    assert "100%" in run.stderr
    assert project.cli("verify").returncode == 0

    (project.root / "content/ko/s/data.csv").write_text("5,5\n")
    status = project.cli("status")
    assert "content/ko/s/01-a.md:9: stale: file changed: content/ko/s/data.csv" in status.stdout
    verify = project.cli("verify")
    assert verify.returncode == 1
    assert "content/ko/s/01-a.md:9: file changed: content/ko/s/data.csv" in verify.stdout

    assert project.cli("run", "--quiet").returncode == 0
    prune = project.cli("prune")
    assert "removed 1 entry and 1 object(s)" in prune.stdout
    assert project.cli("verify").returncode == 0


def test_shards_merge_by_union(project, tmp_path):
    for number in range(1, 5):
        project.lesson(f"ko/s/0{number}-a.md", f"```python run\nprint({number})\n```")
    for shard in ("1/2", "2/2"):
        result = project.cli("--store", f"store-{shard[0]}", "run", "--shard", shard, "--quiet")
        assert result.returncode == 0, result.stderr
    counts = [len(Store(project.root / f"store-{number}").entries()) for number in ("1", "2")]
    assert counts == [2, 2]

    merged = project.root / "figure_store"
    (merged / "objects").mkdir(parents=True)
    lines = []
    for number in ("1", "2"):
        part = project.root / f"store-{number}"
        lines += part.joinpath("manifest.txt").read_text().splitlines()
        for path in (part / "objects").iterdir():
            shutil.copy(path, merged / "objects" / path.name)
    (merged / "manifest.txt").write_text("\n".join(lines) + "\n")
    assert project.cli("verify").returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_library_version_change_reported(project):
    project.lesson("ko/s/01-a.md", "```python run\nprint(1)\n```")
    engine = project.engine()
    engine.run()
    manifest = engine.store.manifest_path
    manifest.write_text(manifest.read_text().replace('["lib:numpy","', '["lib:numpy","0.1-'))
    status = project.cli("status")
    assert "content/ko/s/01-a.md:9: stale: library version changed: numpy 0.1-" in status.stdout


def test_run_times_order_next_run(project):
    # Code size puts the long page first, and the times recorded by a run put the slow page first.
    project.lesson("ko/s/01-slow.md", "```python run\nimport time\ntime.sleep(1.5)\n```")
    long_code = "\n".join(f"value_{number} = {number}" for number in range(40))
    project.lesson("ko/s/02-long.md", f"```python run\n{long_code}\n```")
    engine = project.engine(jobs=1)
    order = [page.display for page in engine.run_times.longest_first(engine.scan())]
    assert order == ["content/ko/s/02-long.md", "content/ko/s/01-slow.md"]

    engine.run()
    times = json.loads((project.root / ".cache/figures/run-times.json").read_text())
    assert times["content/ko/s/01-slow.md"] >= 1.5
    assert times["content/ko/s/02-long.md"] < 1.5

    # A page with no recorded time is estimated at the recorded pages' seconds per character.
    project.lesson("ko/s/03-new.md", "```python run\n" + "\n".join([long_code] * 4) + "\n```")
    later = project.engine(jobs=1)
    order = [page.display for page in later.run_times.longest_first(later.scan())]
    assert order == ["content/ko/s/03-new.md", "content/ko/s/01-slow.md", "content/ko/s/02-long.md"]
