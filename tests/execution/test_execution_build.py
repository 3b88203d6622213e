"""Full MkDocs builds of tiny projects with the figures plugin (and mkdocs-static-i18n)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from bs4 import BeautifulSoup
from mkdocs.commands.build import build
from mkdocs.config import load_config

from lesson_projects import MKDOCS_FIGURES_ONLY, MKDOCS_WITH_I18N, LessonProject

PLOT = """
```python run caption="{caption}" alt="{alt}"
# {comment}
import numpy as np
import matplotlib.pyplot as plt
x = np.linspace(0, 6.3, 60)
plt.figure(figsize=(4, 3))
plt.plot(x, np.sin(x))
```
"""


def _plot(caption="Sine", alt="A sine curve", comment="One period."):
    return PLOT.format(caption=caption, alt=alt, comment=comment)


def _soup(site: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((site / page / "index.html").read_text(encoding="utf-8"), "html.parser")


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING")]


def test_figure_injected_with_relative_link(project):
    project.lesson("s/01-a.md", _plot())
    result = project.mkdocs_build()
    assert result.returncode == 0, result.stderr

    soup = _soup(project.root / "site", "s/01-a")
    figure = soup.find("figure", class_="lesson-figure")
    image = figure.find("img")
    assert image["alt"] == "A sine curve"
    assert image["loading"] == "lazy"
    assert (int(image["width"]), int(image["height"])) > (100, 100)
    assert figure.find("figcaption").get_text() == "Figure 1. Sine"
    assert image["src"].startswith("../../assets/figures/")
    assert (project.root / "site/s/01-a" / image["src"]).resolve().is_file()
    # The block itself still shows as Python code, without the run marker.
    assert "np.linspace" in soup.find("code").get_text()
    assert "run" not in " ".join(soup.find("code").get("class", []))


def test_failing_block_warns_and_page_shows_error(project):
    project.lesson("s/01-bad.md", "```python run\nvalue = 1 / 0\n```")
    project.lesson("s/02-good.md", _plot())
    result = project.mkdocs_build()
    assert result.returncode == 0, result.stderr
    warnings = _warnings(result.stderr)
    assert len(warnings) == 1
    assert warnings[0].endswith("content/s/01-bad.md:10: code block failed: ZeroDivisionError: division by zero")
    assert 'File "content/s/01-bad.md", line 10, in <module>' in result.stderr

    bad = _soup(project.root / "site", "s/01-bad")
    error = bad.find("div", class_="lesson-error")
    assert "ZeroDivisionError: division by zero" in error.get_text()
    assert bad.find("figure") is None
    assert _soup(project.root / "site", "s/02-good").find("figure", class_="lesson-figure") is not None

    strict = project.mkdocs_build("--strict")
    assert strict.returncode != 0
    assert "content/s/01-bad.md:10: code block failed" in strict.stderr


def test_expect_error_block_passes_strict(project):
    project.lesson("s/01-a.md", '```python run expect-error\nraise KeyError("missing")\n```')
    result = project.mkdocs_build("--strict")
    assert result.returncode == 0, result.stderr
    box = _soup(project.root / "site", "s/01-a").find("div", class_="lesson-expected-error")
    assert 'File "content/s/01-a.md", line 10' in box.get_text()
    assert "KeyError: 'missing'" in box.get_text()


def test_i18n_build_runs_each_block_once(project):
    project.lesson("ko/s/01-a.md", _plot("사인", "사인 곡선", "한 주기"), prose="설명.")
    project.lesson("en/s/01-a.md", _plot())
    project.homepages()
    result = project.mkdocs_build("--strict", config=MKDOCS_WITH_I18N)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Ran code blocks of") == 1

    site = project.root / "site"
    korean = _soup(site, "s/01-a")
    english = _soup(site, "en/s/01-a")
    assert korean.find("figcaption").get_text() == "그림 1. 사인"
    assert english.find("figcaption").get_text() == "Figure 1. Sine"
    assert korean.find("figure").find("img")["alt"] == "사인 곡선"
    korean_file = (site / "s/01-a" / korean.find("figure").find("img")["src"]).resolve()
    english_file = (site / "en/s/01-a" / english.find("figure").find("img")["src"]).resolve()
    assert korean_file == english_file
    assert korean_file.is_file()


def test_two_clean_builds_identical(project, tmp_path):
    project.lesson("ko/s/01-a.md", _plot("사인", "사인 곡선"), "```python run\nimport numpy as np\nprint(np.random.rand(3))\n```")
    project.lesson("en/s/01-a.md", _plot())
    other = LessonProject(tmp_path / "other")
    shutil.copytree(project.root / "content", other.root / "content", dirs_exist_ok=True)

    for lessons in (project, other):
        lessons.homepages()
        result = lessons.mkdocs_build(config=MKDOCS_WITH_I18N)
        assert result.returncode == 0, result.stderr
    first = _tree(project.root / "site")
    second = _tree(other.root / "site")
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    assert any(name.startswith("assets/figures/") for name in first)
    assert _tree(project.root / "figure_store") == _tree(other.root / "figure_store")


def test_warm_build_never_imports_torch(project, tmp_path):
    project.lesson("ko/s/01-a.md", _plot("사인", "사인 곡선"))
    project.lesson("en/s/01-a.md", _plot())
    project.homepages()
    assert project.mkdocs_build(config=MKDOCS_WITH_I18N).returncode == 0
    shutil.rmtree(project.root / "site")

    blocked = tmp_path / "blocked-imports.log"
    result = project.mkdocs_build("--strict", config=MKDOCS_WITH_I18N, blocked=blocked)
    assert result.returncode == 0, result.stderr
    assert not blocked.exists()
    assert _soup(project.root / "site", "en/s/01-a").find("figure", class_="lesson-figure") is not None


def test_light_install_names_stale_blocks(project, tmp_path):
    project.lesson("ko/s/01-a.md", "```python run\nprint(1)\n```", _plot())
    project.homepages()
    blocked = tmp_path / "blocked-imports.log"
    result = project.mkdocs_build(config=MKDOCS_WITH_I18N, blocked=blocked)
    assert result.returncode != 0
    assert "cannot run here because matplotlib and torch are not installed" in result.stderr
    assert "content/ko/s/01-a.md:9: no store entry for this code" in result.stderr
    assert "content/ko/s/01-a.md:13: an earlier block on this page is stale" in result.stderr
    assert 'pip install -e ".[figures]"' in result.stderr


def test_figures_disabled_shows_code_only(project):
    project.lesson("s/01-a.md", _plot(), '```python run expect-error\nraise ValueError("x")\n```')
    result = project.mkdocs_build("--strict", env={"FIGURES_ENABLED": "false"})
    assert result.returncode == 0, result.stderr
    soup = _soup(project.root / "site", "s/01-a")
    codes = [code.get_text() for code in soup.find_all("code")]
    assert any("np.linspace" in code for code in codes)
    assert any('raise ValueError("x")' in code for code in codes)
    assert soup.find("figure") is None
    assert soup.find("div", class_="lesson-expected-error") is None
    assert not (project.root / "figure_store").exists()
    assert not (project.root / "site/assets/figures").exists()


def test_unknown_attribute_warns(project):
    project.lesson("s/01-a.md", '```python run colour="red"\nx = 1\n```')
    result = project.mkdocs_build()
    assert _warnings(result.stderr) == [
        "WARNING -  content/s/01-a.md:9: unknown block attribute 'colour' (known: alt, caption, expect-error, timeout, title)"
    ]


def test_serve_rebuild_recovers_and_keeps_workers(project, caplog):
    # Emulates `mkdocs serve`: the plugin outlives rebuilds because it defines on_startup.
    page = project.lesson("s/01-a.md", "```python run\nimport os\nprint(os.getpid())\n```")
    broken = project.lesson("s/02-b.md", "```python run\nimport os\nprint(os.getpid())\nvalue = 1 / 0\n```")
    (project.root / "mkdocs.yml").write_text(MKDOCS_FIGURES_ONLY.replace("jobs: 2", "jobs: 1"), encoding="utf-8")
    config = load_config(config_file=str(project.root / "mkdocs.yml"))
    config.plugins.on_startup(command="serve", dirty=False)
    try:
        with caplog.at_level(logging.WARNING, logger="mkdocs"):
            build(config)
        failures = [record.getMessage() for record in caplog.records if "code block failed" in record.getMessage()]
        assert len(failures) == 1
        assert failures[0].startswith("content/s/02-b.md:12: code block failed: ZeroDivisionError")

        caplog.clear()
        broken.write_text(broken.read_text().replace("value = 1 / 0", "value = 1 / 2"))
        os.utime(page)
        config = load_config(config_file=str(project.root / "mkdocs.yml"))
        with caplog.at_level(logging.INFO, logger="mkdocs"):
            build(config)
        assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
        assert "Ran code blocks of content/s/02-b.md (1/1)" in caplog.text
        site = Path(config.site_dir)
        pids = [_soup(site, name).find("pre", class_="lesson-output").get_text() for name in ("s/01-a", "s/02-b")]
        assert pids[0] == pids[1]
    finally:
        config.plugins.on_shutdown()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not re.search(r"(^|/)\.lock$", path.as_posix())
    }
