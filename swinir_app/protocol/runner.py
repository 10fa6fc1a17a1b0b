"""The official test script's way from an LQ image to a scored output: pad, model, crop, round.

Evaluation runs models through it (via the engine), and so does training's validation, so a number
logged during training is the number ``evaluate`` gives for the same weights.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from .metrics import to_uint8

PADDING = "official mirror padding: always pad to the next window multiple (flip-concatenate), crop output"


def official_pad(x: Tensor, window_size: int) -> Tensor:
    """Pad (B,C,H,W) at the bottom/right to the next multiple of ``window_size`` by flip-concatenation.

    The official test script always pads (a multiple still gets a whole window more), and the padded
    pixels are the context of the border pixels, so this is part of the protocol.
    """
    for dim in (2, 3):
        size = x.shape[dim]
        target = (size // window_size + 1) * window_size
        while x.shape[dim] < target:  # one flip suffices unless the image is smaller than a window
            x = torch.cat([x, torch.flip(x, [dim])], dim)
        x = x.narrow(dim, 0, target)
    return x


def to_tensor(img: np.ndarray) -> Tensor:
    """HxW or HxWxC uint8 (or float in [0, 1]) -> (1, C, H, W) float32 in [0, 1]."""
    arr = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def run_official(model: Callable[[Tensor], Tensor], lq: np.ndarray, scale: int,
                 window_size: Optional[int]) -> np.ndarray:
    """``lq`` (uint8, or float in [0, 1] for noisy inputs) through ``model`` as the official script does.

    ``model`` maps a (1, C, H', W') float tensor to its (1, C, H'*scale, W'*scale) output; the input is
    mirror-padded (:func:`official_pad`; not with ``window_size=None``), the output cropped back and rounded
    with :func:`to_uint8`.
    """
    x = to_tensor(lq)
    h, w = x.shape[-2:]
    with torch.inference_mode():
        y = model(x if window_size is None else official_pad(x, window_size))[..., :h * scale, :w * scale]
    return to_uint8(y)
