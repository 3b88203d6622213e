"""Options of the ``lessons`` plugin."""

from mkdocs.config import config_options as c
from mkdocs.config.base import Config


class LessonsConfig(Config):
    enabled = c.Type(bool, default=True)
    """Turn the plugin off: lessons then render as plain pages, unvalidated."""

    catalogue = c.Type(str, default="streams.yml")
    """Path of the stream catalogue, relative to ``docs_dir``."""

    repository = c.Optional(c.URL())
    """Address of the project's repository; without it, and without ``repo_url``, lessons have no
    "report a problem" link."""

    report_url = c.Type(str, default="{repository}/issues/new?title={title}&body={body}")
    """Address of the "report a problem" link: ``{repository}`` is the option above (or
    ``repo_url``), and ``{title}`` and ``{body}`` are filled with the lesson id and the page's
    source path."""

    default_language = c.Type(str, default="ko")
    """Language whose lesson files every lesson must have (the other language may fall back to it)."""
