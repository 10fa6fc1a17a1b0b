"""List the model zoo: ``python -m swinir_app.models [--weights-dir DIR]``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .cli import Parser, add_debug, add_weights_dir, one_line_errors
from .errors import UserError
from .zoo import ZooEntry, all_entries, cache_problem, is_cached, param_count, weights_home

COLUMNS = ("name", "task", "scale", "params", "cached", "file")


def format_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e6:.2f}M"


def _cached(e: ZooEntry, weights_dir: Optional[Path], problems: Optional[List[str]]) -> str:
    if e.path:
        return "bundled"
    if not is_cached(e, weights_dir):
        return "by hand" if e.manual else "no"
    problem = cache_problem(e, weights_dir)  # a file that is there but does not load is not "cached"
    if problem is None:
        return "yes"
    if problems is not None:
        problems.append(problem)
    return "unusable"


def rows(entries: Sequence[ZooEntry], weights_dir: Optional[Path] = None,
         problems: Optional[List[str]] = None) -> List[tuple]:
    """One row per entry; why each "unusable" cached file fails to load is appended to ``problems``."""
    return [(e.name, e.task, f"x{e.scale}", format_params(param_count(e.config)), _cached(e, weights_dir, problems),
             e.filename)
            for e in entries]


def table(data: Sequence[tuple], columns: Sequence[str] = COLUMNS) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    lines = [tuple(columns), *data]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(columns))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m swinir_app.models",
                    description="List the model zoo (SwinIR, Swin2SR, HAT and the bundled models).")
    add_weights_dir(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    problems: List[str] = []
    with one_line_errors(args.debug, (UserError, OSError)):
        data = rows(all_entries(), args.weights_dir, problems)
    print(table(data))
    print(f"\ncache: {weights_home(args.weights_dir)}")
    pages = sorted({e.by_hand for e in all_entries() if e.manual})
    for page in pages:
        print(f"by hand: place the file in the cache folder under its name above; get it from {page}")
    for problem in problems:
        print(f"unusable: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
