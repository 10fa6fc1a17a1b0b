"""Batch restoration CLI: ``python -m swinir_app.upscale INPUT... -o OUTDIR``.

Files and folders in, mirrored folders out: still images, animated images (GIF, APNG, WebP) and
multi-page TIFFs with every frame, and videos (.mp4 .mkv .mov .webm .avi) streamed with their sound.
Bad inputs get one line each and the rest go on.
Exit codes: 0 all done, 1 some inputs failed, 2 usage or model error, 130 interrupted.
Under ``torchrun`` each rank takes a disjoint shard of the inputs.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional, Tuple

from .. import distributed
from .. import video
from ..cli import Parser, add_debug, add_device, add_model, add_threads, add_tiles, fail
from ..engine import ALPHA_MODES
from ..errors import SettingError
from ..images import OUTPUT_FORMATS, configure_pillow, jxl_problem
from .batch import Batch
from .plan import Job, Plan

DEFAULT_MAX_PIXELS = 64_000_000


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m swinir_app.upscale", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image, animated image and video files, and/or folders of them")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (mirrors input folders)")
    add_model(p)
    add_tiles(p)
    add_device(p)
    add_threads(p)
    p.add_argument("-s", "--outscale", type=float, default=None,
                   help="final scale relative to the input, resized after the model with Lanczos")
    p.add_argument("--width", type=int, default=None, metavar="W",
                   help="final width in pixels (with --height: exactly that size; alone: the aspect ratio kept), "
                        "resized after the model with Lanczos; not with --outscale")
    p.add_argument("--height", type=int, default=None, metavar="H", help="final height in pixels (see --width)")
    p.add_argument("--suffix", default="", help="added to output file names, e.g. _x4")
    p.add_argument("--ext", default="auto", choices=["auto", *OUTPUT_FORMATS],
                   help="output format (auto: same as input where possible, else png)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP/AVIF/JPEG XL quality (default: 95)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="write only the pixels and the ICC profile (default: EXIF, XMP and IPTC are kept, the "
                        "orientation reset to 1 and the pixel dimensions updated)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (8x slower)")
    p.add_argument("--mix", metavar="MODEL=W", default=None,
                   help="blend the weights with another model of the same architecture and config, once at load: "
                        "(1-W) x --model + W x MODEL, W from 0 to 1 (e.g. --mix bundled-real-x4=0.3 on bundled-x4: "
                        "30%% clean)")
    p.add_argument("--seamless", action="store_true",
                   help="wrap around at the image's borders (tileable textures stay tileable)")
    p.add_argument("--alpha", choices=ALPHA_MODES, default=ALPHA_MODES[0],
                   help="transparency resized with bicubic (default) or run through the model (3-4 dB better with "
                        "bundled-x4 on cut-outs, shadows and text; one more model pass per RGBA image)")
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.skip_existing and args.overwrite:  # usage errors: one line that points to --help, exit 2
        parser.error("--skip-existing and --overwrite exclude each other")
    if args.outscale is not None and args.outscale <= 0:
        parser.error("--outscale must be positive")
    from ..resize import check_final_size
    try:
        check_final_size(args.outscale, args.width, args.height)
    except SettingError as e:
        parser.error(e.flag())
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: finished outputs are complete; no partial files were left", file=sys.stderr)
        return 130


def run(args) -> int:
    """Restore ``args.inputs`` into ``args.output`` (parsed by :func:`build_parser`); returns the exit code.

    1. Plan, before any model work: every input once, its output (a collision stops the run), the video
       encoder settings, each job's kind and this rank's share, what is done already and what killed
       runs left behind.
    2. Load the model (only named if there is nothing to do), and check that the outputs can be written.
    3. Restore this rank's share, joining the slices of videos across ranks.
    4. Say what every rank did, in one line.
    """
    if args.skip_existing and args.overwrite:
        return fail("--skip-existing and --overwrite exclude each other", args.debug)
    if args.outscale is not None and args.outscale <= 0:
        return fail("--outscale must be positive", args.debug)
    from ..resize import check_final_size
    try:
        check_final_size(args.outscale, args.width, args.height)
    except SettingError as e:
        return fail(e.flag(), args.debug)

    if args.ext == "jxl" and jxl_problem():
        return fail(f"--ext jxl: {jxl_problem()}", args.debug)
    configure_pillow(args.max_pixels)
    d = distributed.join(args.device)
    plan = Plan(args, d.rank, d.world_size)
    problem = plan.destinations() or plan.encoders()
    if problem:
        return fail(problem, args.debug)
    plan.share()

    restorer, code = load_model(args, plan.todo)
    if code is not None:
        return code
    problem = plan.check_outputs(restorer) if plan.todo else None
    if problem:
        return fail(problem, args.debug)

    from .. import threads
    load_before = threads.load_average()  # the others' load: ours is not in it yet
    start = time.perf_counter()
    Batch(restorer, args, plan.summary, d.rank, d.world_size).run(d, plan.todo)
    single = d.world_size == 1 and len(plan.todo) == 1 and plan.todo[0].segment is None
    seconds = time.perf_counter() - start
    code = plan.summary.report(d, seconds, plan.todo[0].dst if single else args.output)
    if (restorer is not None and restorer.device.type == "cpu" and args.threads is None and d.rank == 0
            and seconds >= threads.SLOW_RUN):  # a slow run on a busy machine: one thread is several times faster
        hint = threads.busy_hint(restorer.threads, load_before)
        if hint:
            print(hint, file=sys.stderr)
    distributed.cleanup(d, wait=True)
    return code


def load_model(args, todo: List[Job]) -> Tuple[Optional[object], Optional[int]]:
    """The restorer for ``todo``, or with nothing to do none, only the model's name checked (a re-run of a
    finished job works offline); and the exit code if it cannot be had (said in one line)."""
    from ..engine import Restorer, SettingError

    spec = args.model
    if not todo:
        from ..zoo import unknown_spec
        reason = unknown_spec(spec)
        return None, (fail(f"cannot load model {spec!r}: {reason}", args.debug) if reason else None)
    try:
        return Restorer(spec, tile=args.tile, tile_overlap=args.tile_overlap, precision=args.precision,
                        device=distributed.rank_device(args.device), self_ensemble=args.self_ensemble,
                        progress=True, weights_dir=args.weights_dir, seamless=args.seamless, alpha=args.alpha,
                        mix=args.mix, threads=args.threads), None
    except SettingError as err:  # checked before the model is loaded: the setting is the cause
        return None, fail(err.flag(), args.debug)
    except Exception as err:  # noqa: BLE001 - one line for any model problem
        return None, fail(f"cannot load model {spec!r}: {err}", args.debug)
