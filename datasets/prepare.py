"""Prepare training data: MATLAB-bicubic LR, sub-images, meta-info files and lmdb (BasicSR formats).

    python datasets/prepare.py sr --hr datasets/DIV2K/DIV2K_train_HR [--lr datasets/DIV2K/DIV2K_train_LR_bicubic]
                                 --out datasets/DIV2K --scales 2 3 4 [--crop-size 480 --step 240] [--lmdb]
    python datasets/prepare.py bicubic HR_DIR OUT_DIR --scale 4       # LR_bicubic/X4/<name>x4.png
    python datasets/prepare.py extract IN_DIR OUT_DIR [--crop-size 480 --step 240 --thresh-size 0]
    python datasets/prepare.py meta-info IN_DIR OUT.txt               # "<name> (h,w,c)" per line
    python datasets/prepare.py lmdb IN_DIR OUT.lmdb [--compress 1]    # keys = names, meta_info.txt inside

``extract`` is BasicSR's ``extract_subimages.py`` (overlapping crop_size tiles every ``step`` pixels, plus
a last tile flush with the border when more than ``thresh_size`` pixels are left). ``sr`` does the same
for HR and LR at once, on a grid that is a multiple of every scale, so that LR tile ``i`` is exactly the
1/scale of HR tile ``i`` (BasicSR's separate runs drift when a size is not a multiple of the scale).
Missing LR folders are made with MATLAB bicubic (``--lr`` omitted, or without an X<k> folder).
Every file is written atomically; existing outputs are kept (re-running resumes).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial, reduce
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

import cv2
import numpy as np

from swinir_app.cli import Parser, fail
from swinir_app.protocol.degrade import bicubic_downscale
from swinir_app.protocol.inputs import ImageError, find_lq, list_images
from swinir_app.images import atomic_write


class PrepareError(Exception):
    """A folder or image this script cannot use; one line, exit 2."""


def read(path: Path) -> np.ndarray:
    """Pixels as stored (BGR/gray, 8 or 16 bit), like BasicSR's IMREAD_UNCHANGED."""
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PrepareError(f"{path}: not a readable image")
    return img


def write_png(path: Path, img: np.ndarray, compress: int = 3) -> None:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, compress])
    if not ok:
        raise PrepareError(f"cannot encode {path}")
    atomic_write(path, buf.tobytes())


def positions(size: int, crop: int, step: int, thresh: int = 0) -> List[int]:
    """BasicSR's tile starts: every ``step``, plus one flush with the end if more than ``thresh`` is left."""
    if size < crop:
        return []
    starts = list(range(0, size - crop + 1, step))
    if size - (starts[-1] + crop) > thresh:
        starts.append(size - crop)
    return starts


def strip_scale(stem: str) -> str:
    """``0001x4`` -> ``0001``: LR tiles are named like their HR tiles."""
    return re.sub(r"x\d+$", "", stem)


def unique_names(files: Sequence[Path], name: Callable[[Path], str], what: str) -> List[Path]:
    """``files``, or PrepareError when two of them would be written under one name (``photo.png`` and
    ``photo.jpg``): one would overwrite or be skipped for the other. Checked before anything is written."""
    seen: dict = {}
    for path in files:
        first = seen.setdefault(name(path), path)
        if first is not path:
            raise PrepareError(f"{first} and {path} would both be written as {what.format(name(path))}; "
                               f"rename or move one (nothing was written)")
    return list(files)


# ---------------------------------------------------------------------------------------------
# Commands


def extract_one(path: Path, out: Path, crop: int, step: int, thresh: int, compress: int) -> int:
    img = read(path)
    h, w = img.shape[:2]
    name = strip_scale(path.stem)
    index = 0
    for y in positions(h, crop, step, thresh):
        for x in positions(w, crop, step, thresh):
            index += 1
            target = out / f"{name}_s{index:03d}.png"
            if not target.exists():
                write_png(target, np.ascontiguousarray(img[y:y + crop, x:x + crop]), compress)
    return index


def extract(src: Path, out: Path, crop: int = 480, step: int = 240, thresh: int = 0, compress: int = 3,
            workers: int = 1) -> int:
    """Sub-images of every image in ``src`` into ``out``; returns how many."""
    files = unique_names(list_images(src), lambda p: strip_scale(p.stem), "the tiles {}_s*.png")
    out.mkdir(parents=True, exist_ok=True)
    job = partial(extract_one, out=out, crop=crop, step=step, thresh=thresh, compress=compress)
    return sum(_map(job, files, workers))


def bicubic_one(path: Path, out: Path, scale: int) -> None:
    target = out / f"{path.stem}x{scale}.png"
    if target.exists():
        return
    img = read(path)
    if img.dtype != np.uint8:
        raise PrepareError(f"{path}: only 8-bit images are downscaled here")
    _, lr = bicubic_downscale(img, scale)  # channel order does not matter to a per-channel resize
    write_png(target, lr)


def bicubic(src: Path, out: Path, scale: int, workers: int = 1) -> int:
    """``out/<name>x<scale>.png``: the MATLAB-bicubic 1/scale of every image in ``src``."""
    files = unique_names(list_images(src), lambda p: p.stem, f"{{}}x{scale}.png")
    out.mkdir(parents=True, exist_ok=True)
    list(_map(partial(bicubic_one, out=out, scale=scale), files, workers))
    return len(files)


def find_lr(folder: Path, path: Path, scale: int) -> Optional[Path]:
    """The LR of ``path`` in ``folder`` (the benchmark naming <stem>x<scale>, or <stem>), or None."""
    try:
        return find_lq(folder, path, scale)
    except ImageError:
        return None


def sr_one(path: Path, lr_dirs: dict, out: Path, crop: int, step: int, compress: int) -> int:
    """Aligned HR and LR tiles of one image; returns the number of tiles."""
    hr = read(path)
    unit = reduce(lambda a, b: a * b // math.gcd(a, b), lr_dirs, 1)  # lcm of the scales
    h, w = hr.shape[0] // unit * unit, hr.shape[1] // unit * unit
    lrs = {}
    for k, folder in lr_dirs.items():
        lr_path = find_lr(folder, path, k)
        if lr_path is None:
            raise PrepareError(f"{path}: no LR {path.stem}x{k} in {folder}")
        lr = read(lr_path)
        if lr.shape[0] < h // k or lr.shape[1] < w // k:
            raise PrepareError(f"{lr_path} is {lr.shape[1]}x{lr.shape[0]}, smaller than 1/{k} of {path}")
        lrs[k] = lr
    index = 0
    for y in positions(h, crop, step):
        for x in positions(w, crop, step):
            index += 1
            name = f"{path.stem}_s{index:03d}.png"
            if not (out / "HR_sub" / name).exists():
                write_png(out / "HR_sub" / name, np.ascontiguousarray(hr[y:y + crop, x:x + crop]), compress)
            for k, lr in lrs.items():
                target = out / "LR_bicubic_sub" / f"X{k}" / name
                if not target.exists():
                    c = crop // k
                    write_png(target, np.ascontiguousarray(lr[y // k:y // k + c, x // k:x // k + c]), compress)
    return index


def sr(hr: Path, out: Path, scales: Sequence[int], lr: Optional[Path] = None, crop: int = 480, step: int = 240,
       compress: int = 3, workers: int = 1, lmdb: bool = False) -> int:
    """HR_sub/, LR_bicubic_sub/X<k>/ (aligned tiles), meta_info_HR_sub.txt, and lmdb copies if asked."""
    unit = reduce(lambda a, b: a * b // math.gcd(a, b), scales, 1)
    if crop % unit or step % unit:
        raise PrepareError(f"--crop-size {crop} and --step {step} must be multiples of {unit} "
                         f"(the scales' least common multiple) so that every tile has an exact LR")
    files = unique_names(list_images(hr), lambda p: p.stem, "the tiles {}_s*.png")
    lr_dirs = {}
    for k in scales:
        given = lr / f"X{k}" if lr is not None else None
        if given is None or not given.is_dir():
            given = out / "LR_bicubic" / f"X{k}"
            print(f"making MATLAB-bicubic x{k} LR images in {given}")
            bicubic(hr, given, k, workers)
        lr_dirs[k] = given
    (out / "HR_sub").mkdir(parents=True, exist_ok=True)
    for k in scales:
        (out / "LR_bicubic_sub" / f"X{k}").mkdir(parents=True, exist_ok=True)
    count = sum(_map(partial(sr_one, lr_dirs=lr_dirs, out=out, crop=crop, step=step, compress=compress),
                     files, workers))
    meta_info(out / "HR_sub", out / "meta_info_HR_sub.txt")
    if lmdb:
        make_lmdb(out / "HR_sub", out / "HR_sub.lmdb")
        for k in scales:
            make_lmdb(out / "LR_bicubic_sub" / f"X{k}", out / f"LR_bicubic_sub_X{k}.lmdb")
    print(f"{len(files)} images -> {count} tiles of {crop}px in {out / 'HR_sub'}")
    return count


def meta_info(src: Path, out: Path) -> int:
    """BasicSR's meta-info file: ``<name> (h,w,c)`` for every image in ``src``."""
    lines = []
    for path in list_images(src):
        img = read(path)
        c = 1 if img.ndim == 2 else img.shape[2]
        lines.append(f"{path.name} ({img.shape[0]},{img.shape[1]},{c})")
    atomic_write(out, ("\n".join(lines) + "\n").encode())
    return len(lines)


def make_lmdb(src: Path, out: Path, compress: int = 1, batch: int = 5000) -> int:
    """BasicSR's lmdb: key = file stem, value = PNG bytes, ``meta_info.txt`` = ``<key>.png (h,w,c) <level>``."""
    import lmdb

    # BasicSR's keys are stems: photo.png and photo.jpg would be one entry, and one image trained twice.
    files = unique_names(list_images(src), lambda p: p.stem, "the lmdb key {!r}")
    if not files:
        raise PrepareError(f"no images in {src}")
    if (out / "data.mdb").exists():
        raise PrepareError(f"{out} exists; remove it to build it again")
    sample = cv2.imencode(".png", read(files[0]), [cv2.IMWRITE_PNG_COMPRESSION, compress])[1]
    out.mkdir(parents=True, exist_ok=True)  # lmdb makes the folder, not its parents
    env = lmdb.open(str(out), map_size=max(sample.nbytes * len(files) * 10, 1 << 24))
    lines = []
    txn = env.begin(write=True)
    for i, path in enumerate(files):
        img = read(path)
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, compress])
        txn.put(path.stem.encode(), buf.tobytes())
        c = 1 if img.ndim == 2 else img.shape[2]
        lines.append(f"{path.stem}.png ({img.shape[0]},{img.shape[1]},{c}) {compress}")
        if (i + 1) % batch == 0:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
    atomic_write(out / "meta_info.txt", ("\n".join(lines) + "\n").encode())
    return len(files)


def _map(fn, items: Iterable, workers: int):
    items = list(items)
    if workers <= 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=4))


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python datasets/prepare.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sr", help="aligned HR/LR sub-images, meta-info and (--lmdb) lmdb for SR training")
    s.add_argument("--hr", type=Path, required=True, help="HR images (DIV2K_train_HR, or a DF2K folder)")
    s.add_argument("--lr", type=Path, help="a folder with X2/X3/... LR folders; missing scales are made")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    s.add_argument("--lmdb", action="store_true", help="also build HR_sub.lmdb and LR_bicubic_sub_X<k>.lmdb")
    for q in (s,):
        q.add_argument("--crop-size", type=int, default=480)
        q.add_argument("--step", type=int, default=240)
    e = sub.add_parser("extract", help="BasicSR's extract_subimages for one folder")
    e.add_argument("input", type=Path)
    e.add_argument("output", type=Path)
    e.add_argument("--crop-size", type=int, default=480)
    e.add_argument("--step", type=int, default=240)
    e.add_argument("--thresh-size", type=int, default=0)
    b = sub.add_parser("bicubic", help="MATLAB-bicubic LR images <name>x<k>.png")
    b.add_argument("input", type=Path)
    b.add_argument("output", type=Path)
    b.add_argument("--scale", type=int, required=True)
    m = sub.add_parser("meta-info", help="a BasicSR meta-info file for a folder")
    m.add_argument("input", type=Path)
    m.add_argument("output", type=Path)
    db = sub.add_parser("lmdb", help="a BasicSR lmdb of a folder")
    db.add_argument("input", type=Path)
    db.add_argument("output", type=Path)
    for q in (s, e, b, db):
        q.add_argument("--compress", type=int, default=3 if q is not db else 1, help="PNG compression level")
    for q in (s, e, b):
        q.add_argument("--workers", type=int, default=1, help="processes")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    for folder in [getattr(a, "input", None), getattr(a, "hr", None)]:
        if folder is not None and not folder.is_dir():
            return fail(f"no such folder: {folder}")
    try:
        return _run(a)
    except PrepareError as e:
        return fail(str(e))


def _run(a: argparse.Namespace) -> int:
    if a.command == "sr":
        sr(a.hr, a.out, a.scales, a.lr, a.crop_size, a.step, a.compress, a.workers, a.lmdb)
    elif a.command == "extract":
        n = extract(a.input, a.output, a.crop_size, a.step, a.thresh_size, a.compress, a.workers)
        print(f"{n} sub-images in {a.output}")
    elif a.command == "bicubic":
        print(f"{bicubic(a.input, a.output, a.scale, a.workers)} images downscaled x{a.scale} into {a.output}")
    elif a.command == "meta-info":
        print(f"{meta_info(a.input, a.output)} lines in {a.output}")
    else:
        print(f"{make_lmdb(a.input, a.output, a.compress)} images in {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
