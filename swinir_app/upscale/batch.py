"""Running a planned batch on one rank: each job read ahead in the background, restored, and written in
the background; one line for each that fails while the others go on; video slices joined at the end."""
from __future__ import annotations

import dataclasses

import sys
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import List, Optional, Tuple

import numpy as np

from .. import frames as animations
from .. import video
from ..resize import final_size, resize_lanczos
from ..images import ImageReadError, read_image, write_image
from .plan import Job
from .summary import Summary
from .videos import KeepFresh, join_videos, restore_one_video


class Batch:
    """One rank's restoration of its jobs (``Plan.todo``) with a model, counting into ``summary``.

    While the model works on one input, the next is decoded (one thread) and finished ones are
    encoded (two threads). A video cut in time slices: its slices restored here are kept fresh until
    :func:`join_videos` joins them (after every rank is done); one that fails here ends its other
    slices here, and the video is said and counted once, at the join."""

    def __init__(self, restorer, args, summary: Summary, rank: int, world: int):
        self.restorer, self.args, self.summary = restorer, args, summary
        self.rank, self.world = rank, world
        self.pending: List[Tuple[Job, Future]] = []  # outputs being written
        self.segments_failed: List[Tuple[str, int, str]] = []  # (src, slice, its error line) of failed slices
        self.slices: List[tuple] = []  # (src, dst, (k, n), pts of the frames restored) of this rank's time slices
        self.fresh: Optional[KeepFresh] = None
        self.writer: Optional[ThreadPoolExecutor] = None

    def run(self, d, todo: List[Job]) -> None:
        """Restore ``todo`` in order, then (with --segments) join every video's slices across ranks."""
        from tqdm import tqdm

        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self.writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode")
        bar = tqdm(total=len(todo), desc="inputs" if self.world == 1 else f"rank {self.rank}", unit="file",
                   position=0, disable=None)
        self.fresh = KeepFresh()
        try:
            nxt = reader.submit(_read, todo[0], self.args.max_pixels) if todo else None
            for i, job in enumerate(todo):
                future = nxt
                nxt = reader.submit(_read, todo[i + 1], self.args.max_pixels) if i + 1 < len(todo) else None
                if job.segment is not None and any(src == str(job.src) for src, _, _ in self.segments_failed):
                    bar.update()  # a slice of a video that has failed here: it would fail alike
                    continue
                self._one(job, future)
                bar.update()
                self.pending = _collect_writes(self.pending, self.summary, self.args.debug, wait=False)
            _collect_writes(self.pending, self.summary, self.args.debug, wait=True)
        except BaseException:
            self.fresh.close()
            raise
        finally:
            bar.close()
            reader.shutdown(wait=True, cancel_futures=True)
            self.writer.shutdown(wait=True)
        try:
            if self.args.segments > 1:
                join_videos(d, todo, self.segments_failed, self.slices, self.summary, self.args)
        finally:
            self.fresh.close()

    def restore(self, a: np.ndarray) -> np.ndarray:
        """The model's output for one image or frame, resized to --outscale or --width/--height where given."""
        out = self.restorer.restore(a)
        args = self.args
        if args.outscale is not None or args.width is not None or args.height is not None:
            h, w = a.shape[:2]
            out = resize_lanczos(out, final_size(h, w, self.restorer.scale, args.outscale, args.width, args.height))
        return out

    def _one(self, job: Job, future: Future) -> None:
        """Restore one job (its decoded input from ``future``); a failure is said in one line and counted."""
        try:
            if job.kind == "video":
                self._video(job)
            elif job.kind == "frames":
                self._frames(job, future.result())
            else:
                self._image(job, future.result())
            return
        except ImageReadError as err:
            line = f"error: {err}"
        except Exception as err:  # noqa: BLE001 - report, keep going with the others
            if self.args.debug:
                traceback.print_exc()
            line = f"error: {job.src}: {_reason(err)}"
        self._failed(job, line)

    def _video(self, job: Job) -> None:
        result, pixels = restore_one_video(job, self.restore, self.args)
        self.summary.frames += result.frames
        self.summary.megapixels += result.frames * pixels / 1e6
        if job.segment is None:
            self.summary.done += 1
        else:
            self.slices.append((str(job.src), str(job.dst), job.segment, result.times))
            if result.frames:
                self.fresh.add(video.segment_path(job.dst, *job.segment))

    def _frames(self, job: Job, anim) -> None:
        from tqdm import tqdm

        with tqdm(total=len(anim.frames), desc=f"{job.src.name}", unit=anim.kind[:-1], leave=False,
                  disable=None) as frame_bar:
            def one(a):
                out = self.restore(a)
                frame_bar.update()
                return out
            restored = anim.map(one)
        if self.args.strip_metadata:
            restored = dataclasses.replace(restored, metadata=None)
        self.summary.frames += len(anim.frames)
        self.pending.append((job, self.writer.submit(animations.write_animation, job.dst, restored, self.args.quality,
                                                     self.args.overwrite)))
        self.summary.megapixels += anim.pixels / 1e6

    def _image(self, job: Job, loaded) -> None:
        from tqdm import tqdm

        out = self.restore(loaded.array)
        if out.ndim == 3 and out.shape[2] in (2, 4) and job.dst.suffix.lower() in (".jpg", ".jpeg") \
                and out[:, :, -1].min() < np.iinfo(out.dtype).max:  # an alpha that hides something
            tqdm.write(f"note: {job.src}: JPEG has no alpha, so its transparency is dropped in "
                       f"{job.dst.name}; --ext png or webp keeps it", file=sys.stderr)
        metadata = None if self.args.strip_metadata else loaded.metadata  # EXIF (orientation 1, new size), XMP, IPTC
        self.pending.append((job, self.writer.submit(write_image, job.dst, out, self.args.quality, loaded.icc_profile,
                                                     self.args.overwrite, metadata)))
        self.summary.megapixels += loaded.pixels / 1e6

    def _failed(self, job: Job, line: str) -> None:
        from tqdm import tqdm

        if job.segment is None:
            self.summary.failed += 1
            tqdm.write(line, file=sys.stderr)
        else:  # counted once per video, at the join; said there too under torchrun (slices on several ranks)
            if self.world == 1:
                tqdm.write(line, file=sys.stderr)
            self.segments_failed.append((str(job.src), job.segment[0], line if self.world > 1 else ""))


def _read(job: Job, max_pixels: int):
    if job.kind == "video":
        return None
    if job.kind == "frames":
        return animations.read_animation(job.src, max_pixels)
    return read_image(job.src, max_pixels)


def _reason(err: BaseException) -> str:
    """An error's text for one line: the reason alone where it says it (the model's NaN output, FFmpeg's
    own words), prefixed by its class name where that is all that says what happened (KeyError: 'x')."""
    from ..checkpoint import ModelOutputError
    if isinstance(err, ModelOutputError):
        return str(err)
    try:
        import av
        if isinstance(err, av.FFmpegError):
            return video._reason(err)
    except ImportError:
        pass
    return f"{type(err).__name__}: {err}"


def _collect_writes(pending, summary: Summary, debug: bool, wait: bool):
    left = []
    for job, fut in pending:
        if not wait and not fut.done():
            left.append((job, fut))
            continue
        try:
            fut.result()
            summary.done += 1
        except FileExistsError:
            summary.failed += 1
            print(f"error: {job.src}: output {job.dst} appeared meanwhile; not overwritten", file=sys.stderr)
        except Exception as err:  # noqa: BLE001
            summary.failed += 1
            if debug:
                traceback.print_exception(err)
            print(f"error: {job.src}: cannot write {job.dst}: {err}", file=sys.stderr)
    return left
