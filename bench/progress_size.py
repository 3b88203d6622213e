"""Print the gzipped size of the reader-progress script and styles, against the 10 KiB budget.

Usage: python bench/progress_size.py  (exits 1 when the files as served exceed the budget)
The site serves these files minified by mkdocs-minify-plugin (jsmin and csscompressor). Each file
is gzipped on its own at level 9, as a static host would serve it.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

from csscompressor import compress as minify_css
from jsmin import jsmin as minify_js

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    "site_theme/assets/javascripts/progress/core.js",
    "site_theme/assets/javascripts/progress/progress.js",
    "site_theme/assets/stylesheets/progress.css",
]
BUDGET_BYTES = 10 * 1024


def main() -> int:
    source_total = 0
    served_total = 0
    for name in FILES:
        text = (ROOT / name).read_text(encoding="utf-8")
        minified = minify_css(text) if name.endswith(".css") else minify_js(text)
        source = _gzipped(text)
        served = _gzipped(minified)
        source_total += source
        served_total += served
        print(f"{name}: {len(text.encode())} bytes, {source} gzipped; minified {len(minified.encode())}, {served} gzipped")
    print(f"source total: {source_total} bytes gzipped")
    print(f"served total: {served_total} bytes gzipped of {BUDGET_BYTES} ({served_total / 1024:.2f} KiB)")
    return 0 if served_total <= BUDGET_BYTES else 1


def _gzipped(text: str) -> int:
    return len(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


if __name__ == "__main__":
    sys.exit(main())
