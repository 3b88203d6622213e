"""Find executable code blocks in a lesson's Markdown and normalise their code.

An executable block is a fenced block whose info string starts with ``python run``::

    ```python run caption="Grad-CAM on the cat" alt="A heatmap over the cat's face" timeout="60"
    ...
    ```

Line numbers are 1-based lines of the Markdown file, front matter included, so messages can name
``content/ko/cnn/03-x.md:LINE``. Fences inside other fences (a Markdown example shown in a
````` ```` ````` block) are not executable, and indented fences (inside lists or admonitions) are.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import token
import tokenize
from dataclasses import dataclass, field

#: Attributes an executable block accepts. ``title`` is passed on to the code block's highlighter.
KNOWN_ATTRIBUTES = frozenset({"caption", "alt", "timeout", "expect-error", "title"})
DEFAULT_TIMEOUT = 300.0

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_ATTRIBUTE = re.compile(
    r"""\s*(?:(?P<name>[^\s="']+)(?:=(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s"']+)))?)?\s*"""
)
_RUN_INFO = re.compile(r"^\s*(?:\{\s*)?\.?(?:python|py)\s+run(?:\s+(?P<attrs>.*?))?\s*\}?\s*$")


class BlockSyntaxError(ValueError):
    """An executable block's fence or attributes are invalid (an author error)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class CodeBlock:
    """One ``python run`` block of a Markdown file.

    ``fence_line`` is the Markdown line of the opening fence and ``end_line`` the line of the closing
    fence (the last line when the fence is never closed). Code line ``i`` (1-based) of the block is
    Markdown line ``fence_line + i``. ``indent`` is the fence's indentation.
    """

    index: int
    fence_line: int
    end_line: int
    indent: str
    code: str
    attributes: dict[str, str | None] = field(default_factory=dict)
    errors: tuple[BlockSyntaxError, ...] = ()

    @property
    def caption(self) -> str | None:
        return self.attributes.get("caption")

    @property
    def alt(self) -> str | None:
        return self.attributes.get("alt")

    @property
    def expect_error(self) -> bool:
        return "expect-error" in self.attributes

    @property
    def timeout(self) -> float:
        value = self.attributes.get("timeout")
        return DEFAULT_TIMEOUT if value is None else float(value)

    def markdown_line(self, code_line: int) -> int:
        """Return the Markdown line of the block's 1-based ``code_line``."""
        return self.fence_line + code_line


def parse_blocks(markdown: str) -> list[CodeBlock]:
    """Return the executable blocks of ``markdown`` in page order.

    Invalid attributes do not raise: the block carries them in ``errors`` so the caller can report
    every problem of a page with its line.
    """
    lines = markdown.splitlines()
    blocks: list[CodeBlock] = []
    line_number = 0
    while line_number < len(lines):
        opening = _FENCE_OPEN.match(lines[line_number])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            line_number += 1
            continue

        # Find the closing fence: same character, at least as long, nothing after it.
        indent = len(opening["indent"].expandtabs(4))
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = line_number + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1

        run_info = _RUN_INFO.match(opening["info"])
        if run_info is not None:
            code_lines = [_dedent_line(line, indent) for line in lines[line_number + 1 : end]]
            attributes, errors = _parse_attributes(run_info["attrs"] or "", line_number + 1)
            blocks.append(
                CodeBlock(
                    index=len(blocks),
                    fence_line=line_number + 1,
                    end_line=min(end, len(lines) - 1) + 1,
                    indent=opening["indent"],
                    code="\n".join(code_lines) + ("\n" if code_lines else ""),
                    attributes=attributes,
                    errors=tuple(errors),
                )
            )
        line_number = end + 1
    return blocks


def strip_run_marker(info: str) -> str:
    """Return a ``python run`` fence info string as a plain ``python`` one, keeping ``title``."""
    run_info = _RUN_INFO.match(info)
    if run_info is None:
        return info
    attributes, _ = _parse_attributes(run_info["attrs"] or "", 0)
    title = attributes.get("title")
    return "python" if not title else f'python title="{title}"'


def normalise_code(code: str) -> str:
    """Return a canonical text of ``code`` with comments and blank lines removed.

    Tokens keep their order and their row among the rows that carry code, so two blocks with the
    same canonical text also have the same statements on corresponding rows (see
    :func:`code_rows`). Indentation width does not matter, only the block structure. Code that does
    not tokenize (a syntax error) falls back to its stripped lines, so the block still gets a key and
    fails when it runs.
    """
    try:
        tokens = _significant_tokens(code)
    except (tokenize.TokenError, SyntaxError):
        kept = [line.rstrip() for line in code.splitlines() if line.strip()]
        return json.dumps(["untokenized", kept], ensure_ascii=False)

    ordinals = {row: ordinal for ordinal, row in enumerate(_covered_rows(tokens))}
    canonical: list[list[object]] = []
    for tok in tokens:
        if tok.type in _STRUCTURE_TOKENS:
            canonical.append([tok.type])
        else:
            canonical.append([ordinals[tok.start[0]], tok.type, tok.string])
    return json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))


def code_rows(code: str) -> list[int]:
    """Return the 1-based rows of ``code`` that carry code, in order.

    Two blocks with equal :func:`normalise_code` have lists of equal length whose ``k``-th rows
    correspond, which maps a traceback line of one block to the other.
    """
    try:
        tokens = _significant_tokens(code)
    except (tokenize.TokenError, SyntaxError):
        return [number for number, line in enumerate(code.splitlines(), 1) if line.strip()]
    return _covered_rows(tokens)


def code_digest(code: str) -> str:
    """Return the sha256 of the normalised ``code``."""
    return hashlib.sha256(normalise_code(code).encode("utf-8")).hexdigest()


_SKIPPED_TOKENS = frozenset({token.COMMENT, token.NL, token.ENCODING, token.ENDMARKER})
_STRUCTURE_TOKENS = frozenset({token.NEWLINE, token.INDENT, token.DEDENT})


def _significant_tokens(code: str) -> list[tokenize.TokenInfo]:
    readline = io.StringIO(code).readline
    return [tok for tok in tokenize.generate_tokens(readline) if tok.type not in _SKIPPED_TOKENS]


def _covered_rows(tokens: list[tokenize.TokenInfo]) -> list[int]:
    # Every row a code token covers, including the inner rows of a multi-line string.
    rows: set[int] = set()
    for tok in tokens:
        if tok.type not in _STRUCTURE_TOKENS:
            rows.update(range(tok.start[0], tok.end[0] + 1))
    return sorted(rows)


def _dedent_line(line: str, indent: int) -> str:
    expanded = line.expandtabs(4)
    removable = len(expanded) - len(expanded.lstrip(" "))
    return expanded[min(indent, removable) :]


def _parse_attributes(text: str, line: int) -> tuple[dict[str, str | None], list[BlockSyntaxError]]:
    attributes: dict[str, str | None] = {}
    errors: list[BlockSyntaxError] = []
    words = []
    position = 0
    while position < len(text):
        match = _ATTRIBUTE.match(text, position)
        if match is None or match.end() == position:
            return attributes, [BlockSyntaxError(line, f"invalid block attributes {text!r}: expected name=\"value\" pairs")]
        position = match.end()
        if match["name"]:
            value = next((group for group in match.group("double", "single", "bare") if group is not None), None)
            words.append(match["name"] if value is None else f"{match['name']}={value}")

    for word in words:
        name, has_value, value = word.partition("=")
        if name not in KNOWN_ATTRIBUTES:
            known = ", ".join(sorted(KNOWN_ATTRIBUTES))
            errors.append(BlockSyntaxError(line, f"unknown block attribute {name!r} (known: {known})"))
            continue
        if name == "expect-error":
            if has_value:
                errors.append(BlockSyntaxError(line, "'expect-error' is a flag and takes no value"))
            attributes[name] = None
            continue
        if not has_value:
            errors.append(BlockSyntaxError(line, f"block attribute {name!r} needs a value: {name}=\"...\""))
            continue
        if name == "timeout" and not _is_positive_number(value):
            errors.append(BlockSyntaxError(line, f"invalid timeout {value!r}: expected a number of seconds > 0"))
            continue
        attributes[name] = value
    return attributes, errors


def _is_positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False
