"""Writing and reading files that need not be images: atomic writes, stale ``.part`` cleanup, capped reads.

The one atomic file writer of the package (:func:`atomic_file`), which images, checkpoints, transformers
folders, training states, downloads and reports all write through, and the one reader of regular files
(:func:`read_regular_file`). Standard library only: it sits below every other module that writes files.
"""
from __future__ import annotations

import os
import re
import secrets
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Union


class FileReadError(Exception):
    """A file that cannot be read; ``str()`` is one line naming the file and the reason."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def read_regular_file(path: Path, name: str, max_bytes: Optional[int], limit_for: Optional[str] = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``. Raises :class:`FileReadError` naming
    ``name`` with a one-line reason.

    A device (/dev/zero), a pipe or a socket is refused without being read, so it can neither fill memory
    nor block; a folder is refused as "is a folder, not a file". ``limit_for`` ("an image") ends the reason
    for a file over ``max_bytes`` and names what a folder is not ("is a folder, not an image file").
    """
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise FileReadError(name, "permission denied") from None
    except FileNotFoundError:
        raise FileReadError(name, "no such file") from None
    except OSError as e:
        raise FileReadError(name, f"cannot read: {e.strerror or e}") from None
    try:
        # Checked on the opened fd, before os.fdopen (which itself refuses a folder with a raw
        # IsADirectoryError), so what is checked is what would be read.
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileReadError(name, f"is a folder, not {limit_for + ' file' if limit_for else 'a file'}")
        if not stat.S_ISREG(st.st_mode):
            raise FileReadError(name, "not a regular file (a device, pipe or socket); only files are read")
        if max_bytes is not None and st.st_size > max_bytes:
            what = f" for {limit_for}" if limit_for else ""
            raise FileReadError(name, f"{st.st_size:,} bytes is over the limit of {max_bytes:,}{what}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read()
        except OSError as e:
            raise FileReadError(name, f"cannot read: {e.strerror or e}") from None


@contextmanager
def atomic_file(path: Union[str, os.PathLike], overwrite: bool = True) -> Iterator[BinaryIO]:
    """A file to write ``path`` through: a temp file beside it, moved into place when the block ends.

    If the block raises (Ctrl-C included), the temp file is removed and ``path`` is untouched, so a
    reader never sees half a file. ``overwrite=False`` fails with FileExistsError if ``path`` appeared
    meanwhile, without a race with another writer. The temp file is ``.<name>.<8 characters>.part``
    (see :func:`remove_stale_parts`), created with the usual permissions (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            f = open(tmp, "xb")  # O_EXCL, mode 0666 less the umask; f.name is the temp path
            break
        except FileExistsError:
            continue
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: no race with another writer
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Union[str, os.PathLike], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_file`: complete or absent, never partial."""
    with atomic_file(path, overwrite) as f:
        f.write(data)


STALE_PART_AGE = 15 * 60.0  # seconds: a .part file untouched this long belongs to a process that died
_PART = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")  # atomic_file's temp names (and mkstemp's: 8 characters)


def remove_stale_parts(folder: Path, age: float = STALE_PART_AGE, pattern: re.Pattern = _PART) -> List[Path]:
    """Delete the temp files of :func:`atomic_file` (or other files of ours whose names match ``pattern``) in
    ``folder`` (not below it) older than ``age`` seconds.

    A process killed while writing (SIGKILL, power loss) leaves its ``.part`` file behind; a later run
    removes them. A file still being written is younger than ``age``: its writer touches it.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False) \
                    and now - entry.stat(follow_symlinks=False).st_mtime > age:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed
