"""HTML special characters in titles and tags are text wherever they appear, never markup."""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup

from support import lesson_text

pytestmark = pytest.mark.light

HOSTILE_TITLE = 'A < B & "C" \'D\' </title><script>alert(1)</script>'
HOSTILE_TAG = "<b>bold</b>&amp;"


def test_hostile_title_and_tag_escaped_everywhere(project):
    for language in ("ko", "en"):
        project.write(
            f"{language}/cnn/01-images-as-tensors.md",
            lesson_text(title=HOSTILE_TITLE, tags=[HOSTILE_TAG, "cnn"]),
        )
    project.write("ko/cnn/index.md", "# 스트림\n\n목록.\n")

    result = project.build()
    assert result.returncode == 0, result.output

    for page in ("cnn/01-images-as-tensors/index.html", "en/cnn/01-images-as-tensors/index.html"):
        html = (result.site / page).read_text(encoding="utf-8")
        soup = BeautifulSoup(html, "lxml")

        # No element was created by the payload.
        executable = [script for script in soup.find_all("script") if script.get("type") != "application/json"]
        assert not [script for script in executable if "alert(1)" in (script.string or "")]
        assert soup.find("b", string="bold") is None
        assert "<script>alert(1)</script>" not in html

        # Title, header, nav and tags show the text as written.
        assert soup.title.get_text().startswith(HOSTILE_TITLE + " - ")
        assert soup.select_one(".lesson-header__title").get_text() == HOSTILE_TITLE
        assert HOSTILE_TITLE in [link.get_text(" ", strip=True) for link in soup.select(".md-nav__link")]
        assert soup.select_one(".lesson-header .lesson-tag").get_text() == HOSTILE_TAG

        # The manifest is JSON that a "</script>" in a title cannot end early.
        manifest = json.loads(soup.select_one("script[data-lesson-manifest]").string)
        assert manifest["lessons"]["cnn-01"]["title"] == HOSTILE_TITLE

        # Meta tags hold no raw markup.
        for meta in soup.find_all("meta"):
            assert "<script" not in meta.get("content", "")

    listing = BeautifulSoup((result.site / "cnn/index.html").read_text(encoding="utf-8"), "lxml")
    assert HOSTILE_TITLE in listing.select_one(".lesson-list__item a").get_text()
    assert listing.select_one(".lesson-list__item .lesson-tag").get_text() == HOSTILE_TAG

    search = (result.site / "search/search_index.json").read_text(encoding="utf-8")
    assert "</title><script>" not in search
    titles = [doc["title"] for doc in json.loads(search)["docs"] if doc["location"].endswith("01-images-as-tensors/")]
    assert titles
    assert all("&lt;/title&gt;&lt;script&gt;" in title for title in titles)
