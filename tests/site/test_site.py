"""The real site, built from this repository: both languages, headers, links, switcher, headings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from links import check_site

pytestmark = [pytest.mark.slow, pytest.mark.light]

LESSON_03 = "cnn/03-cnn-intuition/index.html"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="module")
def site(real_site) -> Path:
    return real_site


def soup_of(site: Path, relative: str) -> BeautifulSoup:
    return BeautifulSoup((site / relative).read_text(encoding="utf-8"), "lxml")


def test_both_language_trees_exist(site):
    korean = sorted(path.relative_to(site).as_posix() for path in (site / "cnn").glob("*/index.html"))
    english = sorted(path.relative_to(site / "en").as_posix() for path in (site / "en/cnn").glob("*/index.html"))

    assert "cnn/03-cnn-intuition/index.html" in korean
    assert korean == english


def test_links_anchors_and_images_resolve(site):
    checked, broken = check_site(site, base_path="/lessons/")

    assert checked > 100
    assert [str(link) for link in broken] == []


def test_html_lang_matches_language(site):
    assert soup_of(site, LESSON_03).html["lang"] == "ko"
    assert soup_of(site, "en/" + LESSON_03).html["lang"] == "en"


@pytest.mark.parametrize(
    ("page", "place", "minutes", "previous_label", "report"),
    [
        (LESSON_03, "레슨 03 / 12 · 공개", "약", "이전 레슨", "문제 신고하기"),
        ("en/" + LESSON_03, "Lesson 03 of 12 · published", "min", "Previous lesson", "Report a problem"),
    ],
    ids=["ko", "en"],
)
def test_lesson_header_in_page_language(site, page, place, minutes, previous_label, report):
    soup = soup_of(site, page)
    header = soup.select_one(".lesson-header")

    assert " ".join(header.select_one(".lesson-header__place").get_text().split()) == place
    assert minutes in header.select_one(".lesson-header__minutes").get_text()
    assert [tag.get_text() for tag in header.select(".lesson-tag")][:2] == ["cnn", "feature-hierarchy"]
    assert soup.select_one(".lesson-nav__previous .lesson-nav__direction").get_text() == previous_label
    assert soup.select_one(".lesson-nav__next") is not None
    assert soup.select(".lesson-exercises input[type=checkbox]") or soup.select(".lesson-exercises")
    assert soup.select(".lesson-links a[href^='https://']")
    report_link = soup.select_one(".lesson-report a")
    assert report in report_link.get_text()
    assert report_link["href"].startswith("https://github.com/")
    assert "content%2F" in report_link["href"]
    assert "cnn%2F03-cnn-intuition.md" in report_link["href"]


def test_switcher_leads_to_same_lesson(site):
    for page, other, expected in (
        (LESSON_03, "en", site / "en" / LESSON_03),
        ("en/" + LESSON_03, "ko", site / LESSON_03),
    ):
        link = soup_of(site, page).select_one(f'.md-select__link[hreflang="{other}"]')
        target = ((site / page).parent / link["href"]).resolve() / "index.html"
        assert target == expected.resolve(), (page, link["href"])


def test_korean_heading_ids_unique_and_derived(site):
    article = soup_of(site, LESSON_03).select_one("article")
    headings = article.select(".lesson-body h2, .lesson-body h3")
    ids = [heading.get("id", "") for heading in headings]

    assert len(headings) >= 4
    assert all(ids)
    assert len(set(ids)) == len(ids)
    hangul_headings = [heading for heading in headings if HANGUL.search(heading.get_text())]
    assert hangul_headings
    assert all(HANGUL.search(heading["id"]) for heading in hangul_headings)


def test_english_page_links_korean_section(site):
    korean_ids = {element["id"] for element in soup_of(site, LESSON_03).select(".lesson-body [id]")}
    english = soup_of(site, "en/" + LESSON_03)
    link = english.select_one('.md-select__link[hreflang="ko"]')["href"]
    # A cross-language section link is the switcher link plus a Korean heading id; the id must exist.
    some_id = sorted(korean_ids)[0]
    target = ((site / "en" / LESSON_03).parent / link).resolve() / "index.html"
    assert some_id in {element.get("id") for element in BeautifulSoup(target.read_text(encoding="utf-8"), "lxml").find_all(id=True)}


def test_stream_index_lists_lessons(site):
    for page, minutes in (("cnn/index.html", "약"), ("en/cnn/index.html", "min")):
        items = soup_of(site, page).select(".lesson-list__item")
        numbers = [int(item.select_one(".lesson-list__number").get_text()) for item in items]
        assert numbers == sorted(numbers)
        assert 3 in numbers
        assert all(minutes in item.select_one(".lesson-list__facts").get_text() for item in items)


def test_home_lists_streams(site):
    assert soup_of(site, "index.html").select_one(".stream-card h3 a").get_text() == "CNN 직관 스트림"
    assert soup_of(site, "en/index.html").select_one(".stream-card h3 a").get_text() == "The CNN intuition stream"


def test_fonts_served_from_site(site):
    css = (site / "assets/stylesheets/lessons.css").read_text(encoding="utf-8")

    assert (site / "assets/fonts/NanumGothic.woff2").stat().st_size > 100_000
    assert "word-break: keep-all" in css
    for page in (LESSON_03, "en/" + LESSON_03, "index.html"):
        html = (site / page).read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html
        assert "fonts.gstatic.com" not in html


def test_search_index_has_both_languages(site):
    index = json.loads((site / "search/search_index.json").read_text(encoding="utf-8"))

    assert set(index["config"]["lang"]) == {"ko", "en"}
    locations = {doc["location"] for doc in index["docs"]}
    assert any(location.startswith("cnn/03-cnn-intuition/") for location in locations)
    assert any(location.startswith("en/cnn/03-cnn-intuition/") for location in locations)


def test_manifest_in_every_page(site):
    for page in (LESSON_03, "en/" + LESSON_03, "index.html", "en/index.html"):
        script = soup_of(site, page).select_one("script[data-lesson-manifest]")
        manifest = json.loads(script.string)
        assert manifest["version"] == 1
        assert "cnn-03" in manifest["lessons"]
        assert manifest["language"] == ("en" if page.startswith("en/") else "ko")
