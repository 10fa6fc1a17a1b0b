"""Temporary storage and its quota: result folders in the app's own work folder, and gradio's cache
counted with them. No gradio here.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .jobs import WebError
from ..engine import human_size
from .settings import AppConfig

RESULT_TTL = 120.0  # seconds our copy of a result stays: gradio serves the download from its own copy
CACHE_TTL = (600, 1800)  # gradio's cache (uploads, result copies): every 10 min, delete what is over 30 min old


class TempStorage:
    """The app's work folder (deleted at exit) and the quota on it: ``config.max_temp_size``, read at each
    check, bounds results and uploads together (``gradio_cache``, when it is ours, is counted)."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.workdir = Path(tempfile.mkdtemp(prefix="swinir_webui_"))
        atexit.register(shutil.rmtree, self.workdir, True)
        self.gradio_cache: Optional[Path] = None  # counted in the quota when it is ours (see cli.main)

    def new_result_folder(self, size: int) -> Path:
        """A fresh folder for a result of ``size`` bytes, after making room for it within the quota.

        Our copy of a result is needed only until gradio has copied it into its cache (which serves the
        download), so it goes after :data:`RESULT_TTL`; gradio's cache keeps files :data:`CACHE_TTL`.
        Beyond that, the oldest files go first whenever results and uploads together would pass
        ``max_temp_size``.
        """
        quota = self.config.max_temp_size
        if size > quota:
            raise WebError(f"the result ({human_size(size)}) is larger than this server's temporary space "
                           f"({human_size(quota)}); choose a smaller output scale or image")
        now = time.time()
        for folder in self.workdir.glob("result_*"):
            try:
                if now - folder.stat().st_mtime > RESULT_TTL:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass
        self.make_room(size)
        return Path(tempfile.mkdtemp(dir=self.workdir, prefix="result_"))

    def make_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit in ``max_temp_size``, after the oldest idle files went."""
        limit = self.config.max_temp_size - size
        left = enforce_quota([self.workdir, *([self.gradio_cache] if self.gradio_cache else [])], max(limit, 0))
        return size <= self.config.max_temp_size and left <= limit


def enforce_quota(folders: Sequence[Path], limit: int, min_age: float = 60.0) -> int:
    """Delete the oldest files under ``folders`` until they take at most ``limit`` bytes; returns the
    bytes left. Files younger than ``min_age`` seconds (in use by a running request) are kept.
    """
    files = []
    for folder in folders:
        for path in Path(folder).rglob("*"):
            try:
                st = path.lstat()
            except OSError:
                continue
            if path.is_file() and not path.is_symlink():
                files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, path in sorted(files):
        if total <= limit:
            break
        if now - mtime < min_age:
            continue
        try:
            path.unlink()
            total -= size
        except OSError:
            pass
    return total
