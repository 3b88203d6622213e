"""Read and check the stream catalogue and every lesson's front matter.

Nothing here depends on a particular build: :func:`scan` reads the whole ``docs_dir`` (both language
trees) and returns the site index with every author error found, each naming the file, line and key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mkdocs.utils.meta import get_data
from pydantic import ValidationError

from .schema import LANGUAGES, Catalogue, FrontMatter, describe_errors, front_matter_key_line

LESSON_PATH = re.compile(r"^(?P<lang>[a-z]{2})/(?P<stream>[^/]+)/(?P<number>\d{2})-(?P<slug>[a-z0-9-]+)\.md$")
STREAM_FOLDER_FILE = re.compile(r"^(?P<lang>[a-z]{2})/(?P<stream>[^/]+)/(?P<name>[^/]+\.md)$")


@dataclass(frozen=True)
class AuthorError:
    """One mistake in the content, located as ``path:line`` with the offending key."""

    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: key '{self.key}': {self.message}" if self.key else f"{where}: {self.message}"


@dataclass(frozen=True)
class Lesson:
    """One lesson in one language."""

    src_uri: str  # relative to docs_dir, e.g. "ko/cnn/03-cnn-intuition.md"
    lang: str
    meta: FrontMatter
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, 1)

    @property
    def path_in_language(self) -> str:
        return self.src_uri.split("/", 1)[1]


@dataclass
class SiteIndex:
    catalogue: Catalogue
    # lessons[lang][path_in_language] -> Lesson, published lessons only
    lessons: dict[str, dict[str, Lesson]] = field(default_factory=dict)
    # src_uris of files that must not be published (drafts, invalid lessons, orphan translations)
    excluded: set[str] = field(default_factory=set)
    errors: list[AuthorError] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def stream(self, stream_id: str):
        return next(stream for stream in self.catalogue.streams if stream.id == stream_id)

    def stream_lessons(self, lang: str, stream_id: str) -> list[Lesson]:
        found = [lesson for lesson in self.lessons.get(lang, {}).values() if lesson.meta.stream == stream_id]
        return sorted(found, key=lambda lesson: lesson.meta.number)


class CatalogueError(Exception):
    """The stream catalogue is missing or invalid: the site cannot be built at all."""


def load_catalogue(path: Path, shown_path: str) -> Catalogue:
    if not path.is_file():
        raise CatalogueError(f"{shown_path}: stream catalogue not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogueError(f"{shown_path}: invalid YAML: {error}") from error
    try:
        return Catalogue.model_validate(data)
    except ValidationError as error:
        text = path.read_text(encoding="utf-8")
        problems = [
            f"{shown_path}:{_yaml_key_line(text, key)}: key '{key}': {message}"
            for key, message in describe_errors(error, Catalogue)
        ]
        raise CatalogueError("invalid stream catalogue:\n  " + "\n  ".join(problems)) from error


def scan(docs_dir: Path, catalogue: Catalogue, shown_prefix: str, default_language: str) -> SiteIndex:
    """Validate every lesson file under ``docs_dir`` and index the published ones."""
    index = SiteIndex(catalogue=catalogue, lessons={lang: {} for lang in LANGUAGES})
    stream_ids = {stream.id for stream in catalogue.streams}

    for path in sorted(docs_dir.rglob("*.md")):
        src_uri = path.relative_to(docs_dir).as_posix()
        shown = f"{shown_prefix}{src_uri}"
        match = LESSON_PATH.match(src_uri)
        if match is None:
            _check_misnamed(src_uri, shown, stream_ids, index)
            continue
        lesson = _read_lesson(path, src_uri, shown, match, stream_ids, index)
        if lesson is None:
            index.excluded.add(src_uri)
        elif lesson.meta.status == "draft":
            index.excluded.add(src_uri)
        else:
            index.lessons[lesson.lang][lesson.path_in_language] = lesson

    _check_unique(index, shown_prefix)
    _apply_fallback_policy(index, shown_prefix, default_language)
    return index


def _read_lesson(path, src_uri, shown, match, stream_ids, index) -> Lesson | None:
    lang = match["lang"]
    if lang not in LANGUAGES:
        index.errors.append(AuthorError(shown, 1, "", f"unknown language folder '{lang}' (expected one of {', '.join(LANGUAGES)})"))
        return None

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        index.errors.append(AuthorError(shown, 1, "", "lesson has no front matter (it must start with a '---' block)"))
        return None
    try:
        _, data = get_data(text)
    except Exception as error:  # mkdocs reports YAML errors as several exception types
        index.errors.append(AuthorError(shown, 1, "", f"invalid front matter: {error}"))
        return None
    if not data:
        index.errors.append(AuthorError(shown, 1, "", "front matter is empty or not valid YAML"))
        return None

    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as error:
        for key, message in describe_errors(error, FrontMatter):
            index.errors.append(AuthorError(shown, front_matter_key_line(text, key), key, message))
        return None

    problems = []
    if meta.stream not in stream_ids:
        problems.append(("stream", f"unknown stream '{meta.stream}' (the catalogue lists: {', '.join(sorted(stream_ids))})"))
    elif meta.stream != match["stream"]:
        problems.append(("stream", f"'{meta.stream}' does not match the folder '{match['stream']}'"))
    if meta.number != int(match["number"]):
        problems.append(("number", f"{meta.number} does not match the file name prefix '{match['number']}'"))
    for key, message in problems:
        index.errors.append(AuthorError(shown, front_matter_key_line(text, key), key, message))
    if problems:
        return None
    key_lines = {key: front_matter_key_line(text, key) for key in FrontMatter.model_fields}
    return Lesson(src_uri=src_uri, lang=lang, meta=meta, key_lines=key_lines)


def _check_misnamed(src_uri, shown, stream_ids, index) -> None:
    match = STREAM_FOLDER_FILE.match(src_uri)
    if match and match["stream"] in stream_ids and match["name"] not in ("index.md",):
        index.errors.append(
            AuthorError(shown, 1, "", "file in a stream folder does not match '<NN>-<slug>.md' (two digits, a hyphen, lowercase slug)")
        )


def _check_unique(index: SiteIndex, shown_prefix: str) -> None:
    for lang, lessons in index.lessons.items():
        seen_ids: dict[str, Lesson] = {}
        seen_numbers: dict[tuple[str, int], Lesson] = {}
        for lesson in sorted(lessons.values(), key=lambda item: item.src_uri):
            other = seen_ids.setdefault(lesson.meta.id, lesson)
            if other is not lesson:
                index.errors.append(_duplicate(lesson, other, "id", lesson.meta.id, shown_prefix))
            other = seen_numbers.setdefault((lesson.meta.stream, lesson.meta.number), lesson)
            if other is not lesson:
                index.errors.append(_duplicate(lesson, other, "number", lesson.meta.number, shown_prefix))

    # A lesson whose id or number clashes is left out, so no two pages claim one identity.
    clashing = {error.path for error in index.errors if error.key in ("id", "number")}
    for lang, lessons in index.lessons.items():
        for path_in_language, lesson in list(lessons.items()):
            if f"{shown_prefix}{lesson.src_uri}" in clashing:
                del lessons[path_in_language]
                index.excluded.add(lesson.src_uri)


def _duplicate(lesson: Lesson, other: Lesson, key: str, value, shown_prefix: str) -> AuthorError:
    return AuthorError(
        f"{shown_prefix}{lesson.src_uri}",
        lesson.line_of(key),
        key,
        f"duplicate {key} {value!r}: {shown_prefix}{other.src_uri} uses it too",
    )


def _apply_fallback_policy(index: SiteIndex, shown_prefix: str, default_language: str) -> None:
    """Keep every language's set of lessons switchable.

    A lesson missing in another language falls back to the default language's text (mkdocs-static-i18n
    copies it there, and the page shows a note that it is untranslated). A lesson without a default-language version
    would have no page to switch to, so it is an author error and is left out. Translations must carry
    the same id, number and exercises as their default-language version.
    """
    default = index.lessons[default_language]
    for lang, lessons in index.lessons.items():
        if lang == default_language:
            continue
        for path_in_language, lesson in list(lessons.items()):
            original = default.get(path_in_language)
            shown = f"{shown_prefix}{lesson.src_uri}"
            if original is None:
                default_path = f"{default_language}/{path_in_language}"
                if default_path in index.excluded:
                    problem = f"its {default_language} version {shown_prefix}{default_path} is a draft or has errors"
                else:
                    problem = f"lesson has no {default_language} version at {shown_prefix}{default_path}"
                index.errors.append(AuthorError(shown, 1, "", f"{problem}; it is left out of the site"))
                del lessons[path_in_language]
                index.excluded.add(lesson.src_uri)
                continue
            for key in ("id", "number", "stream"):
                if getattr(lesson.meta, key) != getattr(original.meta, key):
                    index.errors.append(
                        AuthorError(shown, lesson.line_of(key), key, f"{getattr(lesson.meta, key)!r} differs from {getattr(original.meta, key)!r} in {shown_prefix}{original.src_uri}")
                    )
            if [item.id for item in lesson.meta.exercises] != [item.id for item in original.meta.exercises]:
                index.errors.append(AuthorError(shown, lesson.line_of("exercises"), "exercises", f"exercise ids differ from those in {shown_prefix}{original.src_uri}"))
        for path_in_language, original in default.items():
            if path_in_language not in lessons:
                index.notices.append(f"{shown_prefix}{original.src_uri}: no {lang} translation; the {lang} site shows the {default_language} text")


def _yaml_key_line(text: str, key: str) -> int:
    """Return the first line that sets the innermost named part of ``key`` (e.g. ``planned``), or 1."""
    names = [part for part in key.split(".") if not part.isdigit()]
    if not names:
        return 1
    pattern = re.compile(rf"^\s*-?\s*{re.escape(names[-1])}\s*:")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1
