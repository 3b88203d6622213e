"""Running blocks in workers: failures, isolation between pages, the working directory."""

from __future__ import annotations

import json

from figures_pipeline.runner import describe_failure

from lesson_projects import statuses


def _failure_lines(report):
    return {page.display: describe_failure(page, index, failure.error) for page, index, failure in report.failures}


def _stdout(engine, page_display: str, block: int = 0) -> str:
    page = next(page for page in engine.scan() if page.display == page_display)
    entry = engine.resolve(page)[block].entry
    names = [output["object"] for output in entry.outputs if output["type"] == "stdout"]
    return engine.store.read_object(names[0]).decode() if names else ""


def test_raising_block_names_markdown_line(project):
    project.lesson(
        "ko/s/01-a.md",
        """
        ```python run
        def divide(a, b):
            return a / b
        ```
        """,
        """
        ```python run
        # a comment line
        result = divide(1, 0)
        ```
        """,
    )
    engine = project.engine()
    report = engine.run()
    line, traceback_text = _failure_lines(report)["content/ko/s/01-a.md"]
    # Line 16 of the file is `result = divide(1, 0)`; line 11 is `return a / b` in the first block.
    assert line == 16
    assert 'File "content/ko/s/01-a.md", line 16, in <module>' in traceback_text
    assert 'File "content/ko/s/01-a.md", line 11, in divide' in traceback_text
    assert "return a / b" in traceback_text
    assert traceback_text.endswith("ZeroDivisionError: division by zero")
    assert statuses(engine)["content/ko/s/01-a.md"] == ["fresh", "failed"]


def test_timeout_stops_block(project):
    project.lesson(
        "ko/s/01-a.md",
        """
        ```python run timeout="1"
        import time
        time.sleep(60)
        ```
        """,
    )
    report = project.engine().run()
    line, traceback_text = _failure_lines(report)["content/ko/s/01-a.md"]
    assert line == 11
    assert "TimeoutError: the block did not finish within 1 s" in traceback_text


def test_worker_killed_is_reported_and_replaced(project):
    project.lesson(
        "ko/s/01-exit.md",
        """
        ```python run
        import os
        os._exit(3)
        ```
        """,
    )
    project.lesson(
        "ko/s/02-signal.md",
        """
        ```python run
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
        ```
        """,
    )
    project.lesson("ko/s/03-fine.md", "```python run\nprint('still running')\n```")
    engine = project.engine(jobs=1)
    report = engine.run()
    failures = _failure_lines(report)
    assert failures["content/ko/s/01-exit.md"][0] == 11
    assert "exited with status 3" in failures["content/ko/s/01-exit.md"][1]
    assert failures["content/ko/s/02-signal.md"][0] == 11
    assert "killed by signal 9 (SIGKILL)" in failures["content/ko/s/02-signal.md"][1]
    assert _stdout(engine, "content/ko/s/03-fine.md") == "still running\n"


def test_input_fails_at_once(project):
    project.lesson("ko/s/01-a.md", '```python run timeout="20"\nname = input("name? ")\n```')
    report = project.engine().run()
    line, traceback_text = _failure_lines(report)["content/ko/s/01-a.md"]
    assert line == 10
    assert "RuntimeError: input() is not available" in traceback_text


def test_figure_left_open_never_reaches_next_page(project):
    # One worker runs both pages in order; the first leaves a figure open when its block raises.
    project.lesson(
        "ko/s/01-a.md",
        """
        ```python run expect-error
        import matplotlib.pyplot as plt
        plt.figure()
        plt.plot([1, 2, 3])
        raise RuntimeError("left a figure open")
        ```
        """,
    )
    project.lesson(
        "ko/s/02-b.md",
        """
        ```python run
        import matplotlib.pyplot as plt
        print(len(plt.get_fignums()))
        ```
        """,
    )
    engine = project.engine(jobs=1)
    engine.run()
    assert _stdout(engine, "content/ko/s/02-b.md") == "0\n"
    page = next(page for page in engine.scan() if page.display == "content/ko/s/02-b.md")
    assert [output["type"] for output in engine.resolve(page)[0].entry.outputs] == ["stdout"]


def test_session_state_shared_within_page_only(project):
    project.lesson("ko/s/01-a.md", "```python run\nshared = 41\n```", "```python run\nprint(shared + 1)\n```")
    project.lesson(
        "ko/s/02-b.md", "```python run\nprint('shared' in globals())\n```"
    )
    engine = project.engine(jobs=1)
    engine.run()
    assert _stdout(engine, "content/ko/s/01-a.md", block=1) == "42\n"
    assert _stdout(engine, "content/ko/s/02-b.md") == "False\n"


def test_working_directory_is_private_lesson_copy(project):
    project.write("content/ko/s/data.txt", "lesson data\n")
    project.lesson(
        "ko/s/01-a.md",
        """
        ```python run
        import os
        print(os.path.basename(os.getcwd()))
        print(open("data.txt").read().strip())
        with open("written.txt", "w") as handle:
            handle.write("scratch")
        os.remove("data.txt")
        ```
        """,
    )
    engine = project.engine()
    engine.run()
    assert _stdout(engine, "content/ko/s/01-a.md") == "s\nlesson data\n"
    assert (project.root / "content/ko/s/data.txt").read_text() == "lesson data\n"
    written = [path for path in project.root.rglob("written.txt")]
    assert written == []


def test_seeded_rngs_same_on_every_page(project):
    code = "```python run\nimport random\nimport numpy as np\nprint(random.random(), np.random.rand())\n```"
    project.lesson("ko/s/01-a.md", code)
    project.lesson("ko/s/02-b.md", code + "\n\n```python run\nprint(2)\n```")
    engine = project.engine(jobs=1)
    engine.run()
    assert _stdout(engine, "content/ko/s/01-a.md") == _stdout(engine, "content/ko/s/02-b.md")


def test_torch_preloaded_and_seeded(project):
    # One worker runs both pages. It imported torch before either began, yet both draw the same numbers.
    code = """
        ```python run
        import sys
        was_imported = "torch" in sys.modules
        import torch
        print(was_imported, round(torch.rand(1).item(), 6))
        ```
        """
    project.lesson("ko/s/01-a.md", code)
    project.lesson("ko/s/02-b.md", "```python run\nx = 1\n```", code)
    engine = project.engine(jobs=1)
    engine.run()
    first = _stdout(engine, "content/ko/s/01-a.md").split()
    second = _stdout(engine, "content/ko/s/02-b.md", block=1).split()
    assert first[1] == second[1]
    assert [first[0], second[0]] == ["True", "True"]


def test_only_imported_libraries_preloaded(project):
    project.lesson("ko/s/01-a.md", "```python run\nimport sys\nprint(sorted(set(sys.modules) & {'numpy', 'torch'}))\n```")
    project.lesson("ko/s/02-b.md", "```python run\ndef f():\n    import numpy as np\n    return np\n```")
    engine = project.engine(jobs=1)
    engine.run()
    assert _stdout(engine, "content/ko/s/01-a.md") == "['numpy']\n"


def test_expect_error_block_stores_traceback(project):
    project.lesson(
        "ko/s/01-a.md",
        """
        ```python run expect-error
        raise ValueError("meant to fail")
        ```
        """,
        "```python run\nprint('after')\n```",
    )
    engine = project.engine()
    report = engine.run()
    assert report.failures == []
    page = engine.scan()[0]
    first, second = engine.resolve(page)
    assert first.entry.status == "error"
    error_object = next(output["object"] for output in first.entry.outputs if output["type"] == "error")
    error = json.loads(engine.store.read_object(error_object))
    line, traceback_text = describe_failure(page, 0, error)
    assert line == 10
    assert "ValueError: meant to fail" in traceback_text
    assert second.state == "fresh"


def test_toolkit_module_recorded_per_page(project):
    project.lesson("ko/s/01-a.md", "```python run\nimport figures_pipeline\n```")
    project.lesson("ko/s/02-b.md", "```python run\nx = 1\n```")
    engine = project.engine(jobs=1)
    engine.run()
    specs = {
        page.display: [spec for spec, _ in engine.resolve(page)[0].entry.dependencies]
        for page in engine.scan()
    }
    assert "module:figures_pipeline/__init__.py" in specs["content/ko/s/01-a.md"]
    assert not any(spec.startswith("module:") for spec in specs["content/ko/s/02-b.md"])
    assert "lib:torch" in specs["content/ko/s/02-b.md"]
