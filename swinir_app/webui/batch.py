"""Batches: every image of a request into one zip of PNGs, as functions over the service (this module
uses :class:`~.service.WebApp`; the service knows nothing of it). No gradio here.
"""
from __future__ import annotations

import logging
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..files import atomic_file
from .jobs import Job, OverBudget, WebError, one_line
from .service import TileProgress, WebApp, to_preview
from ..engine import human_size
from .settings import GALLERY_ITEMS, GALLERY_MAX_SIDE, RunSettings
from .zips import list_images, safe_arcname, unique

log = logging.getLogger("swinir_app.webui")


@dataclass
class BatchResult:
    zip_path: Path
    done: int
    errors: List[str]  # one line per image that failed
    seconds: float
    label: str
    skipped: List[str] = field(default_factory=list)  # files left out on purpose (hidden files), one line each
    not_done: int = 0  # images left when the request's budget ran out
    gallery: List[Tuple[np.ndarray, str]] = field(default_factory=list)  # the first results: (preview, name)

    def summary(self) -> str:
        total = self.done + len(self.errors) + self.not_done
        return f"{self.done} of {total} image{'s' if total != 1 else ''} done in {self.seconds:.1f} s · {self.label}"

    def text(self) -> str:
        return "\n".join([self.summary(), *self.errors, *self.skipped])

    def gallery_label(self) -> str:
        shown = len(self.gallery)
        if self.done > shown:
            return f"Results: the first {shown} of {self.done} (all are in the zip)"
        return "Results"


def thumbnail(a: np.ndarray, side: int = GALLERY_MAX_SIDE) -> np.ndarray:
    """8-bit pixels for the gallery, at most ``side`` pixels on a side (the zip has the full size)."""
    a = to_preview(a)
    h, w = a.shape[:2]
    f = side / max(h, w)
    if f < 1:
        a = cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return a


def run_batch(app: WebApp, paths: Sequence[str], s: RunSettings, cancel: threading.Event,
              report: Optional[Callable[[float, str], None]] = None) -> BatchResult:
    """Every image into one zip of PNGs, written to a temp name and renamed; failures in errors.txt."""
    paths = [str(p) for p in (paths or []) if p]
    if not paths:
        raise WebError("no files: add images or a zip first")
    label = app.label(s)  # a mix weight for a model that has no partner: refused before any work
    errors: List[str] = []
    opened: List[zipfile.ZipFile] = []
    done, start, used, written, not_done = 0, time.perf_counter(), set(), 0, 0
    final = app.storage.new_result_folder(0) / "swinir_results.zip"
    skipped: List[str] = []
    gallery: List[Tuple[np.ndarray, str]] = []
    try:
        items = list(list_images(app.config, paths, errors, opened, skipped))  # listings only: pixels read one by one
        # The device is taken for one image at a time: other users' jobs get their turns in between.
        with atomic_file(final) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as out:
            for i, (name, source) in enumerate(items):
                if report:
                    report(i / len(items), name)
                tiles = TileProgress(8 if s.self_ensemble else 1, None, cancel)
                try:
                    tiles.check()
                    loaded = app.read(source(), name)
                    with app.device_lock.hold(cancel):
                        tiles.check()
                        restorer = app.restorer(s)
                        if isinstance(cancel, Job):
                            h, w = loaded.array.shape[:2]
                            size = app.output_size(restorer, h, w, s, name)
                            out_pixels = max(h * w * restorer.scale ** 2, size[0] * size[1] if size else 0)
                            cancel.spend(h * w + out_pixels, name)
                        result = app.process(restorer, loaded, name, s, tiles)
                    data = app.result_png(result)  # metadata kept unless the request said otherwise
                except OverBudget as e:  # the rest of the request is not done either
                    errors.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
                    not_done = len(items) - i - 1
                    if not_done:
                        skipped.append(f"{not_done:,} more not done: the request's budget is spent")
                    break
                except WebError as e:
                    errors.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
                    continue
                except Exception as e:
                    log.exception("batch: %s failed", name)
                    errors.append(f"{name}: {type(e).__name__}: {one_line(e)}")
                    continue
                written += len(data)
                if written > app.config.max_temp_size:
                    raise WebError(f"the results pass this server's temporary space "
                                   f"({human_size(app.config.max_temp_size)}); send fewer or smaller images")
                arcname = unique(safe_arcname(name), used)
                out.writestr(arcname, data)
                done += 1
                if len(gallery) < GALLERY_ITEMS:
                    gallery.append((thumbnail(result.output), arcname))
            if errors or skipped:
                out.writestr("errors.txt", "\n".join(errors + skipped) + "\n")
    finally:
        for zf in opened:
            zf.close()
    return BatchResult(final, done, errors, time.perf_counter() - start, label, skipped, not_done, gallery)
