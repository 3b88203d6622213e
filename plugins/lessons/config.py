"""Options of the ``lessons`` plugin."""

from mkdocs.config import config_options as c
from mkdocs.config.base import Config


class LessonsConfig(Config):
    enabled = c.Type(bool, default=True)
    """Turn the plugin off: lessons then render as plain pages, unvalidated."""

    catalogue = c.Type(str, default="streams.yml")
    """Path of the stream catalogue, relative to ``docs_dir``."""

    report_url = c.Type(str, default="{repo_url}/issues/new?title={title}&body={body}")
    """Address of the "report a problem" link; ``{repo_url}`` comes from ``mkdocs.yml``, and
    ``{title}`` and ``{body}`` are filled with the lesson id and the page's source path."""

    default_language = c.Type(str, default="ko")
    """Language whose lesson files every lesson must have (the other language may fall back to it)."""
