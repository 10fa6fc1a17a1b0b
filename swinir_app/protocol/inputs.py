"""Images read as the official SwinIR test script reads them, and the files of a benchmark set.

OpenCV decoding (not Pillow: the two differ in JPEG decoding and gray conversion), uint8, RGB order
for color. The same reader feeds evaluation, training data and validation, and dataset preparation.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np

from ..errors import UserError
from ..files import FileReadError, read_regular_file
from ..images import IMAGE_EXTENSIONS
from .metrics import bt601_y

PathLike = Union[str, os.PathLike]

MODES = ("color", "gray", "y")
MAX_FILE_BYTES = 1 << 30  # an image file (or list) this large is refused rather than read into memory


def read_file(path: PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``: a pipe, device or socket is refused
    without blocking (a FIFO would hang, /dev/zero fill memory). Raises :class:`ImageError` (one line)."""
    try:
        return read_regular_file(Path(path), str(path), max_bytes)
    except FileReadError as e:
        raise ImageError(f"{path}: {e.reason}") from None


class ImageError(UserError):
    """One image that cannot be used; ``str()`` is one line naming the file and the reason."""


def decode(data: bytes, mode: str, label: str) -> np.ndarray:
    """Encoded bytes -> uint8 pixels as the official scripts read them.

    ``mode``: 'color' -> RGB HxWx3; 'gray' -> HxW (OpenCV's gray conversion); 'y' -> HxW, a gray file
    as it is and a color one as its rounded BT.601 Y (the official gray JPEG input). Raises
    :class:`ImageError` naming ``label``.
    """
    buf = np.frombuffer(data, np.uint8)
    if mode == "y":
        raw = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
        if raw is not None and raw.ndim == 3:
            return np.clip(bt601_y(decode(data, "color", label)).round(), 0, 255).astype(np.uint8)
        mode = "gray"
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR if mode == "color" else cv2.IMREAD_GRAYSCALE) if buf.size else None
    if img is None:
        raise ImageError(f"{label}: not a readable image")
    return np.ascontiguousarray(img[:, :, ::-1]) if mode == "color" else img


def read(path: PathLike, mode: str) -> np.ndarray:
    """The image file at ``path`` (:func:`read_file`) through :func:`decode`. Raises :class:`ImageError`."""
    return decode(read_file(path), mode, str(path))


def list_images(folder: PathLike) -> List[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_lq(lq_dir: PathLike, gt_path: PathLike, scale: int, template: Optional[str] = None) -> Path:
    """The LQ file for ``gt_path``: ``template.format(stem)`` if given, else ``<stem>x<scale>`` (the
    benchmark naming) or ``<stem>``, with the GT's extension first, then any image extension.
    Raises :class:`ImageError` when there is none."""
    gt_path = Path(gt_path)
    stems = [template.format(gt_path.stem)] if template else [f"{gt_path.stem}x{scale}", gt_path.stem]
    for stem in stems:
        for ext in (gt_path.suffix, *IMAGE_EXTENSIONS):
            candidate = Path(lq_dir) / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
    raise ImageError(f"{gt_path}: no LQ file {' or '.join(s + '.*' for s in stems)} in {lq_dir}")


def dataset_name(gt: PathLike) -> str:
    """'Set5' for Set5/HR or Set14/HR_x4: benchmark GT folders are named after their role, not the set."""
    gt = Path(gt).resolve()
    return gt.parent.name if re.fullmatch(r"(?i)(hr|gt)(_?x\d+)?|original|ground_?truth", gt.name) else gt.name
