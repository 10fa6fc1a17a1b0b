"""Batch restoration CLI: ``python -m swinir_app.upscale INPUT... -o OUTDIR``.

Files and folders in, mirrored folders out. Bad inputs get one line each and the rest go on.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple


from . import distributed
from .cli import Parser, add_debug, add_device, add_model, add_tiles, fail
from .engine import resize_lanczos
from .images import (IMAGE_EXTENSIONS, OUTPUT_FORMATS, ImageReadError, LoadedImage, configure_pillow, read_image,
                     remove_stale_parts, write_image)

DEFAULT_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m swinir_app.upscale", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
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
                   help=f"refuse larger inputs (decompression bombs); default {DEFAULT_MAX_PIXELS:,}")
    add_debug(p)
    return p


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
                elif f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
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


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _destination(src: Path, folder: Path, ext: str, suffix: str) -> Path:
    if ext == "auto":
        out_ext = src.suffix.lower() if src.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff") \
            else ".png"
    else:
        out_ext = OUTPUT_FORMATS[ext]
    return folder / f"{src.stem}{suffix}{out_ext}"


def tiling_notes(restorer, src: Path, args) -> List[str]:
    """What the tile settings do to the first image: an overlap cut to half the tile, and tiles so
    small that they compute far more pixels than the image has."""
    import stat

    from PIL import Image

    if args.tile in (None, "auto"):
        return []
    try:
        if not stat.S_ISREG(os.stat(src).st_mode):
            return []
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
    args = build_parser().parse_args(argv)
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
    d = distributed.join()
    rank, world = d.rank, d.world_size
    main_rank = rank == 0

    # Every destination is planned before any model work: collisions stop the run, inputs are never outputs.
    out_dir = Path(args.output)
    jobs, missing, notes = collect_inputs(args.inputs, out_dir, args.ext, args.suffix, args.recursive)
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
    inputs = {_identity(job.src) for job in jobs} - {None}
    jobs = shard(jobs, rank, world)
    todo: List[Job] = []
    existing = 0
    for job in jobs:
        if job.dst.exists() and _identity(job.dst) in inputs:
            summary.failed += 1
            print(f"error: {job.src}: its output {job.dst} is an input (the same file); not written", file=sys.stderr)
        elif job.dst.exists() and not args.overwrite:
            summary.skipped += 1
            existing += 1
        else:
            todo.append(job)
    if existing and not args.skip_existing:
        print(f"note: {existing} output{'s' if existing > 1 else ''} already exist{'s' if existing == 1 else ''} "
              f"and {'were' if existing > 1 else 'was'} skipped; --overwrite replaces them", file=sys.stderr)

    spec = args.model
    try:
        restorer = Restorer(spec, tile=args.tile, tile_overlap=args.tile_overlap, precision=args.precision,
                            device=distributed.rank_device(args.device), self_ensemble=args.self_ensemble,
                            progress=True, weights_dir=args.weights_dir)
    except SettingError as err:  # checked before the model is loaded: the setting is the cause
        return fail(err.flag(), args.debug)
    except Exception as err:  # noqa: BLE001 - one line for any model problem
        return fail(f"cannot load model {spec!r}: {err}", args.debug)
    if todo and main_rank:
        for line in tiling_notes(restorer, todo[0].src, args):
            print(f"note: {line}", file=sys.stderr)

    problem = check_output_folders(todo, args.outscale or restorer.scale)
    if problem:
        return fail(problem, args.debug)
    for folder in sorted({job.dst.parent for job in todo}):
        for part in remove_stale_parts(folder):
            print(f"note: removed {part}, left by an interrupted run", file=sys.stderr)

    start = time.perf_counter()
    # Decode the next image and encode the previous one in the background while the model runs.
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode")
    pending: List[Tuple[Job, Future]] = []
    bar = tqdm(total=len(todo), desc="images" if world == 1 else f"rank {rank}", unit="img", position=0,
               disable=None)
    try:
        nxt = reader.submit(read_image, todo[0].src, args.max_pixels) if todo else None
        for i, job in enumerate(todo):
            future, nxt = nxt, (reader.submit(read_image, todo[i + 1].src, args.max_pixels)
                                if i + 1 < len(todo) else None)
            try:
                loaded: LoadedImage = future.result()
                out = restorer.restore(loaded.array)
                if args.outscale is not None:
                    h, w = loaded.array.shape[:2]
                    out = resize_lanczos(out, (max(1, round(h * args.outscale)), max(1, round(w * args.outscale))))
                if out.ndim == 3 and out.shape[2] in (2, 4) and job.dst.suffix.lower() in (".jpg", ".jpeg"):
                    tqdm.write(f"note: {job.src}: JPEG has no alpha, so its transparency is dropped in {job.dst.name}; "
                               f"--ext png or webp keeps it", file=sys.stderr)
                pending.append((job, writer.submit(write_image, job.dst, out, args.quality, loaded.icc_profile,
                                                   args.overwrite)))
                summary.megapixels += loaded.pixels / 1e6
            except ImageReadError as err:
                summary.failed += 1
                tqdm.write(f"error: {err}", file=sys.stderr)
            except Exception as err:  # noqa: BLE001 - report, keep going with the others
                summary.failed += 1
                if args.debug:
                    traceback.print_exc()
                tqdm.write(f"error: {job.src}: {type(err).__name__}: {err}", file=sys.stderr)
            bar.update()
            pending = _collect_writes(pending, summary, args.debug, wait=False)
        _collect_writes(pending, summary, args.debug, wait=True)
    finally:
        bar.close()
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
    seconds = time.perf_counter() - start

    totals = distributed.all_sum(d, [summary.done, summary.skipped, summary.failed, summary.megapixels, seconds])
    if rank == 0:
        done, skipped, failed, mp, secs = totals[0], totals[1], totals[2], totals[3], (totals[4] / world)
        rate = mp / secs if secs > 0 else 0.0
        print(f"done {int(done)}, skipped {int(skipped)}, failed {int(failed)} in {secs:.1f} s "
              f"({rate:.3f} input megapixels/s)" + (f" on {world} processes" if world > 1 else ""), file=sys.stderr)
    distributed.cleanup(d, wait=True)
    return 1 if totals[2] else 0


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
