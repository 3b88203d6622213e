"""The ``lessons`` plugin: validate lesson front matter and give templates each lesson's place.

It reads the stream catalogue and every lesson of both language trees once per build of the default
language. Author mistakes become warnings that name ``path:line`` and the key, so ``mkdocs build
--strict`` fails; a missing or invalid catalogue is a ``PluginError``. Templates receive a
``lesson_site`` mapping (see :func:`_page_context`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

from markupsafe import Markup, escape
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from .catalogue import CatalogueError, Lesson, SiteIndex, load_catalogue, scan
from .config import LessonsConfig
from .strings import LANGUAGE_NAMES, STRINGS

log = logging.getLogger("mkdocs.plugins.lessons")

# XP values the reader's progress script derives everything from; they travel in each page's manifest.
XP_RULES = {"lesson": 30, "exercise": 10, "all_exercises_bonus": 10}
MANIFEST_VERSION = 1


class LessonsPlugin(BasePlugin[LessonsConfig]):
    def __init__(self) -> None:
        self.index: SiteIndex | None = None
        # urls[lang][path_in_language] -> page url, for the build of that language
        self.urls: dict[str, dict[str, str]] = {}

    @event_priority(-150)
    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        """Scan the content once per build of the default language (each language build calls this).

        Runs after mkdocs-static-i18n has chosen the build's language, and sets Material's
        ``theme.language`` to it (``<html lang>``, Material's own labels), which that plugin only
        does when it also manages the language switcher.
        """
        if not self.config.enabled:
            return None
        language = _build_language(config)
        if "language" in config.theme:
            config.theme["language"] = language
        if self.index is None or language == self.config.default_language:
            self.index = self._scan(config)
        return config

    @event_priority(50)
    def on_files(self, files: Files, config: MkDocsConfig) -> Files | None:
        """Drop drafts, invalid lessons and the catalogue before mkdocs-static-i18n sorts the files."""
        if not self.config.enabled or self.index is None:
            return None
        dropped = set(self.index.excluded) | {self.config.catalogue}
        for file in list(files):
            if file.src_uri in dropped:
                files.remove(file)
        return files

    @event_priority(-200)
    def on_nav(self, nav, config: MkDocsConfig, files: Files):
        """Record each page's URL in this language build, for previous/next and listing links."""
        if not self.config.enabled:
            return None
        language = _build_language(config)
        self.urls[language] = {
            getattr(file, "norm_src_uri", file.src_uri): file.url for file in files.documentation_pages()
        }
        if self.index is not None:
            _title_stream_sections(nav.items, self.index, language)
        return nav

    def on_page_markdown(self, markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str | None:
        """Escape the lesson title, so HTML in front matter is shown as text everywhere it appears."""
        if not self.config.enabled:
            return None
        lesson = self._lesson_of(page)
        if lesson is None:
            return None
        title = escape(lesson.meta.title)
        page.meta["title"] = title
        page.title = title
        # Material reads a page's "status" as its own nav badge (new, deprecated); ours means
        # published or draft and is shown in the lesson header instead.
        page.meta.pop("status", None)
        return markdown

    @event_priority(-200)
    def on_page_context(self, context, page: Page, config: MkDocsConfig, nav):
        """Give templates the lesson header, listings and the progress manifest; fix the switcher links."""
        if not self.config.enabled or self.index is None:
            return context
        context["lesson_site"] = self._page_context(page, config)
        config.extra["alternate"] = _alternate_links(page, self.config.default_language)
        context["lesson_site"]["alternates"] = config.extra["alternate"]
        return context

    # ------------------------------------------------------------------------------------------------

    def _scan(self, config: MkDocsConfig) -> SiteIndex:
        docs_dir = Path(config.docs_dir)
        shown_prefix = _shown_prefix(config)
        catalogue_path = docs_dir / self.config.catalogue
        try:
            catalogue = load_catalogue(catalogue_path, f"{shown_prefix}{self.config.catalogue}")
        except CatalogueError as error:
            raise PluginError(str(error)) from error

        index = scan(docs_dir, catalogue, shown_prefix, self.config.default_language)
        for error in index.errors:
            log.warning(str(error))
        for notice in index.notices:
            log.info(notice)
        return index

    def _lesson_of(self, page: Page) -> Lesson | None:
        if self.index is None:
            return None
        source_language = getattr(page.file, "locale", self.config.default_language)
        path = getattr(page.file, "norm_src_uri", page.file.src_uri)
        return self.index.lessons.get(source_language, {}).get(path)

    def _page_context(self, page: Page, config: MkDocsConfig) -> dict:
        assert self.index is not None
        language = _build_language(config)
        strings = STRINGS[language]
        urls = self.urls.get(language, {})
        lesson = self._lesson_of(page)
        path = getattr(page.file, "norm_src_uri", page.file.src_uri)

        context: dict = {
            "language": language,
            "strings": strings,
            "streams": [self._stream_summary(stream.id, language, urls) for stream in self.index.catalogue.streams],
            "manifest_json": Markup(_script_safe_json(self._manifest(language, urls, lesson))),
            "lesson": None,
            "stream": None,
            "is_home": path == "index.md",
        }

        stream_id = lesson.meta.stream if lesson else _stream_of_index(path, self.index)
        if stream_id is not None:
            context["stream"] = self._stream_summary(stream_id, language, urls)

        if lesson is not None:
            context["lesson"] = self._lesson_context(lesson, page, language, urls, config)
        return context

    def _stream_summary(self, stream_id: str, language: str, urls: dict[str, str]) -> dict:
        assert self.index is not None
        stream = self.index.stream(stream_id)
        lessons = [
            {
                "id": lesson.meta.id,
                "number": lesson.meta.number,
                "title": lesson.meta.title,
                "minutes": lesson.meta.minutes,
                "tags": lesson.meta.tags,
                "url": urls.get(lesson.path_in_language),
            }
            for lesson in self._lessons_shown(language, stream_id)
        ]
        return {
            "id": stream.id,
            "title": getattr(stream.title, language),
            "description": getattr(stream.description, language),
            "planned": stream.planned,
            "lessons": lessons,
            "url": urls.get(f"{stream.id}/index.md"),
        }

    def _lessons_shown(self, language: str, stream_id: str) -> list[Lesson]:
        """Lessons of a stream as the ``language`` site shows them, untranslated ones in the default language."""
        assert self.index is not None
        shown = {lesson.path_in_language: lesson for lesson in self.index.stream_lessons(self.config.default_language, stream_id)}
        for lesson in self.index.stream_lessons(language, stream_id):
            shown[lesson.path_in_language] = lesson
        return sorted(shown.values(), key=lambda lesson: lesson.meta.number)

    def _lesson_context(self, lesson: Lesson, page: Page, language: str, urls: dict[str, str], config: MkDocsConfig) -> dict:
        assert self.index is not None
        stream = self.index.stream(lesson.meta.stream)
        siblings = self._lessons_shown(language, lesson.meta.stream)
        position = next(i for i, item in enumerate(siblings) if item.meta.id == lesson.meta.id)
        previous = siblings[position - 1] if position > 0 else None
        following = siblings[position + 1] if position + 1 < len(siblings) else None

        def link(item: Lesson | None):
            if item is None:
                return None
            return {"number": item.meta.number, "title": item.meta.title, "url": urls.get(item.path_in_language)}

        return {
            "id": lesson.meta.id,
            "number": lesson.meta.number,
            "planned": stream.planned,
            "status": lesson.meta.status,
            "title": lesson.meta.title,
            "minutes": lesson.meta.minutes,
            "tags": lesson.meta.tags,
            "exercises": [{"id": item.id, "title": item.title} for item in lesson.meta.exercises],
            "links": [{"title": item.title, "url": str(item.url)} for item in lesson.meta.links],
            "previous": link(previous),
            "next": link(following),
            "untranslated": lesson.lang != language,
            "text_language": lesson.lang,
            "report_url": self._report_url(lesson, config),
        }

    def _report_url(self, lesson: Lesson, config: MkDocsConfig) -> str | None:
        repository = self.config.repository or config.repo_url
        if not repository:
            return None
        source = f"{_shown_prefix(config)}{lesson.src_uri}"
        return self.config.report_url.format(
            repository=repository.rstrip("/"),
            title=quote(f"[{lesson.meta.id}] ", safe=""),
            body=quote(f"Page: {source}\n\n", safe=""),
        )

    def _manifest(self, language: str, urls: dict[str, str], current: Lesson | None) -> dict:
        """Ids and XP values the progress script needs; the same ids in every language."""
        assert self.index is not None
        streams = []
        lessons = {}
        for stream in self.index.catalogue.streams:
            shown = self._lessons_shown(language, stream.id)
            streams.append({"id": stream.id, "title": getattr(stream.title, language), "planned": stream.planned, "lessons": [item.meta.id for item in shown]})
            for item in shown:
                lessons[item.meta.id] = {
                    "stream": stream.id,
                    "number": item.meta.number,
                    "title": item.meta.title,
                    "url": urls.get(item.path_in_language),
                    "exercises": [exercise.id for exercise in item.meta.exercises],
                }
        return {
            "version": MANIFEST_VERSION,
            "language": language,
            "streams": streams,
            "lessons": lessons,
            "xp": XP_RULES,
            "aliases": dict(self.index.catalogue.renamed),
            "page": {"lesson": current.meta.id if current else None},
        }


def _build_language(config: MkDocsConfig) -> str:
    """Language of the running build: mkdocs-static-i18n builds each language in turn."""
    i18n = config.plugins.get("i18n")
    language = getattr(i18n, "current_language", None)
    return language or config.theme.get("language") or "ko"


def _shown_prefix(config: MkDocsConfig) -> str:
    """Prefix that turns a docs-relative path into one relative to the project (``content/``)."""
    docs_dir = Path(config.docs_dir)
    project_dir = Path(config.config_file_path).parent if config.config_file_path else docs_dir.parent
    try:
        return docs_dir.relative_to(project_dir).as_posix() + "/"
    except ValueError:
        return docs_dir.as_posix() + "/"


def _title_stream_sections(items, index: SiteIndex, language: str) -> None:
    """Name each stream's nav section by the stream's title instead of its folder name."""
    for item in items:
        if not getattr(item, "is_section", False):
            continue
        for child in item.children:
            file = getattr(child, "file", None)
            stream_id = _stream_of_index(getattr(file, "norm_src_uri", ""), index) if file else None
            if stream_id is not None:
                item.title = getattr(index.stream(stream_id).title, language)
        _title_stream_sections(item.children, index, language)


def _stream_of_index(path: str, index: SiteIndex) -> str | None:
    parts = path.split("/")
    if len(parts) == 2 and parts[1] == "index.md" and parts[0] in {stream.id for stream in index.catalogue.streams}:
        return parts[0]
    return None


def _script_safe_json(data: dict) -> str:
    # "</script>" or "<!--" inside a title must not end the <script> element that carries the JSON.
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _alternate_links(page: Page, default_language: str) -> list[dict[str, str]]:
    """Links of the language switcher: the same page in each language, else that language's home.

    The links are site-relative, so templates turn them into page-relative ones with the ``url``
    filter and the site works under any sub-path (mkdocs-static-i18n's own links are root-absolute).
    """
    alternates = getattr(page.file, "alternates", {})
    links = []
    for language, name in LANGUAGE_NAMES.items():
        file = alternates.get(language)
        home = "./" if language == default_language else f"{language}/"
        links.append({"name": name, "lang": language, "link": file.url if file is not None else home})
    return links
