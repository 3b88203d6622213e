"""Command line: ``python -m figures_pipeline status | run | verify | prune`` (no MkDocs needed).

``status``  list stale blocks and why (code changed, file changed with its path, library version)
``run``     run the stale pages, with a progress bar, ``--jobs N`` and ``--shard K/N``
``verify``  exit with status 1 when the store does not match the content, listing each mismatch
``prune``   remove manifest entries and objects that no current block uses

Exit status: 0 success, 1 stale or failing blocks (``verify``, ``run``), 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from figures_pipeline.pool import WorkerStartError
from figures_pipeline.runner import Engine, FiguresUnavailable, describe_failure


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one command; return the exit status."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    root = Path(arguments.root).resolve()
    content = Path(arguments.content)
    engine = Engine(
        root=root,
        content_dir=content if content.is_absolute() else root / content,
        store_dir=_under(root, arguments.store),
        jobs=getattr(arguments, "jobs", None),
        dpi=arguments.dpi,
    )
    if not engine.content_dir.is_dir():
        print(f"error: content folder not found: {engine.content_dir}", file=sys.stderr)
        return 2
    try:
        return arguments.command(engine, arguments)
    except (FiguresUnavailable, WorkerStartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        engine.close()


def status(engine: Engine, arguments: argparse.Namespace) -> int:
    """Print each stale or failing block with the reason, then a summary line."""
    pages = engine.scan()
    stale = 0
    total = 0
    for page in pages:
        for block_status in engine.resolve(page):
            total += 1
            if block_status.state == "stale":
                stale += 1
                print(f"{page.display}:{block_status.block.fence_line}: stale: {'; '.join(block_status.reasons)}")
    print(f"{stale} of {total} blocks in {len(pages)} pages are stale")
    return 0


def run(engine: Engine, arguments: argparse.Namespace) -> int:
    """Run the stale pages (or one shard of them) and print every failing block's traceback."""
    shard = _parse_shard(arguments.shard) if arguments.shard else None
    bar = _progress_bar(arguments.quiet)
    report = engine.run(shard=shard, progress=bar.update if bar else None)
    if bar:
        bar.close()
    for page, index, failure in report.failures:
        line, traceback_text = describe_failure(page, index, failure.error)
        print(f"{page.display}:{line}: code block failed: {failure.error.get('summary', '')}\n{traceback_text}", file=sys.stderr)
    print(f"ran {len(report.ran)} page(s), {len(report.failures)} failing block(s)")
    return 1 if report.failures else 0


def verify(engine: Engine, arguments: argparse.Namespace) -> int:
    """Exit 1 when a block is stale or the manifest has invalid lines; list each problem."""
    problems = [
        f"{page.display}:{block_status.block.fence_line}: {'; '.join(block_status.reasons)}"
        for page, block_status in engine.stale_blocks(engine.scan())
    ]
    engine.store.entries()
    problems += [f"{engine.store.manifest_path}:{line}: invalid manifest entry" for line in engine.store.invalid_lines]
    for problem in problems:
        print(problem)
    if problems:
        print(f"figure store does not match the content: {len(problems)} problem(s)")
        return 1
    print("figure store matches the content")
    return 0


def prune(engine: Engine, arguments: argparse.Namespace) -> int:
    """Remove entries no current block resolves to, then objects no entry names."""
    pages = engine.scan()
    used = {status.entry.key for page in pages for status in engine.resolve(page) if status.entry is not None}
    unused = [key for key in engine.store.entries() if key not in used]
    if arguments.dry_run:
        print(f"would remove {len(unused)} entr{'y' if len(unused) == 1 else 'ies'}")
        return 0
    removed_entries = engine.store.remove_entries(unused)
    removed_objects = engine.store.remove_unreferenced_objects()
    print(f"removed {removed_entries} entr{'y' if removed_entries == 1 else 'ies'} and {len(removed_objects)} object(s)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m figures_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root (default: current folder)")
    parser.add_argument("--content", default="content", help="lesson folder, relative to the root (default: content)")
    parser.add_argument("--store", default="figure_store", help="figure store folder, relative to the root")
    parser.add_argument("--dpi", type=int, default=150, help="figure resolution; must match the plugin's dpi option")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    command = commands.add_parser("status", help="list stale blocks and why")
    command.set_defaults(command=status)

    command = commands.add_parser("run", help="run stale blocks and store their outputs")
    command.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per CPU)")
    command.add_argument("--shard", metavar="K/N", help="run only the K-th of N parts of the stale pages (1-based)")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(command=run)

    command = commands.add_parser("verify", help="exit 1 if the store does not match the content")
    command.set_defaults(command=verify)

    command = commands.add_parser("prune", help="remove entries and objects no block uses")
    command.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    command.set_defaults(command=prune)
    return parser


def _parse_shard(text: str) -> tuple[int, int]:
    number, _, count = text.partition("/")
    try:
        shard = (int(number), int(count))
    except ValueError:
        raise SystemExit(f"error: invalid --shard {text!r}: expected K/N, for example 1/4") from None
    if not 1 <= shard[0] <= shard[1]:
        raise SystemExit(f"error: invalid --shard {text!r}: K must be between 1 and N")
    return shard


class _Bar:
    """A tqdm bar, shown from the first finished page on, when the number of pages is known."""

    def __init__(self) -> None:
        self.bar = None

    def update(self, display: str, done: int, total: int, ran: bool) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="page", file=sys.stderr, dynamic_ncols=True)
        self.bar.total = total
        self.bar.set_postfix_str(display, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(quiet: bool) -> _Bar | None:
    return None if quiet else _Bar()


def _under(root: Path, folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else root / path
