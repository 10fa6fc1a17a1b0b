"""Seamless (tileable) restoration: wrap-around context at an image's borders.

The engine pads a tileable image with its own opposite edges (circularly) before the model, and crops the
output: the pixels at each border then see the context they will meet when the result is tiled, instead of
a reflection, so a tileable input gives a tileable output. The networks' own padding to a window multiple
(a reflection) then falls on the margin, which is cropped.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

__all__ = ["SEAMLESS_CONTEXT", "wrap_pad", "wrap_padding"]

# Input pixels of wrapped context on each side: at least this, and at least 2 windows; measured enough for
# the bundled SwinIR (window 8) and a Compact CNN (the seam then matches the steps inside the image).
SEAMLESS_CONTEXT = 16


def wrap_padding(H: int, W: int, window: int = 1, context: int = SEAMLESS_CONTEXT) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) wrapped margins for an H x W image: whole windows of at least ``context``
    pixels (2 windows at least) before it, and after it enough more that the padded size is a whole number
    of windows (so the network adds no reflection of its own)."""
    window = max(1, window)
    before = math.ceil(max(context, 2 * window) / window) * window

    def after(n: int) -> int:
        return before + (-(n + 2 * before)) % window

    return before, after(H), before, after(W)


def wrap_pad(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """``x`` (..., H, W) padded circularly: the margins repeat the opposite edges (any width, even more than
    the image: a small texture is repeated as often as needed)."""
    H, W = x.shape[-2:]
    rows = torch.arange(-top, H + bottom) % H
    cols = torch.arange(-left, W + right) % W
    return x.index_select(-2, rows).index_select(-1, cols)
