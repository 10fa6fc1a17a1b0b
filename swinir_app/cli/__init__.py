"""What every command line shares: the parser, the common options defined once, one way to fail.

Front ends (``upscale``, ``evaluate``, ``convert``, ``models``, ``benchmark``, ``train``, ``webui``) are
leaves: they import this and the library, and nothing imports them. ``swinir-app`` dispatches to them
(:mod:`.main`).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple, Type

from ..engine import DEFAULT_MODEL, DEVICES, parse_tile
from ..errors import SettingError
from ..precision import PRECISIONS
from ..zoo import DEFAULT_HOME, HOME_ENV

__all__ = ["Parser", "add_debug", "add_device", "add_model", "add_threads", "add_tiles", "add_weights_dir", "fail",
           "one_line_errors"]


# The command as typed, set by ``swinir-app COMMAND`` (:mod:`.main`): usage lines then read
# ``swinir-app upscale ...`` instead of each front end's ``python -m swinir_app.upscale``.
command_name: Optional[str] = None


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ... (see swinir-app upscale --help)``, naming the
    command as typed) and exit code 2."""

    def __init__(self, *args, **kwargs):
        if command_name is not None:
            kwargs["prog"] = command_name
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_weights_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                   help=f"where zoo weights are cached (default: ${HOME_ENV} or {DEFAULT_HOME})")


def add_model(p: argparse.ArgumentParser, *, default: Optional[str] = DEFAULT_MODEL,
              help: Optional[str] = None) -> None:
    """-m/--model and --weights-dir."""
    what = "zoo name, openmodeldb:ID, checkpoint file (any architecture spandrel knows) or training folder"
    p.add_argument("-m", "--model", default=default,
                   help=help or f"{what} (default: {default})" if default else help or what)
    add_weights_dir(p)


def add_device(p: argparse.ArgumentParser, *, precision: str = "auto", precision_help: str = "") -> None:
    """--device and --precision, with their choices and defaults in --help."""
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default: auto, the GPU if there is one)")
    p.add_argument("--precision", default=precision, choices=PRECISIONS, help=precision_help or (
        "auto (default): the fastest accurate one here: bf16 on GPUs that have it and, for wide models, on AMX "
        "CPUs; fp16 on other CUDA GPUs; fp32 elsewhere. bf16 needs a CPU with native bf16; fp16 needs a GPU; "
        "int8 (CPUs, never picked by auto): the transformer linears in int8, faster, output within ~55 dB of fp32"))


def _tile(text: str):
    try:
        return parse_tile(text)
    except SettingError as e:
        raise argparse.ArgumentTypeError(f"{e.detail}, got {text!r}") from None


def add_tiles(p: argparse.ArgumentParser, *, default: Optional[str] = None, help: str = "") -> None:
    """--tile (auto, none or pixels) and --tile-overlap."""
    p.add_argument("--tile", type=_tile, default=default, metavar="N|auto|none",
                   help=help or "tile size in input pixels, 'auto' (from free memory) or 'none' (the whole image; "
                                "the default)")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="N",
                   help="tile overlap in input pixels (default: 32)")


def _threads(text: str) -> int:
    from ..threads import check_threads
    try:
        return check_threads(int(text))
    except ValueError as e:  # int() and SettingError (a ValueError) alike
        detail = e.detail if isinstance(e, SettingError) else "not a whole number"
        raise argparse.ArgumentTypeError(f"{detail}, got {text!r}") from None


def add_threads(p: argparse.ArgumentParser) -> None:
    """--threads N: CPU threads for PyTorch and ONNX Runtime, checked at parse time (exit 2, one line)."""
    from ..threads import allowed_cores
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help=f"CPU threads (default: the cores this process may use, {allowed_cores()} here, or fewer "
                        f"if OMP_NUM_THREADS says so); on a machine busy with other work --threads 1 is faster")


def add_debug(p: argparse.ArgumentParser, help: str = "show tracebacks instead of one-line errors") -> None:
    p.add_argument("--debug", action="store_true", help=help)


def fail(message: str, debug: bool = False, code: int = 2) -> int:
    """Print ``error: message`` (and, with --debug, the traceback being handled); return ``code``."""
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


@contextmanager
def one_line_errors(debug: bool, errors: Tuple[Type[BaseException], ...], code: int = 2) -> Iterator[None]:
    """``errors`` raised in the block become one line on stderr and ``SystemExit(code)``; with --debug,
    they propagate with their traceback. A :class:`SettingError` names its command-line flag. Front ends
    pass :class:`~swinir_app.errors.UserError` (every one-line error of the package) and what else they expect."""
    try:
        yield
    except errors as e:
        if debug:
            raise
        print(f"error: {e.flag() if isinstance(e, SettingError) else e}", file=sys.stderr)
        raise SystemExit(code) from None
