"""Entry point of ``python -m figures_pipeline``; see :mod:`figures_pipeline.cli`."""

import sys

from figures_pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
