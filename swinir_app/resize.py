"""The final size after the model: a scale, or a width and/or height, checked in one place, and the Lanczos
resize to it (``--outscale``, ``--width``, ``--height``; the web app's output scale)."""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from .errors import SettingError

__all__ = ["MAX_RESIZE", "check_final_size", "final_size", "resize_lanczos"]

MAX_RESIZE = 16  # --width/--height: at most this many times the input's side, at least 1/this


def check_final_size(outscale: Optional[float] = None, width: Optional[int] = None,
                     height: Optional[int] = None) -> None:
    """Refuse, in one line (:class:`SettingError`), final-size settings that cannot go together: a scale
    with a width or height, and values below 1."""
    if outscale is not None and (width is not None or height is not None):
        raise SettingError("outscale", outscale, "give a scale or a width/height, not both")
    if outscale is not None and outscale <= 0:
        raise SettingError("outscale", outscale, "must be positive")
    for name, v in (("width", width), ("height", height)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SettingError(name, v, "must be a whole number of pixels, at least 1")


def final_size(h: int, w: int, scale: int, outscale: Optional[float] = None, width: Optional[int] = None,
               height: Optional[int] = None, name: str = "the image") -> Tuple[int, int]:
    """(height, width) of the output of an h x w input: the model's (``scale`` times), or ``outscale``
    times the input, or ``width`` and/or ``height`` in pixels (one of them keeps the aspect ratio; both give
    exactly that size). The front ends resize the model's output to it with :func:`resize_lanczos`.

    Raises :class:`SettingError` for settings that cannot go together (see :func:`check_final_size`), and
    for a size over :data:`MAX_RESIZE` times the input's side or under 1/:data:`MAX_RESIZE` of it.
    """
    check_final_size(outscale, width, height)
    if outscale is not None:
        return max(1, round(h * outscale)), max(1, round(w * outscale))
    if width is None and height is None:
        return h * scale, w * scale
    out_w = width if width is not None else max(1, round(w * height / h))
    out_h = height if height is not None else max(1, round(h * width / w))
    for setting, size, side in (("width", out_w, w), ("height", out_h, h)):
        if not side / MAX_RESIZE <= size <= side * MAX_RESIZE:
            value = width if setting == "width" else height
            raise SettingError(setting if value is not None else ("height" if setting == "width" else "width"),
                               value if value is not None else (height if setting == "width" else width),
                               f"{name} is {w}x{h}: a {out_w}x{out_h} output is more than {MAX_RESIZE}x "
                               f"{'larger' if size > side else 'smaller'} along its {setting}")
    return out_h, out_w


def resize_lanczos(a: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Resize uint8/uint16 HxW(xC) pixels to ``size_hw`` (height, width) with Lanczos (OpenCV's 8x8),
    rounded and clipped to the dtype: the ``outscale`` step after the model."""
    if a.shape[:2] == tuple(size_hw):
        return a
    f = cv2.resize(a.astype(np.float32), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LANCZOS4)
    peak = np.iinfo(a.dtype).max
    return np.clip(np.round(f), 0, peak).astype(a.dtype)
