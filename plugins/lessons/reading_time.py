"""Estimate a lesson's reading time from its Markdown, to check the ``minutes`` an author gives.

The rule: prose reads at 200 English words a minute, or 500 Korean characters (spaces not counted)
a minute. Code reads at 15 lines a minute, and each figure a ``python run`` block draws adds half a
minute of study.
A lesson's ``minutes`` must lie within 25 % of the estimate (at least 2 minutes either way).
"""

from __future__ import annotations

import re

ENGLISH_WORDS_PER_MINUTE = 200
KOREAN_CHARACTERS_PER_MINUTE = 500
CODE_LINES_PER_MINUTE = 15
MINUTES_PER_FIGURE = 0.5
TOLERANCE = 0.25

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def estimate_minutes(markdown: str, language: str, figures: int) -> float:
    """Return the estimated reading time in minutes of a lesson body (front matter removed)."""
    prose_lines, code_lines = _split_prose_and_code(markdown)
    prose = _strip_markup("\n".join(prose_lines))
    if language == "ko":
        characters = len(re.sub(r"\s", "", prose))
        prose_minutes = characters / KOREAN_CHARACTERS_PER_MINUTE
    else:
        prose_minutes = len(prose.split()) / ENGLISH_WORDS_PER_MINUTE
    return prose_minutes + code_lines / CODE_LINES_PER_MINUTE + figures * MINUTES_PER_FIGURE


def is_consistent(stated: int, estimate: float) -> bool:
    allowed = max(2.0, TOLERANCE * estimate)
    return abs(stated - estimate) <= allowed


def strip_front_matter(text: str) -> str:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4 :]
    return text


def _split_prose_and_code(markdown: str) -> tuple[list[str], int]:
    prose: list[str] = []
    code_lines = 0
    fence: str | None = None
    for line in markdown.splitlines():
        match = _FENCE.match(line.strip())
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            elif line.strip():
                code_lines += 1
            continue
        prose.append(line)
    return prose, code_lines


def _strip_markup(text: str) -> str:
    text = re.sub(r"<[^>]+>", " ", text)  # inline HTML
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"[#>*_`|\[\]!-]", " ", text)
    return text
