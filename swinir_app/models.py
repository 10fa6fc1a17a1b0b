"""List the models: ``swinir-app models`` (``python -m swinir_app.models``).

    swinir-app models                      what runs here (bundled, downloaded), then what can be downloaded
    swinir-app models --search TEXT        search OpenModelDB (its index is fetched once, then read offline)
    swinir-app models --refresh            fetch the OpenModelDB index again
    swinir-app models --describe MODEL     load a file (or any model spec) and say what was detected

The listing reads no weights: parameter counts of the official releases are tabled here, a cached file's
verdict is remembered beside it (:func:`~swinir_app.zoo.cache_problem`), and a model is checked in full only
when it is loaded.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import openmodeldb
from .cli import Parser, add_debug, add_weights_dir, one_line_errors
from .errors import UserError
from .zoo import ZOO, ZooEntry, all_entries, cache_problem, download, is_cached, param_count, weights_home

COLUMNS = ("name", "task", "scale", "params", "state", "arch", "description")
DOWNLOAD_COLUMNS = ("name", "task", "scale", "params", "state", "arch", "file")
SEARCH_COLUMNS = ("id", "arch", "scale", "licence", "runs", "description")
MAX_RESULTS = 60

# param_count() of each official release (it builds the network on the meta device: ~0.2 s each), so that
# the listing builds none; tests/test_zoo.py checks the table against param_count.
ZOO_PARAMS: Dict[str, int] = {
    "classical-x2": 11752487, "classical-x3": 11937127, "classical-x4": 11900199, "classical-x8": 12047911,
    "classical-div2k-x2": 11752487, "classical-div2k-x3": 11937127, "classical-div2k-x4": 11900199,
    "classical-div2k-x8": 12047911, "lightweight-x2": 910152, "lightweight-x3": 918267, "lightweight-x4": 929628,
    "real-x2": 11678631, "real-x4": 11715559, "real-x4-large": 28013059, "real-x4-psnr": 11715559,
    "gray-dn-15": 11497681, "gray-dn-25": 11497681, "gray-dn-50": 11497681, "color-dn-15": 11504163,
    "color-dn-25": 11504163, "color-dn-50": 11504163, "gray-jpeg-10": 11485585, "gray-jpeg-20": 11485585,
    "gray-jpeg-30": 11485585, "gray-jpeg-40": 11485585, "color-jpeg-10": 11492067, "color-jpeg-20": 11492067,
    "color-jpeg-30": 11492067, "color-jpeg-40": 11492067, "swin2sr-classical-x2": 12091571,
    "swin2sr-classical-x4": 12239283, "swin2sr-lightweight-x2": 1005348, "swin2sr-compressed-x4": 12244598,
    "swin2sr-real-x4-psnr": 12054643, "swin2sr-gray-jpeg": 11836765, "hat-x2": 20624795, "hat-x3": 20809435,
    "hat-x4": 20772507, "hat-x2-imagenet": 20624795, "hat-x3-imagenet": 20809435, "hat-x4-imagenet": 20772507,
    "hat-s-x2": 9473471, "hat-s-x3": 9658111, "hat-s-x4": 9621183, "hat-l-x2": 40698863, "hat-l-x3": 40883503,
    "hat-l-x4": 40846575, "real-hat-gan-x4": 20772507, "real-hat-gan-x4-sharper": 20772507,
    "dat-x2": 14654339, "dat-x3": 14838979, "dat-x4": 14802051,
}

# The licence of the native networks' upstream code (the weights may have their own).
NATIVE_LICENCES = {"SwinIR": "Apache-2.0", "Swin2SR": "Apache-2.0", "HAT": "MIT", "DAT": "Apache-2.0"}
TASKS = {"sr": "super-resolution", "denoise": "denoising", "jpeg": "JPEG artifact removal"}
_DESCRIPTIONS = (  # official releases: (name pattern, description); \1 is the pattern's first group
    (r"classical-x\d", "SwinIR-M, classical (bicubic) super-resolution, trained on DF2K"),
    (r"classical-div2k-x\d", "SwinIR-M, classical (bicubic) super-resolution, trained on DIV2K"),
    (r"lightweight-x\d", "SwinIR-S, lightweight classical super-resolution"),
    (r"real-x\d", "SwinIR-M, real-world photos (BSRGAN degradations), GAN: sharp"),
    (r"real-x4-large", "SwinIR-L, real-world photos (BSRGAN degradations), GAN: sharp"),
    (r"real-x4-psnr", "SwinIR-M, real-world photos (BSRGAN degradations), PSNR: smooth"),
    (r"gray-dn-(\d+)", r"SwinIR-M, grayscale denoising, noise level \1"),
    (r"color-dn-(\d+)", r"SwinIR-M, color denoising, noise level \1"),
    (r"gray-jpeg-(\d+)", r"SwinIR, grayscale JPEG artifact removal, quality \1"),
    (r"color-jpeg-(\d+)", r"SwinIR, color JPEG artifact removal, quality \1"),
    (r"swin2sr-classical-x\d", "Swin2SR, classical (bicubic) super-resolution"),
    (r"swin2sr-lightweight-x\d", "Swin2SR, lightweight classical super-resolution"),
    (r"swin2sr-compressed-x4", "Swin2SR, super-resolution of JPEG-compressed images"),
    (r"swin2sr-real-x4-psnr", "Swin2SR, real-world photos (BSRGAN degradations), PSNR: smooth"),
    (r"swin2sr-gray-jpeg", "Swin2SR, grayscale JPEG artifact removal, any quality"),
    (r"hat-x\d", "HAT, classical super-resolution"),
    (r"hat-x\d-imagenet", "HAT, classical super-resolution, ImageNet-pretrained"),
    (r"hat-s-x\d", "HAT-S (small), classical super-resolution"),
    (r"hat-l-x\d", "HAT-L (large), classical super-resolution, ImageNet-pretrained"),
    (r"real-hat-gan-x4", "Real-HAT GAN, real-world photos"),
    (r"real-hat-gan-x4-sharper", "Real-HAT GAN, real-world photos, sharper"),
)


def format_params(n: Optional[int]) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e6:.2f}M"


def entry_params(e: ZooEntry) -> int:
    """The entry's parameter count, without building its network where it can be had otherwise: the table
    of the official releases, the tensor shapes in a bundled file's header (it holds the parameters only)."""
    known = ZOO_PARAMS.get(e.name)
    if known is not None and ZOO.get(e.name) is e:
        return known
    if e.path is not None and e.path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            with safe_open(str(e.path), framework="pt") as f:
                return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        except Exception:  # noqa: BLE001 - a damaged header: count on the meta device
            pass
    return param_count(e.config)


def describe_entry(e: ZooEntry) -> str:
    """One line: the entry's own description (bundled models), else what the official release is."""
    if e.description:
        return openmodeldb.one_line(e.description, width=100)
    for pattern, text in _DESCRIPTIONS:
        if m := re.fullmatch(pattern, e.name):
            return m.expand(text)
    return f"{e.config.name}, {TASKS.get(e.task, e.task)} x{e.scale}"


def _state(e: ZooEntry, weights_dir: Optional[Path], problems: Optional[List[str]]) -> str:
    if e.path:
        return "bundled"
    if not is_cached(e, weights_dir):
        return "by hand" if e.manual else "no"
    problem = cache_problem(e, weights_dir)  # a file that is there but does not load is not "cached"
    if problem is None:
        return "cached"
    if problems is not None:
        problems.append(problem)
    return "unusable"


def rows(entries: Sequence[ZooEntry], weights_dir: Optional[Path] = None,
         problems: Optional[List[str]] = None) -> Tuple[List[tuple], List[tuple]]:
    """The rows of what runs here (bundled, then cached entries, then downloaded OpenModelDB models; with a
    description) and of what does not yet (to download, by hand, unusable; with the file name). Why each
    "unusable" cached file fails to load is appended to ``problems``."""
    here, elsewhere = [], []
    for e in entries:
        state = _state(e, weights_dir, problems)
        cells = (e.name, e.task, f"x{e.scale}", format_params(entry_params(e)), state, e.config.name)
        if state in ("bundled", "cached"):
            here.append((cells, describe_entry(e)))
        else:
            elsewhere.append((cells, e.filename))
    here.sort(key=lambda r: r[0][4] != "bundled")  # bundled first, then cached, each in zoo order
    home = weights_home(weights_dir)
    for model, path in openmodeldb.cached_models(home):
        here.append(((model.spec, "sr" if model.scale > 1 else "restore", f"x{model.scale}", "-", "cached",
                      openmodeldb.arch_name(model.architecture)), model.summary or "-"))
    return [(*c, d) for c, d in here], [(*c, f) for c, f in elsewhere]


def table(data: Sequence[tuple], columns: Sequence[str] = COLUMNS) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    lines = [tuple(columns), *data]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(columns))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def listing(weights_dir: Optional[Path]) -> int:
    problems: List[str] = []
    entries = all_entries()
    here, elsewhere = rows(entries, weights_dir, problems)
    home = weights_home(weights_dir)
    print("runs here (bundled, and downloaded into the cache):")
    print(table(here, COLUMNS))
    print("\nnot here yet (downloaded on first use, e.g. swinir-app upscale --model NAME; or placed by hand):")
    print(table(elsewhere, DOWNLOAD_COLUMNS))
    print(f"\ncache: {home}")
    for page in sorted({e.by_hand for e in entries if e.manual}):
        print(f"by hand: place the file in the cache folder under its name above; get it from {page}")
    date = openmodeldb.index_date(home)
    print(f"more: swinir-app models --search TEXT searches OpenModelDB's models (index "
          f"{'fetched ' + date if date else 'fetched on first search'}); use one with --model openmodeldb:ID")
    for problem in problems:
        print(f"unusable: {problem}")
    return 0


def search(text: str, weights_dir: Optional[Path], refresh: bool) -> int:
    home = weights_home(weights_dir)
    models = openmodeldb.load_index(home, download, refresh=refresh)
    found = openmodeldb.search(models, text) if text else []
    if text:
        if found:
            print(table([openmodeldb.describe_row(m) for m in found[:MAX_RESULTS]], SEARCH_COLUMNS))
        more = (f", {len(found) - MAX_RESULTS} more not shown: add words to narrow it" if len(found) > MAX_RESULTS
                else "")
        print(f"\n{len(found)} of {len(models)} OpenModelDB models match {text!r}{more}")
        if found:
            print("use one with --model openmodeldb:ID (downloaded on first use; runs: no = an architecture this "
                  "product cannot run)")
    else:
        print(f"OpenModelDB index: {len(models)} models, fetched {openmodeldb.index_date(home)}, in "
              f"{openmodeldb.folder(home)}")
    return 0


def describe(spec: str, weights_dir: Optional[Path]) -> int:
    """What ``spec`` loads as: from the model's ``capabilities`` and its parameters (any architecture)."""
    from .zoo import load_model, spec_file

    path = spec_file(spec, weights_dir)
    model = load_model(path, weights_dir=weights_dir)
    caps = model.capabilities
    info = getattr(model, "info", None) or {}  # what spandrel detected; the native networks have none
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    found = openmodeldb.by_path(weights_home(weights_dir), Path(path))
    licence = (found.license if found else None) or info.get("licence") or info.get("code_licence") or \
        NATIVE_LICENCES.get(caps.arch)
    if found and found.license:
        licence = f"{found.license} (the model's, from OpenModelDB)"
    elif licence:
        licence = f"{licence} (the architecture's code; the weights may have their own)"
    lines = [("model", str(spec) if str(spec) == str(path) else f"{spec} ({path})"),
             ("architecture", caps.arch + (f" ({info['loader']})" if info.get("loader") else "")),
             ("task", f"{caps.task} ({TASKS.get(caps.task, caps.task)})"),
             ("scale", f"x{caps.scale}"),
             ("parameters", f"{format_params(params)} ({params:,})" if params else "unknown"),
             ("channels", f"{caps.in_chans} in, {caps.out_chans} out"),
             ("input size", f"at most {caps.fixed_size[0]}x{caps.fixed_size[1]}" if caps.fixed_size
              else f"any (padded to a multiple of {caps.size_multiple})" if caps.size_multiple > 1 else "any"),
             ("precisions", ", ".join(caps.precisions)),
             ("tiling", caps.tiling),
             ("licence", licence or "unknown")]
    if config is not None:
        lines.append(("config", ", ".join(f"{k}={v}" for k, v in config.to_dict().items())))
    if found is not None:
        lines.append(("openmodeldb", f"{found.id}: {found.name} by {found.author}; {found.summary}"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key + ':':<{width + 1}} {value}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m swinir_app.models",
                    description="List the models: what runs here (bundled and downloaded), then what can be "
                                "downloaded; search OpenModelDB; describe a model file.")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--search", metavar="TEXT",
                      help="search OpenModelDB's models by name, author, tags, description and architecture "
                           "(every word, any case); its index is fetched once, then read offline")
    what.add_argument("--describe", metavar="MODEL",
                      help="load a model file (or any model spec) and print what was detected")
    parser.add_argument("--refresh", action="store_true", help="fetch the OpenModelDB index again")
    add_weights_dir(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    with one_line_errors(args.debug, (UserError, OSError)):
        if args.describe is not None:
            return describe(args.describe, args.weights_dir)
        if args.search is not None or args.refresh:
            return search(args.search or "", args.weights_dir, args.refresh)
        return listing(args.weights_dir)


if __name__ == "__main__":
    sys.exit(main())
