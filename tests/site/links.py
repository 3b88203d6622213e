"""A link checker for a built site: every internal link, anchor and image must resolve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup

ATTRIBUTES = (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"), ("source", "src"))


@dataclass(frozen=True)
class BrokenLink:
    page: str
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: {self.target}: {self.reason}"


def check_site(site: Path, base_path: str = "/") -> tuple[int, list[BrokenLink]]:
    """Return how many internal links were checked and which of them are broken.

    ``base_path`` is the path of ``site_url``. A root-absolute link is broken everywhere except in
    404.html (a server shows that page at any address, so Material links its assets absolutely).
    """
    ids_cache: dict[Path, set[str]] = {}
    broken: list[BrokenLink] = []
    checked = 0
    for page in sorted(site.rglob("*.html")):
        relative_page = page.relative_to(site).as_posix()
        soup = _parse(page)
        for tag, attribute in ATTRIBUTES:
            for element in soup.find_all(tag):
                target = element.get(attribute)
                if not target or _is_external(target):
                    continue
                checked += 1
                problem = _resolve(site, page, target, base_path, ids_cache)
                if problem:
                    broken.append(BrokenLink(relative_page, target, problem))
    return checked, broken


def _resolve(site: Path, page: Path, target: str, base_path: str, ids_cache) -> str | None:
    parts = urlsplit(target)
    path = unquote(parts.path)
    if path.startswith("/"):
        if page.name != "404.html" or page.parent != site:
            return "root-absolute link (breaks when the site is served under another path)"
        if not path.startswith(base_path):
            return f"outside the site's base path {base_path}"
        resolved = site / path[len(base_path):]
    elif path == "":
        resolved = page
    else:
        resolved = (page.parent / path).resolve()
    if resolved.is_dir() or path.endswith("/"):
        resolved = resolved / "index.html"
    if not resolved.is_file():
        return "target not found"
    if parts.fragment and resolved.suffix == ".html":
        ids = ids_cache.get(resolved)
        if ids is None:
            ids = {element["id"] for element in _parse(resolved).find_all(id=True)}
            ids_cache[resolved] = ids
        if unquote(parts.fragment) not in ids:
            return f"anchor #{unquote(parts.fragment)} not found"
    return None


def _is_external(target: str) -> bool:
    scheme = urlsplit(target).scheme
    return bool(scheme) or target.startswith("//")


def _parse(page: Path) -> BeautifulSoup:
    return BeautifulSoup(page.read_text(encoding="utf-8"), "lxml")
