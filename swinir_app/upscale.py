"""Batch restoration CLI: ``python -m swinir_app.upscale INPUT... -o OUTDIR``.

Files and folders in, mirrored folders out: still images, animated images (GIF, APNG, WebP) and
multi-page TIFFs with every frame, and videos (.mp4 .mkv .mov .webm .avi) streamed with their sound.
Bad inputs get one line each and the rest go on.
Exit codes: 0 all done, 1 some inputs failed, 2 usage or model error, 130 interrupted.
Under ``torchrun`` each rank takes a disjoint shard of the inputs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np


from . import distributed
from .cli import Parser, add_debug, add_device, add_model, add_tiles, fail
from . import frames as animations
from . import video
from .engine import resize_lanczos
from .images import (IMAGE_EXTENSIONS, OUTPUT_FORMATS, WRITABLE, ImageReadError, configure_pillow, read_image,
                     remove_stale_parts, write_image)

DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: str = "image"  # "image", "frames" (an animated image or multi-page TIFF) or "video"
    segment: Optional[Tuple[int, int]] = None  # (k, n): the k-th of n time slices of a video


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    frames: int = 0  # of animations and videos


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m swinir_app.upscale", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image, animated image and video files, and/or folders of them")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (mirrors input folders)")
    add_model(p)
    add_tiles(p)
    add_device(p)
    p.add_argument("--outscale", type=float, default=None,
                   help="final scale relative to the input, resized after the model with Lanczos")
    p.add_argument("--suffix", default="", help="added to output file names, e.g. _x4")
    p.add_argument("--ext", default="auto", choices=["auto", *OUTPUT_FORMATS],
                   help="output format (auto: same as input where possible, else png)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (8x slower)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger inputs (decompression bombs; all frames of an animation together); "
                        f"default {DEFAULT_MAX_PIXELS:,}")
    v = p.add_argument_group("videos (the container is kept; audio and subtitles are copied)")
    v.add_argument("--video-codec", default=None, metavar="NAME",
                   help="FFmpeg encoder (default: libx264, yuv420p; libvpx-vp9 for .webm)")
    v.add_argument("--crf", type=int, default=None,
                   help=f"constant rate factor of x264/x265/VP9: lower is better (default: {video.DEFAULT_CRF}; "
                        f"0 is lossless in x264)")
    v.add_argument("--preset", default=video.DEFAULT_PRESET,
                   help=f"x264/x265 speed preset, ultrafast ... veryslow (default: {video.DEFAULT_PRESET})")
    v.add_argument("--segments", type=_at_least_one, default=1, metavar="N",
                   help="cut each video into N time slices, restored apart (one per rank under torchrun) and "
                        "joined without re-encoding (default: 1)")
    add_debug(p)
    return p


def _at_least_one(text: str) -> int:
    """--segments: a usage error (``error: argument --segments: must be at least 1, got '0' (see ... --help)``)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return n


def collect_inputs(inputs: List[str], out_dir: Path, ext: str, suffix: str, recursive: bool
                   ) -> Tuple[List[Job], List[str], List[str]]:
    """Jobs in a stable order; one-line errors (inputs that don't exist) and notes (what a folder scan
    left out: links to nothing, and sub-folders without --recursive)."""
    jobs: List[Job] = []
    errors: List[str] = []
    notes: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            entries = sorted(path.glob(pattern))
            for f in entries:
                if f.is_symlink() and not f.exists():
                    notes.append(f"{f}: a link to nothing; skipped")
                elif f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS + video.VIDEO_EXTENSIONS:
                    jobs.append(Job(f, _destination(f, out_dir / f.relative_to(path).parent, ext, suffix)))
            folders = [f for f in entries if f.is_dir()] if not recursive else []
            if folders:
                notes.append(f"{path}: {len(folders)} sub-folder{'s' if len(folders) > 1 else ''} not searched "
                             f"({', '.join(f.name for f in folders[:3])}{', ...' if len(folders) > 3 else ''}); "
                             f"--recursive descends into them")
        elif path.exists() or path.is_symlink():
            jobs.append(Job(path, _destination(path, out_dir, ext, suffix)))
        else:
            errors.append(f"{item}: no such file or folder")
    return jobs, errors, notes


def collisions(jobs: List[Job], ext: str) -> List[str]:
    """One line per output that two or more inputs would be written to, compared without case (as a
    file system on macOS or Windows compares), naming the inputs and what keeps them apart."""
    by_dst: Dict[str, List[Job]] = {}
    for job in jobs:
        by_dst.setdefault(str(job.dst).lower(), []).append(job)
    lines = []
    for group in by_dst.values():
        if len(group) < 2:
            continue
        kinds = {j.src.suffix.lower() for j in group}
        advice = ("--ext auto keeps their extensions" if ext != "auto" and len(kinds) == len(group)
                  else "rename one, or write them to separate output folders")
        lines.append(f"{' and '.join(str(j.src) for j in group)} would be written to the same file, {group[0].dst}; "
                     f"{advice}")
    return lines


def _once_each(jobs: List[Job]) -> Tuple[List[Job], List[Path]]:
    """The jobs with an input named twice (the same file, by any path) kept once, and those inputs."""
    seen, kept, twice = set(), [], []
    for job in jobs:
        key = _identity(job.src) or str(job.src)
        if key in seen:
            twice.append(job.src)
            continue
        seen.add(key)
        kept.append(job)
    return kept, twice


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _destination(src: Path, folder: Path, ext: str, suffix: str) -> Path:
    if src.suffix.lower() in video.VIDEO_EXTENSIONS:  # videos keep their container; --ext is for images
        out_ext = src.suffix.lower()
    elif ext == "auto":
        out_ext = src.suffix.lower() if src.suffix.lower() in WRITABLE else ".png"
    else:
        out_ext = OUTPUT_FORMATS[ext]
    return folder / f"{src.stem}{suffix}{out_ext}"


def tiling_notes(restorer, job: "Job", args) -> List[str]:
    """What the tile settings do to the first input (an image, or a video's frames): an overlap cut to
    half the tile, and tiles so small that they compute far more pixels than the image has."""
    import stat

    from PIL import Image

    if args.tile in (None, "auto"):
        return []
    src = job.src
    try:
        if not stat.S_ISREG(os.stat(src).st_mode):
            return []
        if job.kind == "video":
            info = video.probe(src)
            w, h = info.width, info.height
        else:
            with Image.open(src) as img:
                w, h = img.size
    except Exception:  # noqa: BLE001 - the reader says what is wrong with it later
        return []
    plan = restorer.tiling(h, w)
    lines = []
    if plan.overlap < args.tile_overlap and plan.tile is not None:
        lines.append(f"--tile-overlap {args.tile_overlap} is more than half of the {plan.tile}-pixel tiles: "
                     f"{plan.overlap} is used")
    if plan.work > 2:
        lines.append(f"--tile {args.tile}: {plan.count:,} tiles compute {plan.work:.0f}x the pixels of {src.name} "
                     f"({w}x{h}); a larger tile, or auto, is faster")
    return lines


def check_output_folders(jobs: List[Job], scale: float) -> Optional[str]:
    """Why the outputs cannot be written (a read-only or full folder), before any image is computed.

    Each output folder is created and a probe file written in it; and it must have room for at
    least the first image's output, uncompressed.
    """
    import shutil
    import tempfile

    for folder in sorted({job.dst.parent for job in jobs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe.", suffix=".part") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            return f"cannot write to the output folder {folder}: {e.strerror or e}"
    if jobs:
        need = _output_bytes(jobs[0].src, scale)
        free = shutil.disk_usage(jobs[0].dst.parent).free
        if need and free < need:
            return (f"the output folder {jobs[0].dst.parent} has {free / 2 ** 20:,.0f} MB free; the first result "
                    f"alone needs about {need / 2 ** 20:,.0f} MB")
    return None


def _output_bytes(src: Path, scale: float) -> int:
    """The uncompressed size of ``src``'s result (0 if its header cannot be read here)."""
    import stat

    try:
        from PIL import Image
        if not stat.S_ISREG(os.stat(src).st_mode):  # never open a pipe or device here
            return 0
        with Image.open(src) as img:
            w, h = img.size
            return int(w * h * scale * scale * len(img.getbands()))
    except Exception:  # noqa: BLE001 - the reader says what is wrong with it later
        return 0


def shard(jobs: List[Job], rank: int, world: int) -> List[Job]:
    """This rank's share under torchrun (RANK/WORLD_SIZE cover all nodes)."""
    return jobs[rank::world]


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.skip_existing and args.overwrite:  # usage errors: one line that points to --help, exit 2
        parser.error("--skip-existing and --overwrite exclude each other")
    if args.outscale is not None and args.outscale <= 0:
        parser.error("--outscale must be positive")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: finished outputs are complete; no partial files were left", file=sys.stderr)
        return 130


def run(args) -> int:
    from tqdm import tqdm

    from .engine import Restorer, SettingError

    if args.skip_existing and args.overwrite:
        return fail("--skip-existing and --overwrite exclude each other", args.debug)
    if args.outscale is not None and args.outscale <= 0:
        return fail("--outscale must be positive", args.debug)

    configure_pillow(args.max_pixels)
    d = distributed.join(args.device)
    rank, world = d.rank, d.world_size
    main_rank = rank == 0

    # Every destination is planned before any model work: collisions stop the run, inputs are never outputs.
    out_dir = Path(args.output)
    jobs, missing, notes = collect_inputs(args.inputs, out_dir, args.ext, args.suffix, args.recursive)
    jobs, twice = _once_each(jobs)
    notes += [f"{src}: given more than once; restored once" for src in twice]
    clashes = collisions(jobs, args.ext)
    if clashes:
        for line in clashes[:-1] if main_rank else []:
            print(f"error: {line}", file=sys.stderr)
        return fail(clashes[-1], args.debug)
    summary = Summary(failed=len(missing) if main_rank else 0)
    for line in (missing if main_rank else []):
        print(f"error: {line}", file=sys.stderr)
    for line in (notes if main_rank else []):
        print(f"note: {line}", file=sys.stderr)
    if args.segments < 1:
        return fail("--segments must be at least 1", args.debug)
    codecs = sorted({args.video_codec or video.default_codec(j.dst) for j in jobs
                     if j.src.suffix.lower() in video.VIDEO_EXTENSIONS})
    given_crf, args.crf = args.crf is not None, video.DEFAULT_CRF if args.crf is None else args.crf
    for problem in filter(None, (video.encoder_problem(c, args.crf, args.preset) for c in codecs)):
        return fail(problem, args.debug)  # a usage error, before any model work
    for codec in (c for c in codecs if given_crf and main_rank and video.encoder_name(c) not in video.CRF_RANGE):
        print(f"note: --crf is not used by {codec} (only by {', '.join(video.CRF_RANGE)}); "
              f"{video.quality_without_crf(codec)}", file=sys.stderr)
    inputs = {_identity(job.src) for job in jobs} - {None}
    jobs, refused = plan_kinds(jobs, args.segments)
    folders = sorted({job.dst.parent for job in jobs})
    jobs = shard(jobs, rank, world)
    todo: List[Job] = []
    existing = 0
    for job in jobs:
        if job in refused:
            summary.failed += 1
            print(f"error: {job.src}: {refused[job]}", file=sys.stderr)
        elif job.dst.exists() and _identity(job.dst) in inputs:
            if job.segment is None or job.segment[0] == 0:  # one line and one failure per video, not per slice
                summary.failed += 1
                print(f"error: {job.src}: its output {job.dst} is an input (the same file); not written",
                      file=sys.stderr)
        elif job.dst.exists() and not args.overwrite:
            if job.segment is None or job.segment[0] == 0:  # a video cut in slices is one output
                summary.skipped += 1
                existing += 1
        else:
            todo.append(job)
    if existing and not args.skip_existing:
        one = existing == 1
        print(f"note: {existing} output{'' if one else 's'} already exist{'s' if one else ''} and "
              f"{'was' if one else 'were'} skipped; --overwrite replaces {'it' if one else 'them'}", file=sys.stderr)
    # What killed runs left in every output folder, work left there or not (a --skip-existing rerun):
    # .part files and time slices, by age (a live run keeps its own fresh).
    for folder in folders if main_rank else []:
        for left in remove_stale_parts(folder) + video.remove_stale_segments(folder):
            print(f"note: removed {left}, left by an interrupted run", file=sys.stderr)

    spec = args.model
    restorer = None
    if not todo:  # nothing to do needs no model loaded (a re-run of a finished job works offline), only named
        from .zoo import unknown_spec
        reason = unknown_spec(spec)
        if reason:
            return fail(f"cannot load model {spec!r}: {reason}", args.debug)
    else:
        try:
            restorer = Restorer(spec, tile=args.tile, tile_overlap=args.tile_overlap, precision=args.precision,
                                device=distributed.rank_device(args.device), self_ensemble=args.self_ensemble,
                                progress=True, weights_dir=args.weights_dir)
        except SettingError as err:  # checked before the model is loaded: the setting is the cause
            return fail(err.flag(), args.debug)
        except Exception as err:  # noqa: BLE001 - one line for any model problem
            return fail(f"cannot load model {spec!r}: {err}", args.debug)
        if main_rank:
            for line in tiling_notes(restorer, todo[0], args):
                print(f"note: {line}", file=sys.stderr)
        problem = check_output_folders(todo, args.outscale or restorer.scale)
        if problem:
            return fail(problem, args.debug)

    start = time.perf_counter()
    # Decode the next image and encode the previous one in the background while the model runs.
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode")
    pending: List[Tuple[Job, Future]] = []
    bar = tqdm(total=len(todo), desc="inputs" if world == 1 else f"rank {rank}", unit="file", position=0,
               disable=None)
    segments_failed: List[Tuple[str, int, str]] = []  # (src, slice, its error line) of this rank's failed slices
    slices: List[tuple] = []  # (src, dst, (k, n), pts of the frames restored) of this rank's time slices
    fresh = _KeepFresh()

    def restore(a):
        out = restorer.restore(a)
        if args.outscale is not None:
            h, w = a.shape[:2]
            out = resize_lanczos(out, (max(1, round(h * args.outscale)), max(1, round(w * args.outscale))))
        return out

    try:
        nxt = reader.submit(_read, todo[0], args.max_pixels) if todo else None
        for i, job in enumerate(todo):
            future, nxt = nxt, (reader.submit(_read, todo[i + 1], args.max_pixels) if i + 1 < len(todo) else None)
            if job.segment is not None and any(src == str(job.src) for src, _, _ in segments_failed):
                bar.update()  # a slice of a video that has failed here: it would fail alike
                continue
            line = None
            try:
                if job.kind == "video":
                    result, pixels = restore_one_video(job, restore, args)
                    summary.frames += result.frames
                    summary.megapixels += result.frames * pixels / 1e6
                    if job.segment is None:
                        summary.done += 1
                    else:
                        slices.append((str(job.src), str(job.dst), job.segment, result.times))
                        if result.frames:
                            fresh.add(video.segment_path(job.dst, *job.segment))
                elif job.kind == "frames":
                    anim = future.result()
                    with tqdm(total=len(anim.frames), desc=f"{job.src.name}", unit=anim.kind[:-1],
                              leave=False, disable=None) as frame_bar:
                        def one(a):
                            out = restore(a)
                            frame_bar.update()
                            return out
                        restored = anim.map(one)
                    summary.frames += len(anim.frames)
                    pending.append((job, writer.submit(animations.write_animation, job.dst, restored, args.quality,
                                                       args.overwrite)))
                    summary.megapixels += anim.pixels / 1e6
                else:
                    loaded = future.result()
                    out = restore(loaded.array)
                    if out.ndim == 3 and out.shape[2] in (2, 4) and job.dst.suffix.lower() in (".jpg", ".jpeg") \
                            and out[:, :, -1].min() < np.iinfo(out.dtype).max:  # an alpha that hides something
                        tqdm.write(f"note: {job.src}: JPEG has no alpha, so its transparency is dropped in "
                                   f"{job.dst.name}; --ext png or webp keeps it", file=sys.stderr)
                    pending.append((job, writer.submit(write_image, job.dst, out, args.quality, loaded.icc_profile,
                                                       args.overwrite)))
                    summary.megapixels += loaded.pixels / 1e6
            except ImageReadError as err:
                line = f"error: {err}"
            except Exception as err:  # noqa: BLE001 - report, keep going with the others
                if args.debug:
                    traceback.print_exc()
                line = f"error: {job.src}: {_reason(err)}"
            if line is not None:
                if job.segment is None:
                    summary.failed += 1
                    tqdm.write(line, file=sys.stderr)
                else:  # counted once per video, at the join; said there too under torchrun (slices on several ranks)
                    if world == 1:
                        tqdm.write(line, file=sys.stderr)
                    segments_failed.append((str(job.src), job.segment[0], line if world > 1 else ""))
            bar.update()
            pending = _collect_writes(pending, summary, args.debug, wait=False)
        _collect_writes(pending, summary, args.debug, wait=True)
    except BaseException:
        fresh.close()
        raise
    finally:
        bar.close()
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
    try:
        if args.segments > 1:
            join_videos(d, todo, segments_failed, slices, summary, args)
    finally:
        fresh.close()
    seconds = time.perf_counter() - start

    totals = distributed.all_sum(d, [summary.done, summary.skipped, summary.failed, summary.megapixels, seconds,
                                     summary.frames])
    if rank == 0:
        done, skipped, failed, mp, secs = totals[0], totals[1], totals[2], totals[3], (totals[4] / world)
        rate = mp / secs if secs > 0 else 0.0
        frames = f", {int(totals[5])} frames" if totals[5] else ""
        print(f"done {int(done)}, skipped {int(skipped)}, failed {int(failed)} in {secs:.1f} s "
              f"({rate:.3f} input megapixels/s{frames})" + (f" on {world} processes" if world > 1 else ""),
              file=sys.stderr)
    distributed.cleanup(d, wait=True)
    return 1 if totals[2] else 0


def _reason(err: BaseException) -> str:
    """An error's text for one line: the reason alone where it says it (the model's NaN output, FFmpeg's
    own words), prefixed by its class name where that is all that says what happened (KeyError: 'x')."""
    from .checkpoint import ModelOutputError
    if isinstance(err, ModelOutputError):
        return str(err)
    try:
        import av
        if isinstance(err, av.FFmpegError):
            return video._reason(err)
    except ImportError:
        pass
    return f"{type(err).__name__}: {err}"


def plan_kinds(jobs: List[Job], segments: int) -> Tuple[List[Job], Dict[Job, str]]:
    """Each job with its kind (a still image, frames, or a video cut into ``segments`` time slices),
    and the jobs refused before any work, with why: an animation asked for in a still format."""
    out: List[Job] = []
    refused: Dict[Job, str] = {}
    for job in jobs:
        if job.src.suffix.lower() in video.VIDEO_EXTENSIONS:
            n = segments
            out.extend(replace(job, kind="video", segment=(k, n) if n > 1 else None) for k in range(n))
            continue
        count, fmt = animations.frame_info(job.src)
        if count <= 1:
            out.append(job)
            continue
        job = replace(job, kind="frames")
        problem = animations.output_problem(fmt, count, job.dst.suffix)
        if problem:
            refused[job] = problem
        out.append(job)
    return out, refused


def _read(job: Job, max_pixels: int):
    if job.kind == "video":
        return None
    if job.kind == "frames":
        return animations.read_animation(job.src, max_pixels)
    return read_image(job.src, max_pixels)


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
                                     encoder_log=args.debug)
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
                                    expected=expected)
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


class _KeepFresh:
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


if __name__ == "__main__":
    sys.exit(main())
