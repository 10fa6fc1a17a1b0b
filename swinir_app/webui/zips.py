"""Batch uploads: the images of a request, from plain files and zip files checked before anything is
inflated, and the names their results take in the result zip. No gradio here.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from .jobs import WebError, one_line
from ..engine import human_size
from .settings import AppConfig

MAX_ZIP_MEMBERS = 1_000


def list_images(config: AppConfig, paths: Sequence[str], errors: List[str], opened: List[zipfile.ZipFile],
                skipped: Optional[List[str]] = None) -> Iterator[Tuple[str, Callable[[], object]]]:
    """(name, source) for every image: plain files, and the members of zip files (left open in ``opened``).

    Zip files are checked before anything is inflated: at most :data:`MAX_ZIP_MEMBERS` files, no two
    entries sharing their bytes (a bomb of overlapping entries), each within the upload limit and
    all of a request within ``max_batch_size`` uncompressed. Every file left out gets a line.
    """
    budget = config.max_batch_size
    for p in paths:
        path = Path(p)
        if path.suffix.lower() != ".zip":
            budget -= path.stat().st_size if path.is_file() else 0
            yield _printable(path.name), (lambda path=path: path)
            continue
        try:
            zf = zipfile.ZipFile(path)
            members = [m for m in zf.infolist() if not m.is_dir()]
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            errors.append(f"{path.name}: not a valid zip file ({one_line(e)})")
            continue
        opened.append(zf)
        problem = zip_problem(members)
        if problem:
            errors.append(f"{path.name}: refused: {problem}")
            continue
        hidden = [m for m in members if any(part.startswith((".", "__MACOSX"))
                                            for part in PurePosixPath(m.filename).parts)]
        if hidden:
            (errors if skipped is None else skipped).append(
                f"{path.name}: skipped {len(hidden)} hidden file{'s' if len(hidden) > 1 else ''} "
                          f"(names starting with '.' or __MACOSX): "
                          + ", ".join(_printable(m.filename) for m in hidden[:3]) + (", ..." if len(hidden) > 3
                                                                                     else ""))
        for m in members:
            if m in hidden:
                continue
            name = f"{path.stem}/{_printable(m.filename)}"
            if m.file_size > config.max_file_size:  # a zip bomb is refused before it is inflated
                errors.append(f"{name}: {human_size(m.file_size)} uncompressed exceeds the upload limit "
                              f"of {human_size(config.max_file_size)}")
                continue
            if m.file_size > budget:
                errors.append(f"{name}: skipped: the images of one batch may take "
                              f"{human_size(config.max_batch_size)} uncompressed in all")
                continue
            budget -= m.file_size

            def load(zf=zf, m=m, name=name):
                try:
                    return zf.read(m)
                except Exception as e:  # noqa: BLE001 - bad CRC, unsupported compression...
                    raise WebError(f"{name}: cannot extract from the zip ({one_line(e)})") from None
            yield name, load


def zip_problem(members: Sequence[zipfile.ZipInfo]) -> str:
    """Why a zip's listing is refused ('' if it is not): too many files, or entries that overlap.

    In a real zip every entry's bytes follow its local header and nothing else starts there; a bomb
    points many entries at one compressed member, so that a small file inflates many times over.
    """
    if len(members) > MAX_ZIP_MEMBERS:
        return f"{len(members):,} files; the limit is {MAX_ZIP_MEMBERS:,}"
    end = -1
    for m in sorted(members, key=lambda m: m.header_offset):
        if m.header_offset < end:
            return f"entries overlap ({_printable(m.filename)} starts inside another one): a zip bomb"
        end = m.header_offset + 30 + m.compress_size  # at least the fixed local header and the data
    return ""


def _printable(name: str) -> str:
    """A file name safe in a one-line report: control characters (newlines) shown as '?'."""
    return re.sub(r"[\x00-\x1f\x7f]", "?", name)


def safe_arcname(name: str) -> str:
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    stem_path = PurePosixPath(*parts) if parts else PurePosixPath("image")
    return str(stem_path.with_suffix(".png"))


def unique(name: str, used: set) -> str:
    candidate, n = name, 1
    while candidate in used:
        p = PurePosixPath(name)
        candidate = str(p.with_name(f"{p.stem}_{n}{p.suffix}"))
        n += 1
    used.add(candidate)
    return candidate
