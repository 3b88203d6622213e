"""Material's search, in a real browser, finds Korean words before particles and English words."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from support import lesson_text, serve_directory

pytestmark = pytest.mark.browser

KOREAN_BODY = "## 소개\n\n이 레슨에서 합성곱은 중요합니다. 역전파는 backpropagation 이라고도 부릅니다.\n"


@pytest.fixture(scope="module")
def search_site(tmp_path_factory):
    from support import Project

    project = Project(tmp_path_factory.mktemp("search") / "project")
    # Both languages share the title on purpose: a de-duplicating search index would drop the English page.
    project.write("ko/cnn/01-images-as-tensors.md", lesson_text(body=KOREAN_BODY))
    project.write("en/cnn/01-images-as-tensors.md", lesson_text(body="## Intro\n\nConvolution matters.\n"))
    result = project.build()
    assert result.returncode == 0, result.output
    with serve_directory(result.site) as url:
        yield url


@pytest.mark.parametrize(
    ("page", "query", "found"),
    [
        ("", "합성곱", True),  # the page only has "합성곱은": the word followed by a particle
        ("", "중요", True),
        ("", "backpropagation", True),
        ("", "역전파", True),
        ("", "트랜스포머", False),
        ("en/", "convolution", True),
    ],
)
def test_search_query(chromium, search_site, page, query, found):
    browser_page = chromium.new_page()
    try:
        browser_page.goto(f"{search_site}{page}?q={quote(query)}")
        # Material reads ?q=, opens the search and shows a result count once its index is loaded.
        browser_page.wait_for_selector(
            ".md-search-result__list li, .md-search-result__meta:has-text('없습니다'), "
            ".md-search-result__meta:has-text('No matching')",
            timeout=15000,
        )
        links = [link.get_attribute("href") for link in browser_page.query_selector_all(".md-search-result__link")]
        hit = any("01-images-as-tensors" in link for link in links)
        assert hit is found, (query, links, browser_page.inner_text(".md-search-result__meta"))
    finally:
        browser_page.close()
