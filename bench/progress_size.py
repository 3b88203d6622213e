"""Print the gzipped size of the reader-progress script and styles, against the 10 KiB budget.

Usage: python bench/progress_size.py  (exits 1 when the files together exceed the budget)
Each file is gzipped on its own at level 9, as a static host would serve it.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    "site_theme/assets/javascripts/progress/core.js",
    "site_theme/assets/javascripts/progress/progress.js",
    "site_theme/assets/stylesheets/progress.css",
]
BUDGET_BYTES = 10 * 1024


def main() -> int:
    total = 0
    for name in FILES:
        data = (ROOT / name).read_bytes()
        size = len(gzip.compress(data, compresslevel=9, mtime=0))
        total += size
        print(f"{name}: {len(data)} bytes, {size} gzipped")
    print(f"total: {total} bytes gzipped of {BUDGET_BYTES} ({total / 1024:.2f} KiB)")
    return 0 if total <= BUDGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
