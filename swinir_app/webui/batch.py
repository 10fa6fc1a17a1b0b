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
from typing import Callable, List, Optional, Sequence

from ..files import atomic_file
from ..images import encode_image
from .catalogue import label_of
from .jobs import Job, OverBudget, WebError, one_line
from .service import TileProgress, WebApp
from ..engine import human_size
from .settings import RunSettings
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

    def summary(self) -> str:
        total = self.done + len(self.errors) + self.not_done
        return f"{self.done} of {total} image{'s' if total != 1 else ''} done in {self.seconds:.1f} s · {self.label}"

    def text(self) -> str:
        return "\n".join([self.summary(), *self.errors, *self.skipped])


def run_batch(app: WebApp, paths: Sequence[str], s: RunSettings, cancel: threading.Event,
              report: Optional[Callable[[float, str], None]] = None) -> BatchResult:
    """Every image into one zip of PNGs, written to a temp name and renamed; failures in errors.txt."""
    paths = [str(p) for p in (paths or []) if p]
    if not paths:
        raise WebError("no files: add images or a zip first")
    errors: List[str] = []
    opened: List[zipfile.ZipFile] = []
    done, start, used, written, not_done = 0, time.perf_counter(), set(), 0, 0
    final = app.storage.new_result_folder(0) / "swinir_results.zip"
    skipped: List[str] = []
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
                            k = s.outscale if restorer.task == "sr" and s.outscale else restorer.scale
                            cancel.spend(round(h * w * (1 + max(k, restorer.scale) ** 2)), name)
                        result = app.process(restorer, loaded, name, s, tiles)
                    data = encode_image(result.output, ".png", icc_profile=loaded.icc_profile)
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
                out.writestr(unique(safe_arcname(name), used), data)
                done += 1
            if errors or skipped:
                out.writestr("errors.txt", "\n".join(errors + skipped) + "\n")
    finally:
        for zf in opened:
            zf.close()
    return BatchResult(final, done, errors, time.perf_counter() - start, label_of(s.spec), skipped, not_done)
