"""``python app.py`` (or ``python -m swinir_app.webui``, ``swinir-app web``): the web app's command line."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from typing import List, Optional

from ..cli import Parser, add_model, add_threads, fail
from ..engine import DEFAULT_MODEL, DEVICES, SettingError
from ..errors import UserError
from ..images import configure_pillow
from .middleware import BodyLimit, UploadQuota
from .service import WebApp
from .settings import (DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS,
                       DEFAULT_MAX_REQUEST_PIXELS, DEFAULT_MAX_REQUEST_SECONDS, DEFAULT_MAX_TEMP_SIZE,
                       DEFAULT_MAX_VIDEO_FRAMES, DEFAULT_MAX_VIDEO_SECONDS, AppConfig, parse_size)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python app.py", description="The SwinIR web upscaler (Gradio).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true",
                   help="also open a temporary public gradio.live link (needs internet)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger input images (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE,
                   help=f"refuse larger uploads, e.g. 20mb or 1gb (default {DEFAULT_MAX_FILE_SIZE})")
    add_model(p, default=None, help=f"the model selected at start: zoo name, checkpoint file or training folder "
                                    f"(default: bundled-real-x4, for photos, else {DEFAULT_MODEL}, else the first "
                                    f"model available)")
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default: auto, the GPU if there is one)")
    add_threads(p)
    p.add_argument("--cache-models", type=int, default=2, metavar="N", help="models kept loaded (default 2)")
    p.add_argument("--models-dir", default=None, metavar="DIR",
                   help="checkpoint files and training folders users may pick, besides the bundled and zoo models "
                        "(default: the weights cache)")
    p.add_argument("--allow-any-model-path", action="store_true",
                   help="let users load any file this server can read by typing its path (local use only: a "
                        "remote user could read pieces of server files through the error messages)")
    p.add_argument("--allow-downloads", action="store_true",
                   help="let users trigger downloads of zoo models that are not cached yet")
    p.add_argument("--max-output-pixels", type=int, default=DEFAULT_MAX_OUTPUT_PIXELS,
                   help=f"refuse results larger than this (default {DEFAULT_MAX_OUTPUT_PIXELS:,})")
    p.add_argument("--max-batch-size", default=DEFAULT_MAX_BATCH_SIZE,
                   help=f"the images of one batch request, uncompressed, in all (default {DEFAULT_MAX_BATCH_SIZE})")
    p.add_argument("--max-video-seconds", type=float, default=DEFAULT_MAX_VIDEO_SECONDS, metavar="S",
                   help=f"refuse longer clips in the Video tab (default {DEFAULT_MAX_VIDEO_SECONDS:g})")
    p.add_argument("--max-temp-size", default=DEFAULT_MAX_TEMP_SIZE,
                   help=f"results and uploads kept on disk for all users (default {DEFAULT_MAX_TEMP_SIZE})")
    p.add_argument("--max-video-frames", type=int, default=DEFAULT_MAX_VIDEO_FRAMES, metavar="N",
                   help=f"stop a clip at this many decoded frames, whatever its header says "
                        f"(default {DEFAULT_MAX_VIDEO_FRAMES:,})")
    p.add_argument("--max-request-pixels", type=int, default=DEFAULT_MAX_REQUEST_PIXELS, metavar="N",
                   help=f"input and output pixels of one batch or clip, in all; the rest is not done "
                        f"(default {DEFAULT_MAX_REQUEST_PIXELS:,})")
    p.add_argument("--max-request-seconds", type=float, default=DEFAULT_MAX_REQUEST_SECONDS, metavar="S",
                   help=f"device time of one request; a longer one is stopped "
                        f"(default {DEFAULT_MAX_REQUEST_SECONDS:g})")
    return p


def port_problem(host: str, port: int) -> str:
    """Why this server could not listen on ``host:port`` ('' if it can): checked before the model loads."""
    if not 0 < port < 65536:
        return f"--port {port}: not a port number (1 to 65535)"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
            s.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"--port {port}: {host}:{port} is already in use (another server, or this app running); " \
                   f"choose another with --port"
        return f"--host {host} --port {port}: cannot listen there ({e.strerror or e})"
    return ""


def main(argv: Optional[List[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.max_pixels <= 0 or args.max_output_pixels <= 0 or args.max_video_seconds <= 0 or \
            args.max_video_frames <= 0 or args.max_request_pixels <= 0 or args.max_request_seconds <= 0:
        p.error("--max-pixels, --max-output-pixels, --max-video-seconds, --max-video-frames, --max-request-pixels "
                "and --max-request-seconds must be positive")
    sizes = {}
    for flag in ("max_file_size", "max_batch_size", "max_temp_size"):
        try:
            sizes[flag] = parse_size(getattr(args, flag))
        except ValueError as e:
            p.error(f"--{flag.replace('_', '-')}: {e}")
    problem = port_problem(args.host, args.port)
    if problem:
        return fail(problem)
    configure_pillow(args.max_pixels)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own startup checks
    try:
        app = WebApp(AppConfig(args.model, args.device, args.weights_dir, args.max_pixels, sizes["max_file_size"],
                               args.cache_models, args.models_dir, args.allow_any_model_path, args.allow_downloads,
                               args.max_output_pixels, sizes["max_batch_size"], sizes["max_temp_size"],
                               args.max_video_seconds, args.max_video_frames, args.max_request_pixels,
                               args.max_request_seconds, args.threads))
        if args.model:
            app.describe(app.default_spec)  # a bad --model fails now, not on the first click
    except SettingError as e:
        return fail(e.flag())
    except (UserError, ValueError) as e:
        return fail(str(e))
    if "GRADIO_TEMP_DIR" not in os.environ:
        # Gradio's cache (uploads, result copies) inside our folder: removed with it at exit, and counted in
        # the --max-temp-size quota. A cache the operator chose may be shared, and is neither.
        app.gradio_cache = app.workdir / "gradio"
        os.environ["GRADIO_TEMP_DIR"] = str(app.gradio_cache)
    from starlette.middleware import Middleware

    from .page import serve  # gradio: imported only when the server starts

    # docker stop and systemd send SIGTERM: shut down as on Ctrl-C, so the temp folders are removed.
    signal.signal(signal.SIGTERM, _interrupt)
    inline_limit = sizes["max_file_size"] * 4 // 3 + (1 << 20)  # an image as base64 in JSON, and the rest
    try:
        serve(app, host=args.host, port=args.port, share=args.share,
              middleware=[Middleware(BodyLimit, limit=inline_limit), Middleware(UploadQuota, webapp=app)])
    except OSError as e:
        if "Cannot find empty port" not in str(e):
            raise
        return fail(port_problem(args.host, args.port) or f"--port {args.port}: already in use; choose another")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
