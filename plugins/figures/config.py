"""Options of the ``figures`` plugin."""

from mkdocs.config import config_options as c
from mkdocs.config.base import Config


class FiguresConfig(Config):
    enabled = c.Type(bool, default=True)
    """Run executable blocks and show their figures. ``FIGURES_ENABLED=false`` in the environment
    also turns the plugin off: code blocks then show as plain code and nothing runs."""

    # Running
    jobs = c.Type(int, default=0)
    """Number of worker processes that run pages in parallel; 0 means one per CPU. The
    ``FIGURES_JOBS`` environment variable overrides it."""

    dpi = c.Type(int, default=150)
    """Resolution figures are saved at; the page shows them at 100 dpi (so 1.5x sharper by default).
    Changing it re-runs every block."""

    # Storage
    store = c.Type(str, default="figure_store")
    """Folder of the committed figure store, relative to the folder of ``mkdocs.yml``."""

    assets_dir = c.Type(str, default="assets/figures")
    """Folder under the site root where figures are copied; both language trees link to it."""
