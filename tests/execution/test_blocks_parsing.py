"""Parsing ``python run`` blocks and normalising their code."""

from __future__ import annotations

from figures_pipeline.blocks import code_rows, normalise_code, parse_blocks, strip_run_marker

PAGE = '''---
title: x
---
Text.

```python run caption="A cat" alt='the cat' timeout="5"
import math  # comment
x = 1
```

````markdown
```python run
not executed
```
````

- A list item:

    ```python run expect-error colour="red"
    raise ValueError("x")
    ```
'''


def test_blocks_found_with_markdown_lines():
    blocks = parse_blocks(PAGE)
    assert [block.fence_line for block in blocks] == [6, 19]
    assert [block.end_line for block in blocks] == [9, 21]
    assert blocks[0].code == "import math  # comment\nx = 1\n"
    assert blocks[0].markdown_line(2) == 8


def test_block_attributes():
    first, second = parse_blocks(PAGE)
    assert first.caption == "A cat"
    assert first.alt == "the cat"
    assert first.timeout == 5.0
    assert not first.expect_error
    assert second.expect_error
    assert second.timeout == 300.0
    assert second.code == 'raise ValueError("x")\n'


def test_unknown_attribute_is_error():
    second = parse_blocks(PAGE)[1]
    assert len(second.errors) == 1
    assert "unknown block attribute 'colour'" in second.errors[0].message
    assert second.errors[0].line == 19


def test_invalid_timeout_is_error():
    block = parse_blocks('```python run timeout="soon"\nx = 1\n```\n')[0]
    assert "invalid timeout 'soon'" in block.errors[0].message
    assert block.timeout == 300.0


def test_comments_and_blank_lines_ignored():
    korean = "# 한국어 주석\nx = 1\n\ny = '''a\n\nb'''  # 끝\n"
    english = "x = 1   # English comment\ny = '''a\n\nb'''\n"
    assert normalise_code(korean) == normalise_code(english)
    assert code_rows(korean) == [2, 4, 5, 6]
    assert code_rows(english) == [1, 2, 3, 4]


def test_code_changes_change_normalised_text():
    assert normalise_code("x = 1\n") != normalise_code("x = 2\n")
    assert normalise_code("s = '# not a comment'\n") != normalise_code("s = ''\n")
    assert normalise_code("if a:\n    b()\nc()\n") != normalise_code("if a:\n    b()\n    c()\n")


def test_run_marker_stripped_from_fence():
    assert strip_run_marker(' python run caption="x" expect-error') == "python"
    assert strip_run_marker('python run title="Grad-CAM"') == 'python title="Grad-CAM"'
    assert strip_run_marker("python") == "python"


def test_unbalanced_quote_is_error():
    block = parse_blocks('```python run caption="unclosed\nx = 1\n```\n')[0]
    assert block.errors[0].message.startswith("invalid block attributes")
    assert block.attributes == {}
