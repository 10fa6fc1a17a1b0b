"""Image-quality metrics with the SwinIR paper's protocol: PSNR, SSIM, PSNR-B and LPIPS; and NIQE, which
needs no ground truth (real photos have none).

Images are RGB (HxWx3) or gray (HxW or HxWx1) uint8 arrays: the paper scores outputs rounded to
uint8, so the metrics take nothing else (``to_uint8`` does the rounding the official script does).
PSNR and SSIM are basicsr's own ``calculate_psnr`` / ``calculate_ssim``; those were written for
OpenCV-read (BGR) images and derive Y from BGR, so the channels are reversed before calling them.
PSNR-B follows the official SwinIR ``calculate_psnrb``. The same code scores evaluation and the
validation of training runs.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import UserError
from .._basicsr import calculate_niqe, calculate_psnr, calculate_ssim

METRICS = ("psnr", "ssim", "psnrb", "lpips", "niqe")
NO_REFERENCE = ("niqe",)  # scored on the output alone
NIQE_MIN_SIDE = 192  # NIQE fits its model to 96x96 blocks at two scales: at least 2 blocks per side
LPIPS_NETS = ("alex", "vgg")
# BT.601 luma weights for B, G, R, in the order (and so the float rounding) of basicsr's bgr2ycbcr.
_Y_WEIGHTS_BGR = (24.966, 128.553, 65.481)
_BLOCK = 8  # JPEG block size, for PSNR-B


def to_uint8(x: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """Round a float image in [0, 1] to uint8 pixels, as the official test script does.

    Args:
        x: a (C,H,W) or (1,C,H,W) torch tensor (a model's output), or an HxW / HxWxC float numpy array
            (what :meth:`Restorer.restore` returns for float input). uint8 arrays pass through.

    Returns:
        HxWxC uint8 (HxW when C=1): clamped, scaled by 255 and rounded half to even in float32.

    Raises:
        ValueError: a batch of more than one, or another shape. TypeError: another array dtype.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint8:
            return x
        if not np.issubdtype(x.dtype, np.floating) or x.ndim not in (2, 3):
            raise TypeError(f"to_uint8 takes a float HxW or HxWxC array in [0, 1], got {x.dtype} {x.shape}")
        img = (np.clip(x.astype(np.float32), 0, 1) * np.float32(255.0)).round().astype(np.uint8)
        return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"to_uint8 takes a (C,H,W) or (1,C,H,W) tensor, got shape {tuple(x.shape)}")
    img = x.detach().float().cpu().clamp(0, 1).numpy()
    img = (img * 255.0).round().astype(np.uint8)
    return img[0] if img.shape[0] == 1 else np.ascontiguousarray(img.transpose(1, 2, 0))


def _as_hwc(img: np.ndarray, what: str) -> np.ndarray:
    """Validate a uint8 RGB/gray image and return it as HxWxC with C in (1, 3)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"{what} must be a uint8 numpy array (round with to_uint8), "
                        f"got {getattr(img, 'dtype', type(img).__name__)}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"{what} must be HxW, HxWx1 or HxWx3, got shape {img.shape}")
    return img


def bt601_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y (16-235) of an RGB uint8 image, float64 and unrounded.

    Summed in B, G, R order like basicsr's ``bgr2ycbcr``, so rounding it reproduces that function bit
    for bit (the official script makes gray JPEG inputs this way).
    """
    img = _as_hwc(img, "image")
    if img.shape[2] != 3:
        raise ValueError("bt601_y needs an RGB image")
    bgr = img[:, :, ::-1].astype(np.float32) / 255.0
    return np.dot(bgr, _Y_WEIGHTS_BGR) + 16.0


def _basicsr_y(bgr: np.ndarray) -> np.ndarray:
    """basicsr's ``to_y_channel`` for a BGR HxWx3 array in [0, 255]: Y through a float32 round trip."""
    y = np.dot(bgr.astype(np.float32) / 255.0, _Y_WEIGHTS_BGR) + 16.0
    return (y / 255.0).astype(np.float32)[:, :, None] * 255.0


def blocking_effect_factor(img: np.ndarray) -> float:
    """The blocking effect factor (BEF) of one HxW channel in [0, 1], as in the official SwinIR code.

    Squared differences across 8x8 block boundaries minus those inside blocks, each per pixel pair,
    scaled by log2(8)/log2(min(H, W)); 0 when boundaries are not rougher than interiors. The number of
    boundary pairs is counted as H*(W//8-1) + W*(H//8-1), the official count, so that results match it.
    """
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    n_boundary_h = h * (w // _BLOCK - 1)
    n_boundary_v = w * (h // _BLOCK - 1)
    if min(h, w) < 2 or n_boundary_h + n_boundary_v <= 0:
        return 0.0  # no block boundary inside the image: nothing to penalize
    cols = np.arange(_BLOCK - 1, w - 1, _BLOCK)  # last column of each block that has a right neighbour
    rows = np.arange(_BLOCK - 1, h - 1, _BLOCK)
    d_h = (img[:, :-1] - img[:, 1:]) ** 2  # pair (j, j+1) at column j
    d_v = (img[:-1, :] - img[1:, :]) ** 2
    boundary_h, boundary_v = d_h[:, cols].sum(), d_v[rows, :].sum()
    boundary = (boundary_h + boundary_v) / (n_boundary_h + n_boundary_v)
    n_inner = h * (w - 1) - n_boundary_h + w * (h - 1) - n_boundary_v
    inner = (d_h.sum() - boundary_h + d_v.sum() - boundary_v) / n_inner
    if boundary <= inner:
        return 0.0
    return float(np.log2(_BLOCK) / np.log2(min(h, w)) * (boundary - inner))


def calculate_psnrb(img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = False) -> float:
    """PSNR-B of ``img`` against ``img2`` (HxWxC BGR or HxW, range [0, 255]), basicsr-style arguments.

    Per channel 10*log10(1 / (MSE + BEF(img))) on [0, 1] values, averaged over channels; the blocking
    factor is measured on ``img`` (the restored image), as in the official SwinIR evaluation.
    """
    a = np.asarray(img, dtype=np.float64)
    b = np.asarray(img2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and a.shape[2] == 3:
        # Y as basicsr makes it (float32), then float64 arithmetic like the RGB branch.
        a, b = _basicsr_y(a).astype(np.float64), _basicsr_y(b).astype(np.float64)
    a, b = a / 255.0, b / 255.0
    total = 0.0
    for c in range(a.shape[2]):
        denom = np.mean((a[..., c] - b[..., c]) ** 2) + blocking_effect_factor(a[..., c])
        total += float("inf") if denom == 0 else 10.0 * np.log10(1.0 / denom)
    return float(total / a.shape[2])


class LPIPSWeightsMissing(UserError, RuntimeError):
    """The torchvision backbone that LPIPS needs is not on disk and could not be downloaded."""


def lpips_backbone_file(net: str = "alex") -> tuple[Path, str]:
    """Where torchvision looks for the LPIPS backbone (``$TORCH_HOME/hub/checkpoints/...``) and its URL."""
    from torchvision import models

    weights = {"alex": models.AlexNet_Weights.IMAGENET1K_V1, "vgg": models.VGG16_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"LPIPS net must be one of {LPIPS_NETS}, got {net!r}")
    url = weights[net].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


class LPIPS:
    """LPIPS distance (``lpips`` package, v0.1 linear heads) between two RGB images; lower is closer.

    Build once and reuse: construction loads the backbone. ``net`` is 'alex' (the usual choice for
    restoration papers) or 'vgg'.
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        import lpips

        path, url = lpips_backbone_file(net)
        self.net = net
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation, inside lpips
                model = lpips.LPIPS(net=net, verbose=False)
        except Exception as e:
            if path.is_file():
                raise
            # Offline, torchvision's download fails deep in urllib; say what to put where instead.
            raise LPIPSWeightsMissing(
                f"LPIPS ({net}) needs the torchvision backbone {path.name}: download {url} "
                f"and put it at {path} (offline download failed: {type(e).__name__})") from None
        self.model = model.to(self.device).eval()

    @staticmethod
    def to_tensor(img: np.ndarray) -> torch.Tensor:
        """An RGB (or gray, replicated) image, uint8 or float in [0, 1], as a (1,3,H,W) tensor in [-1, 1]."""
        arr = np.asarray(img)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        else:
            raise TypeError(f"LPIPS takes uint8 or float [0, 1] images, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ValueError(f"LPIPS takes HxW, HxWx1 or HxWx3 images, got shape {arr.shape}")
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        return t * 2.0 - 1.0

    @torch.no_grad()
    def __call__(self, img: np.ndarray, ref: np.ndarray) -> float:
        a, b = self.to_tensor(img), self.to_tensor(ref)
        if a.shape != b.shape:
            raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        return float(self.model(a.to(self.device), b.to(self.device)).item())


class MetricError(UserError, ValueError):
    """An image a metric cannot score (too small for NIQE's blocks); one line."""


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE (Mittal, Soundararajan and Bovik, "Making a 'completely blind' image quality analyzer", 2013) of an
    RGB or gray uint8 image, on BT.601 Y: basicsr's ``calculate_niqe``, with the official pristine-image
    parameters and 96x96 blocks (it matches the MATLAB release to 1e-5). Lower is more natural.

    Raises:
        TypeError: not a uint8 array. MetricError: a side under 192 pixels after ``crop_border`` (NIQE needs
        at least two 96-pixel blocks per side).
    """
    img = _as_hwc(img, "image")
    h, w = img.shape[0] - 2 * crop_border, img.shape[1] - 2 * crop_border
    if min(h, w) < NIQE_MIN_SIDE:
        raise MetricError(f"NIQE needs at least {NIQE_MIN_SIDE}x{NIQE_MIN_SIDE} pixels, got {w}x{h} (width x height)")
    bgr = img[:, :, ::-1] if img.shape[2] == 3 else img  # basicsr derives Y from BGR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its nan-guarded means and covariances
        return float(calculate_niqe(np.ascontiguousarray(bgr), crop_border, input_order="HWC", convert_to="y"))


def compute_metrics(output: np.ndarray, gt: np.ndarray, *, crop_border: int,
                    metrics: Sequence[str] = ("psnr", "ssim"), y_channel: bool = True,
                    lpips: Optional[LPIPS] = None) -> Dict[str, float]:
    """Score ``output`` against ``gt``, the paper's way.

    Args:
        output, gt: uint8 numpy arrays of one shape, HxWx3 RGB or HxW / HxWx1 gray (round float results
            with :func:`to_uint8` first, as the paper does).
        crop_border: pixels dropped at every border for every metric (the scale for SR, 0 otherwise).
        metrics: any of ``METRICS`` (psnr, ssim, psnrb, lpips, niqe; niqe scores the output alone).
        y_channel: also score BT.601 Y (16-235) of color images, as the ``_y`` keys.
        lpips: a loaded :class:`LPIPS`, when "lpips" is asked for (load it once per run).

    Returns:
        ``{"psnr_y", "ssim_y", "psnr", "ssim", "psnrb_y", "psnrb", "lpips", "niqe"}`` restricted to ``metrics``;
        PSNR in dB (inf for identical images), SSIM in [0, 1], LPIPS >= 0 (lower is closer), NIQE (lower is
        more natural).

    Raises:
        TypeError: not uint8 numpy arrays. ValueError: shapes differ, an unknown metric, or a border that
        leaves nothing.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    out, ref = _as_hwc(output, "output"), _as_hwc(gt, "gt")
    if out.shape != ref.shape:
        raise ValueError(f"output {out.shape} and gt {ref.shape} differ in shape")
    if crop_border < 0 or 2 * crop_border >= min(out.shape[:2]):
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {out.shape[0]}x{out.shape[1]} image")
    color = out.shape[2] == 3
    # basicsr derives Y from BGR: hand it BGR, or it computes the wrong Y.
    out_bgr, ref_bgr = (out[:, :, ::-1], ref[:, :, ::-1]) if color else (out, ref)
    functions = {"psnr": calculate_psnr, "ssim": calculate_ssim, "psnrb": calculate_psnrb}
    result: Dict[str, float] = {}
    for name in ("psnr", "ssim", "psnrb"):
        if name not in metrics:
            continue
        fn = functions[name]
        if color and y_channel:
            result[f"{name}_y"] = float(fn(out_bgr, ref_bgr, crop_border, test_y_channel=True))
        result[name] = float(fn(out_bgr, ref_bgr, crop_border, test_y_channel=False))
    if "lpips" in metrics:
        if lpips is None:
            raise ValueError("the lpips metric needs a loaded model: pass lpips=LPIPS(net)")
        c = crop_border
        crop = (slice(c, -c), slice(c, -c)) if c else (slice(None), slice(None))
        result["lpips"] = lpips(out[crop], ref[crop])
    if "niqe" in metrics:
        result["niqe"] = niqe(out, crop_border)
    # A stable key order for tables and files: the Y numbers first, as papers report them.
    order = ("psnr_y", "ssim_y", "psnr", "ssim", "psnrb_y", "psnrb", "lpips", "niqe")
    return {k: result[k] for k in order if k in result}
