"""The degradations of the paper's protocol, made from a clean image: one implementation each.

Evaluation makes its inputs with them, training makes its LQ patches with them, and the web app's
"add noise first" / "compress first" uses them, so the three agree.
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from .._basicsr import imresize
from .inputs import ImageError


def bicubic_downscale(gt: np.ndarray, scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """(GT cropped to a multiple of ``scale``, its MATLAB-bicubic 1/scale LQ rounded to uint8)."""
    h, w = gt.shape[0] // scale * scale, gt.shape[1] // scale * scale
    gt = gt[:h, :w]
    lq = imresize(gt.astype(np.float32) / 255.0, 1.0 / scale)
    return gt, (np.clip(lq, 0, 1) * 255.0).round().astype(np.uint8)


def bicubic_upscale(lq: np.ndarray, scale: int) -> np.ndarray:
    """The no-weights baseline: MATLAB bicubic x``scale`` of a uint8 image, rounded to uint8."""
    out = imresize(lq.astype(np.float32) / 255.0, scale)
    return (np.clip(out, 0, 1) * 255.0).round().astype(np.uint8)


def noisy_input(gt: np.ndarray, sigma: float, seed: Optional[int] = 0,
                rng: Optional[np.random.Generator] = None, gray: bool = False) -> np.ndarray:
    """``gt`` in [0, 1] (uint8 or uint16) plus Gaussian noise of std ``sigma``/255, float32, neither
    clipped nor rounded.

    With ``seed`` (evaluation), as the official test script: a generator reseeded with ``seed`` for
    every image, the noise drawn in OpenCV's BGR channel order, so the numbers match its tables. With
    ``rng`` (training patches), float32 noise from that generator. ``gray`` draws one noise plane for all
    channels (Real-ESRGAN's gray noise: what a gray photo given to a color model carries); with ``seed``,
    the plane the official script would draw for the gray image.
    """
    peak = float(np.iinfo(gt.dtype).max)
    img = gt.astype(np.float32) / np.float32(peak)
    if rng is not None:
        shape = gt.shape[:2] + (1,) if gray and gt.ndim == 3 else gt.shape
        return img + rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
    if gray and gt.ndim == 3:
        noise = np.random.RandomState(seed).normal(0, sigma / 255.0, gt.shape[:2])[:, :, None]
    else:
        bgr = gt[:, :, ::-1] if gt.ndim == 3 else gt
        noise = np.random.RandomState(seed).normal(0, sigma / 255.0, bgr.shape)
        noise = noise[:, :, ::-1] if gt.ndim == 3 else noise
    return np.ascontiguousarray(img + noise, dtype=np.float32)


def jpeg_input(gt: np.ndarray, quality: int) -> np.ndarray:
    """``gt`` (RGB or gray uint8) encoded by OpenCV as JPEG at ``quality`` (1-100) and decoded."""
    img = gt[:, :, ::-1] if gt.ndim == 3 else gt
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ImageError("OpenCV could not JPEG-encode the image")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if gt.ndim == 3 else cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out[:, :, ::-1]) if gt.ndim == 3 else out


def quantize(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float pixels in [0, 1] to ``dtype`` (uint8 or uint16): clipped and rounded, as an image file holds them."""
    peak = float(np.iinfo(dtype).max)
    return np.clip(np.round(x.astype(np.float64) * peak), 0, peak).astype(dtype)


REALISTIC = "blur:1.5,noise:10,jpeg:50"  # a fixed real-world-like LQ for x4 models: blur, downscale, noise, JPEG


def parse_realistic(spec: str) -> Tuple[float, float, int]:
    """``"blur:1.5,noise:10,jpeg:50"`` -> (blur sigma in HR pixels, noise sigma on 0-255, JPEG quality).
    Raises ValueError naming the part that is wrong."""
    parts = {}
    for item in spec.split(","):
        key, _, value = item.strip().partition(":")
        if key not in ("blur", "noise", "jpeg") or not value:
            raise ValueError(f"{item.strip()!r}: expected blur:SIGMA, noise:SIGMA and jpeg:QUALITY")
        parts[key] = float(value)
    blur, noise, jpeg = parts.get("blur", 0.0), parts.get("noise", 0.0), parts.get("jpeg", 100.0)
    if blur < 0 or noise < 0 or not 1 <= jpeg <= 100 or jpeg != int(jpeg):
        raise ValueError(f"{spec!r}: blur and noise must be >= 0, jpeg a quality in 1..100")
    return blur, noise, int(jpeg)


def realistic_downscale(gt: np.ndarray, scale: int, spec: str = REALISTIC,
                        seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(GT cropped to a multiple of ``scale``, its LQ): a Gaussian blur of the uint8 GT (OpenCV, sigma in HR
    pixels, mirrored borders), MATLAB bicubic 1/scale, Gaussian noise (a generator reseeded with ``seed`` for
    every image), rounding to uint8, then OpenCV JPEG. A fixed stand-in for real photos, for comparing models
    trained on synthetic degradations."""
    blur, noise, quality = parse_realistic(spec)
    h, w = gt.shape[0] // scale * scale, gt.shape[1] // scale * scale
    gt = gt[:h, :w]
    x = gt.astype(np.float32) / 255.0
    if blur > 0:
        x = cv2.GaussianBlur(x, (0, 0), blur, borderType=cv2.BORDER_REFLECT_101)
    lq = imresize(x, 1.0 / scale)
    if noise > 0:
        lq = lq + np.random.default_rng(seed).normal(0, noise / 255.0, lq.shape).astype(np.float32)
    lq = (np.clip(lq, 0, 1) * 255.0).round().astype(np.uint8)
    return gt, (jpeg_input(lq, quality) if quality < 100 else lq)
