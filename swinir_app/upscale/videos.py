"""Videos in time slices and one at a time: a video (or one slice of it) restored with its frame bar,
the slices joined once every rank has written its own, and finished slices kept fresh meanwhile."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from .. import distributed
from .. import video
from ..images import ImageReadError
from .plan import Job
from .summary import Summary


def restore_one_video(job: Job, restore, args) -> Tuple[video.VideoResult, int]:
    """Restore one video (or one time slice of it) with a frame bar; returns what
    :func:`video.restore_video` returns and the pixels of one input frame (as its header says).
    Every decoded frame is held to ``--max-pixels``, not only the header's size."""
    from tqdm import tqdm

    info = video.probe(job.src)
    problem = video.container_problem(args.video_codec, job.dst)
    if problem:
        raise video.VideoError(job.src, problem)
    if info.width * info.height > args.max_pixels:
        raise video.VideoError(job.src, f"{info.width}x{info.height} frames exceed the limit of "
                                        f"{args.max_pixels:,} pixels (--max-pixels)")
    # MKV and WebM declare no frame count: estimated from the duration, for the bar's ETA.
    frames = info.frames or round(info.seconds * float(info.rate))
    total = frames // (job.segment[1] if job.segment else 1)
    desc = job.src.name if job.segment is None else f"{job.src.name} {job.segment[0] + 1}/{job.segment[1]}"
    with tqdm(total=total or None, desc=desc, unit="frame", leave=False, disable=None) as bar:
        dst = video.segment_path(job.dst, *job.segment) if job.segment else job.dst
        result = video.restore_video(job.src, dst, restore, codec=args.video_codec, crf=args.crf, preset=args.preset,
                                     overwrite=args.overwrite or job.segment is not None, segment=job.segment,
                                     max_pixels=args.max_pixels, on_frame=lambda done, _: bar.update(),
                                     encoder_log=args.debug, keep_metadata=not args.strip_metadata)
    if result.bits < result.source_bits and (job.segment is None or job.segment[0] == 0):
        tqdm.write(f"note: {job.src}: {result.source_bits}-bit video written {result.bits}-bit: "
                   f"{args.video_codec or video.default_codec(job.dst)} has no deeper format here "
                   f"(libx264, libx265 and ffv1 keep it)", file=sys.stderr)
    return result, info.width * info.height


def join_videos(d, todo: List[Job], failed_here: List[Tuple[str, int, str]], slices: List[tuple],
                summary: Summary, args) -> None:
    """After every rank has written its time slices: rank 0 joins each video's slices into its
    output (without re-encoding, the input's sound copied in) and removes them. ``slices``: this
    rank's (src, dst, (k, n), restored pts). The joined video must hold exactly the frames restored,
    at their times, and as many as the input declares: else it fails and is not written. ``failed_here``:
    (src, slice, error line) of this rank's failed slices; a video with any is said (its first slice's
    line) and counted once, here."""
    distributed.barrier(d)
    failed: Dict[str, str] = {}
    for src, _, line in sorted(t for part in distributed.gather(d, failed_here) for t in part):
        failed.setdefault(src, line)
    videos = sorted({(str(j.src), str(j.dst), j.segment[1]) for j in todo if j.segment is not None})
    videos = sorted({v for part in distributed.gather(d, videos) for v in part})
    restored = {(src, dst, seg[0]): times for part in distributed.gather(d, slices) for src, dst, seg, times in part}
    if d.rank != 0:
        return
    for src, dst, n in videos:
        parts = [video.segment_path(dst, k, n) for k in range(n)]
        try:
            if src in failed:
                summary.failed += 1
                if failed[src]:  # not said yet
                    print(failed[src], file=sys.stderr)
            else:
                missing = [str(k + 1) for k in range(n) if (src, dst, k) not in restored]
                if missing:
                    raise video.VideoError(src, f"slice {', '.join(missing)} of {n} was not restored")
                times = [restored[src, dst, k] for k in range(n)]
                expected = [t for part in times for t in part]
                declared = video.probe(src).frames
                if declared and len(expected) < declared:
                    raise video.VideoError(src, f"the video stops after {len(expected)} of its {declared} frames "
                                                f"(truncated)")
                video.join_segments(src, [p for p, t in zip(parts, times) if t], dst, overwrite=args.overwrite,
                                    expected=expected, keep_metadata=not args.strip_metadata)
                summary.done += 1
        except FileExistsError:
            summary.failed += 1
            print(f"error: {src}: output {dst} appeared meanwhile; not overwritten", file=sys.stderr)
        except ImageReadError as err:  # VideoError: one line that names the file
            summary.failed += 1
            print(f"error: {err}", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - report, keep going with the others
            summary.failed += 1
            print(f"error: {src}: cannot join its {n} segments: {err}", file=sys.stderr)
        finally:
            for part in parts:
                part.unlink(missing_ok=True)


class KeepFresh:
    """Touches this run's finished time slices every minute until they are joined, so that a run started
    meanwhile in the same folder does not take them for a killed run's (see video.remove_stale_segments)."""

    def __init__(self, every: float = 60.0):
        import threading
        self.paths: List[Path] = []
        self.every, self.stop, self.thread = every, threading.Event(), None

    def add(self, path: Path) -> None:
        import threading
        self.paths.append(path)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="keep-slices-fresh", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            for path in list(self.paths):
                try:
                    os.utime(path)
                except OSError:  # joined and removed meanwhile
                    pass

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
