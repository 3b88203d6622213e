"""The CNN stream as published: twelve lessons in both languages, matching, with their figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from support import ROOT
from plugins.lessons.reading_time import estimate_minutes, is_consistent, strip_front_matter

pytestmark = pytest.mark.light

CONTENT = ROOT / "content"
RUN_FENCE = re.compile(r"^```python\s+run\b(?P<attributes>.*)$", re.MULTILINE)


def lessons(language: str) -> dict[str, Path]:
    return {path.name: path for path in sorted((CONTENT / language / "cnn").glob("[0-9][0-9]-*.md"))}


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---", 2)[1])


def built_page(site: Path, language: str, name: str) -> BeautifulSoup:
    prefix = "" if language == "ko" else "en/"
    page = site / f"{prefix}cnn/{name.removesuffix('.md')}/index.html"
    return BeautifulSoup(page.read_text(encoding="utf-8"), "lxml")


def test_twelve_lessons_numbered_without_gaps():
    for language in ("ko", "en"):
        numbers = [front_matter(path)["number"] for path in lessons(language).values()]
        assert numbers == list(range(1, 13)), language


def test_catalogue_plans_twelve():
    catalogue = yaml.safe_load((CONTENT / "streams.yml").read_text(encoding="utf-8"))
    assert [stream["planned"] for stream in catalogue["streams"] if stream["id"] == "cnn"] == [12]


def test_every_lesson_published_in_both_languages():
    korean, english = lessons("ko"), lessons("en")

    assert sorted(korean) == sorted(english)
    for name in korean:
        ko, en = front_matter(korean[name]), front_matter(english[name])
        assert ko["status"] == en["status"] == "published", name
        assert ko["id"] == en["id"], name
        assert [item["id"] for item in ko.get("exercises", [])] == [item["id"] for item in en.get("exercises", [])], name
        assert ko.get("exercises"), f"{name} has no exercise"
        assert ko.get("links"), f"ko/{name} has no links"
        assert en.get("links"), f"en/{name} has no links"
        assert ko["tags"] == en["tags"], name


def test_lesson_03_title():
    assert front_matter(lessons("en")["03-cnn-intuition.md"])["title"] == "CNN intuition: from edges to objects"


@pytest.mark.parametrize("language", ["ko", "en"])
def test_reading_time_matches_text(language):
    wrong = []
    for name, path in lessons(language).items():
        text = path.read_text(encoding="utf-8")
        body = strip_front_matter(text)
        figures = len(RUN_FENCE.findall(body))
        estimate = estimate_minutes(body, language, figures)
        stated = front_matter(path)["minutes"]
        if not is_consistent(stated, estimate):
            wrong.append(f"{name}: minutes {stated}, estimate {estimate:.1f}")
        assert 12 <= stated <= 20, f"{name}: {stated} minutes is outside 12-20"
    assert wrong == []


def test_run_blocks_have_caption_and_alt():
    missing = []
    for language in ("ko", "en"):
        for name, path in lessons(language).items():
            for match in RUN_FENCE.finditer(path.read_text(encoding="utf-8")):
                attributes = match["attributes"]
                if "expect-error" in attributes:
                    continue
                for key in ("caption", "alt"):
                    if f'{key}="' not in attributes:
                        missing.append(f"{language}/{name}: block without {key}")
    assert missing == []


@pytest.mark.slow
def test_built_figures_match_across_languages(real_site):
    total = 0
    with_figures = 0
    for name in lessons("ko"):
        counts = {}
        for language in ("ko", "en"):
            figures = built_page(real_site, language, name).select(".lesson-body figure.lesson-figure")
            for figure in figures:
                for image in figure.select("img"):
                    assert image.get("alt", "").strip(), f"{language}/{name}: image without alt text"
                    assert image.get("width"), f"{language}/{name}: image without width"
                    assert image.get("height"), f"{language}/{name}: image without height"
                    assert image.get("loading") == "lazy"
                assert figure.select_one("figcaption").get_text(strip=True), f"{language}/{name}: figure without caption"
            counts[language] = len(figures)
        assert counts["ko"] == counts["en"], f"{name}: {counts}"
        total += counts["ko"]
        with_figures += counts["ko"] > 0
    assert with_figures >= 10
    assert total >= 30


@pytest.mark.slow
def test_korean_and_english_captions_differ(real_site):
    korean = built_page(real_site, "ko", "03-cnn-intuition.md").select("figcaption")
    english = built_page(real_site, "en", "03-cnn-intuition.md").select("figcaption")

    assert len(korean) >= 6
    assert all(re.search(r"[\uac00-\ud7a3]", caption.get_text()) for caption in korean)
    assert not any(re.search(r"[\uac00-\ud7a3]", caption.get_text()) for caption in english)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["ko", "en"])
def test_next_links_walk_lesson_1_to_12(real_site, language):
    prefix = "" if language == "ko" else "en/"
    page = real_site / f"{prefix}cnn/01-images-as-tensors/index.html"
    visited = []
    while page is not None:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "lxml")
        visited.append(int(soup.select_one(".lesson-header")["data-lesson-number"]))
        following = soup.select_one(".lesson-nav__next")
        page = (page.parent / following["href"]).resolve() / "index.html" if following else None
        assert len(visited) <= 12
    assert visited == list(range(1, 13))
