"""``python -m swinir_app.train -opt options/x4.yml [--auto_resume] [--force_yml k:sub=v ...] [--debug]``.

Under torchrun: ``torchrun --nproc_per_node=N -m swinir_app.train -opt FILE --launcher pytorch``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from ..cli import Parser, one_line_errors
from ..distributed import LAUNCHERS
from ..errors import UserError
from ..options import load_options
from .trainer import Interrupted, TrainingError, train


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m swinir_app.train",
                description="Train SwinIR from a BasicSR-style options file (see options/ and the README).")
    p.add_argument("-opt", "--opt", required=True, metavar="YML", help="the training options file")
    p.add_argument("--launcher", choices=LAUNCHERS, default="none",
                   help="none: one process; pytorch: one rank of a torchrun job")
    p.add_argument("--auto_resume", "--auto-resume", action="store_true",
                   help="continue from the latest complete state in experiments/<name>/training_states")
    p.add_argument("--debug", action="store_true",
                   help="BasicSR's debug mode (debug_ name, log every iteration, validate and save every 8) "
                        "and tracebacks instead of one-line errors")
    p.add_argument("--force_yml", "--force-yml", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override options before they are checked, e.g. train:total_iter=1000 "
                        "datasets:train:batch_size_per_gpu=8")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        # any other user error stops it before (or outside) training proper: exit code 2, not 1
        with one_line_errors(args.debug, (UserError,)), one_line_errors(args.debug, (TrainingError,), code=1):
            opts = load_options(args.opt, args.force_yml, debug=args.debug)
            result = train(opts, launcher=args.launcher, auto_resume=args.auto_resume,
                           argv=["python -m swinir_app.train", *argv])
    except SystemExit as e:
        return int(e.code)
    except KeyboardInterrupt as e:  # Ctrl-C: where it stopped and how to go on, not a traceback
        if args.debug:
            raise
        print(str(e) if isinstance(e, Interrupted) else "interrupted before training started", file=sys.stderr)
        return 130
    return 0 if result is not None else 1


__all__: List[str] = ["build_parser", "main"]
