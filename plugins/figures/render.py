"""HTML that replaces a ``python run`` block's place in the page: its output, figures or error.

Everything a reader sees here exists in Korean and English; the page's language picks the text.
Captions and alt texts come from the block's attributes in the page's own language.
"""

from __future__ import annotations

import html
import posixpath
from dataclasses import dataclass

STRINGS = {
    "ko": {
        "figure": "그림 {number}",
        "default_alt": "위 코드 블록이 그린 그림",
        "failed": "이 코드 블록을 실행하지 못했습니다",
        "expected_error": "예상한 오류",
        "skipped": "이 페이지의 앞 코드 블록이 실패해서 이 블록은 실행하지 않았습니다.",
        "stale": "이 코드 블록의 그림이 아직 만들어지지 않았습니다.",
        "output": "출력",
    },
    "en": {
        "figure": "Figure {number}",
        "default_alt": "Figure drawn by the code block above",
        "failed": "This code block failed",
        "expected_error": "Expected error",
        "skipped": "Not run because an earlier code block on this page failed.",
        "stale": "The figure for this code block has not been generated yet.",
        "output": "Output",
    },
}


@dataclass
class Image:
    """A figure file as the page links it."""

    src: str
    width: int
    height: int


def strings_for(language: str) -> dict[str, str]:
    """Return the reader-facing texts of ``language`` (English when it has none)."""
    return STRINGS.get(language, STRINGS["en"])


def relative_url(page_dest_uri: str, target: str) -> str:
    """Return the link from a page (its ``dest_uri``) to a file under the site root."""
    page_dir = posixpath.dirname(page_dest_uri) or "."
    return posixpath.relpath(target, page_dir)


def figure_html(images: list[Image], number: int, caption: str | None, alt: str | None, language: str) -> str:
    """Return a ``<figure>`` with every image of one block and one caption."""
    texts = strings_for(language)
    alt_text = alt or caption or texts["default_alt"]
    label = texts["figure"].format(number=number)
    caption_text = f"{label}. {caption}" if caption else label
    lines = ['<figure class="lesson-figure">']
    for image in images:
        lines.append(
            f'<img src="{html.escape(image.src)}" alt="{html.escape(alt_text)}" '
            f'width="{image.width}" height="{image.height}" loading="lazy" decoding="async">'
        )
    lines.append(f"<figcaption>{html.escape(caption_text)}</figcaption>")
    lines.append("</figure>")
    return "\n".join(lines)


def output_html(text: str, language: str) -> str:
    """Return a block's standard output as preformatted text."""
    label = html.escape(strings_for(language)["output"])
    return f'<pre class="lesson-output" aria-label="{label}"><code>{html.escape(text.rstrip())}</code></pre>'


def error_html(traceback_text: str, language: str, expected: bool) -> str:
    """Return an error box (Material's admonition styles) with the traceback."""
    texts = strings_for(language)
    kind, title, role = ("quote", texts["expected_error"], "") if expected else ("failure", texts["failed"], ' role="alert"')
    css = "lesson-expected-error" if expected else "lesson-error"
    return (
        f'<div class="admonition {kind} {css}"{role}>\n'
        f'<p class="admonition-title">{html.escape(title)}</p>\n'
        f"<pre><code>{html.escape(traceback_text)}</code></pre>\n"
        "</div>"
    )


def notice_html(key: str, language: str) -> str:
    """Return a short note in place of a block's output (``skipped`` or ``stale``)."""
    return f'<div class="admonition note lesson-notice"><p>{html.escape(strings_for(language)[key])}</p></div>'
