"""Schemas of lesson front matter and of the stream catalogue, with messages that name file and key."""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
LANGUAGES = ("ko", "en")


class _Strict(BaseModel):
    # Unknown keys and loose types (a number where a string belongs, "3" for 3) are author errors.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Exercise(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)


class Link(_Strict):
    title: str = Field(min_length=1)
    url: HttpUrl

    # Strict mode would reject a plain string for HttpUrl, so the URL alone is parsed leniently.
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class FrontMatter(_Strict):
    """Front matter of one lesson file."""

    id: str = Field(pattern=ID_PATTERN)
    stream: str = Field(pattern=ID_PATTERN)
    number: int = Field(ge=1, le=99)
    title: str = Field(min_length=1)
    minutes: int = Field(ge=1, le=240)
    tags: list[str] = Field(min_length=1)
    status: Literal["published", "draft"]
    exercises: list[Exercise] = []
    links: list[Link] = []


class LocalizedText(_Strict):
    ko: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Stream(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: LocalizedText
    description: LocalizedText
    planned: int = Field(ge=1, le=99)


class Catalogue(_Strict):
    """The stream catalogue: every stream's titles and planned lesson count."""

    streams: list[Stream] = Field(min_length=1)
    # Former lesson ids mapped to current ones, so stored reader progress follows a renamed lesson.
    renamed: dict[str, str] = {}


def describe_errors(error: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(key, message)`` pairs worded for authors."""
    described = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        described.append((key, _message(item, model)))
    return described


def front_matter_key_line(text: str, key: str) -> int:
    """Return the 1-based line of a top-level ``key:`` in the front matter, or 1 if absent."""
    top = key.split(".", 1)[0]
    pattern = re.compile(rf"^{re.escape(top)}\s*:")
    for number, line in enumerate(text.splitlines()[1:], start=2):
        if line.strip() == "---":
            break
        if pattern.match(line):
            return number
    return 1


def _message(item: dict[str, Any], model: type[BaseModel]) -> str:
    kind = item["type"]
    value = item.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (allowed: " + ", ".join(_allowed_keys(model, item["loc"])) + ")"
    if kind in ("int_type", "int_parsing"):
        return f"expected an integer, got {value!r}"
    if kind == "string_type":
        return f"expected a string, got {value!r}"
    if kind == "list_type":
        return f"expected a list, got {value!r}"
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping, got {value!r}"
    if kind == "literal_error":
        return f"expected one of {item['ctx']['expected']}, got {value!r}"
    if kind == "string_pattern_mismatch":
        return f"{value!r} is not a valid id (lowercase letters, digits and single hyphens)"
    return f"{item['msg']}, got {value!r}"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    # Walk from the root model down to the mapping that contains the unknown key.
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        nested = [arg for arg in get_args(annotation) if isinstance(arg, type)] or [annotation]
        if isinstance(nested[0], type) and issubclass(nested[0], BaseModel):
            model = nested[0]
    return list(model.model_fields)
