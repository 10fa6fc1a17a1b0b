"""Synthetic real-world degradations, made per training patch from its own seed: Real-ESRGAN's
second-order pipeline and BSRGAN's random-order one.

Follows Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data"
(ICCVW 2021), as ``xinntao/Real-ESRGAN`` does it (``realesrgan_dataset.py`` draws the kernels,
``realesrgan_model.py`` applies them): blur -> random resize -> Gaussian or Poisson noise (color or gray)
-> JPEG, twice, then the final sinc filter and JPEG in either order, and the resize back to the LQ size.
The pieces are basicsr's own: ``data.degradations`` (kernels, noise), ``utils.DiffJPEG``, and from
``utils.img_process_util`` ``filter2D`` and ``usm_sharp`` (the OpenCV twin of its ``USMSharp`` module: within
3e-4 of it, and 30x faster on a CPU, where its 101x101 convolution takes 0.4 s per 256² patch).

One difference, for exact resume: every random draw of a patch comes from that patch's seed (NumPy's and
torch's generators are forked around basicsr's calls, which use the global ones), so a patch is the same
whatever ran before it, and a resumed run sees the very patches of an uninterrupted one. The steps run on
the CPU, in the data-loading workers, per patch.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _basicsr  # noqa: F401 - registers the torchvision alias basicsr needs
import cv2
from basicsr.data.degradations import (bivariate_Gaussian, circular_lowpass_kernel, random_add_gaussian_noise_pt,
                                       random_add_poisson_noise_pt, random_mixed_kernels)
from scipy import ndimage
from basicsr.utils import DiffJPEG
from basicsr.utils.img_process_util import filter2D, usm_sharp

from ..protocol.degrade import jpeg_input

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


@dataclass(frozen=True)
class RealESRGANSettings:
    """The options of Real-ESRGAN's ``train_realesrgan_x4plus.yml``, with its values as defaults.

    Sigmas and noise levels are in pixels of 0-255 (as Real-ESRGAN's), probabilities in [0, 1], resize ranges
    as scale factors, JPEG ranges as qualities.
    """

    blur_kernel_size: int = 21
    kernel_list: Tuple[str, ...] = KERNELS
    kernel_prob: Tuple[float, ...] = _KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: Tuple[float, float] = (0.2, 3.0)
    betag_range: Tuple[float, float] = (0.5, 4.0)
    betap_range: Tuple[float, float] = (1.0, 2.0)
    resize_prob: Tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: Tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: Tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: Tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: Tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    blur_kernel_size2: int = 21
    kernel_list2: Tuple[str, ...] = KERNELS
    kernel_prob2: Tuple[float, ...] = _KERNEL_PROB
    sinc_prob2: float = 0.1
    blur_sigma2: Tuple[float, float] = (0.2, 1.5)
    betag_range2: Tuple[float, float] = (0.5, 4.0)
    betap_range2: Tuple[float, float] = (1.0, 2.0)
    resize_prob2: Tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: Tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: Tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: Tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: Tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    gt_usm: bool = True  # the target (and the degradation's start) is the USM-sharpened GT, as Real-ESRGAN's


class RealESRGANDegradation:
    """``(lq, target) = degradation(gt, seed)`` for one GT patch.

    Args of the call:
        gt: (C, H, W) float32 in [0, 1], C = 3 (or 1: gray models; noise is then gray by nature), H and W
            multiples of ``scale``.
        seed: any int; the same seed gives the same LQ.

    Returns:
        lq: (C, H/scale, W/scale) float32 in [0, 1], rounded to 1/255 as Real-ESRGAN's.
        target: the GT, USM-sharpened if ``settings.gt_usm`` (the degradation starts from that one too).
    """

    def __init__(self, scale: int, settings: RealESRGANSettings = RealESRGANSettings()):
        self.scale, self.s = scale, settings
        self.jpeger = DiffJPEG(differentiable=False)
        sizes = [2 * v + 1 for v in range(3, 11)]  # 7 ... 21, as Real-ESRGAN's kernel_range
        self.kernel_sizes = sizes

    # ---- kernels (the dataset's half in Real-ESRGAN), from NumPy's global generator as basicsr draws them

    def _kernel(self, kernel_list, kernel_prob, sinc_prob, sigma, betag, betap, pad_to: int) -> np.ndarray:
        size = random.choice(self.kernel_sizes)
        if np.random.uniform() < sinc_prob:
            omega_c = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            kernel = circular_lowpass_kernel(omega_c, size, pad_to=False)
        else:
            kernel = random_mixed_kernels(list(kernel_list), list(kernel_prob), size, sigma, sigma,
                                          [-math.pi, math.pi], betag, betap, noise_range=None)
        pad = (pad_to - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad)))

    def kernels(self) -> Tuple[Tensor, Tensor, Tensor]:
        s, k = self.s, self.s.blur_kernel_size
        kernel1 = self._kernel(s.kernel_list, s.kernel_prob, s.sinc_prob, s.blur_sigma, s.betag_range,
                               s.betap_range, k)
        kernel2 = self._kernel(s.kernel_list2, s.kernel_prob2, s.sinc_prob2, s.blur_sigma2, s.betag_range2,
                               s.betap_range2, s.blur_kernel_size2)
        if np.random.uniform() < s.final_sinc_prob:
            size = random.choice(self.kernel_sizes)
            sinc = circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi), size, pad_to=k)
        else:
            sinc = np.zeros((k, k), np.float32)
            sinc[k // 2, k // 2] = 1  # a pulse: no final filter
        return tuple(torch.from_numpy(np.asarray(x, np.float32))[None] for x in (kernel1, kernel2, sinc))

    # ---- the process (the model's half in Real-ESRGAN) -------------------------------------------------

    @staticmethod
    def _factor(probs: Sequence[float], span: Tuple[float, float]) -> float:
        """Up, down or keep (with ``probs``), then a factor in ``span`` on that side of 1."""
        kind = random.choices(["up", "down", "keep"], probs)[0]
        return (np.random.uniform(1, span[1]) if kind == "up" else np.random.uniform(span[0], 1)
                if kind == "down" else 1.0)

    @staticmethod
    def _interpolate(x: Tensor, **size) -> Tensor:
        return F.interpolate(x, mode=random.choice(["area", "bilinear", "bicubic"]), **size)

    def _noise(self, x: Tensor, prob: float, sigma, poisson, gray: float) -> Tensor:
        if np.random.uniform() < prob:
            return random_add_gaussian_noise_pt(x, sigma_range=sigma, clip=True, rounds=False, gray_prob=gray)
        return random_add_poisson_noise_pt(x, scale_range=poisson, gray_prob=gray, clip=True, rounds=False)

    def _jpeg(self, x: Tensor, span: Tuple[float, float]) -> Tensor:
        quality = x.new_zeros(x.size(0)).uniform_(*span)
        if x.shape[1] == 1:  # DiffJPEG is for color images: a gray patch goes through as 3 equal channels
            return self.jpeger(x.clamp(0, 1).expand(-1, 3, -1, -1).contiguous(), quality=quality).mean(1, keepdim=True)
        return self.jpeger(x.clamp(0, 1), quality=quality)

    def patch_problem(self, gt_size: int) -> str:
        """Why training patches of ``gt_size`` would fail, or "": reflect padding needs a map wider than half
        the kernel, for the second blur after the first resize and for the final 21x21 sinc at the LQ size."""
        s = self.s
        smallest = int(gt_size * s.resize_range[0])
        if s.second_blur_prob > 0 and smallest <= s.blur_kernel_size2 // 2:
            need = math.ceil((s.blur_kernel_size2 // 2 + 1) / s.resize_range[0])
            return (f"gt_size {gt_size} is too small for Real-ESRGAN's degradation: the first resize (from "
                    f"{s.resize_range[0]:g}x) can bring a patch to {smallest} px, within the reach of the second "
                    f"blur ({s.blur_kernel_size2}x{s.blur_kernel_size2}); use gt_size {need} or more, or a larger "
                    f"resize_range minimum")
        if gt_size // self.scale <= 10:
            return (f"gt_size {gt_size} gives {gt_size // self.scale} px LQ patches at x{self.scale}, too small "
                    f"for Real-ESRGAN's final 21x21 sinc filter; use gt_size {11 * self.scale} or more")
        return ""

    def __call__(self, gt: Tensor, seed: int) -> Tuple[Tensor, Tensor]:
        s, scale = self.s, self.scale
        C, H, W = gt.shape
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed % 2 ** 32)
        random.seed(seed)
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(seed)
                kernel1, kernel2, sinc = self.kernels()
                x = gt[None]
                if s.gt_usm:
                    hwc = gt.permute(1, 2, 0).numpy() if C == 3 else gt[0].numpy()
                    sharp = usm_sharp(np.ascontiguousarray(hwc))
                    x = torch.from_numpy(np.ascontiguousarray(sharp.reshape(H, W, C).transpose(2, 0, 1)))[None]
                target = x[0].clone()
                out = filter2D(x, kernel1)
                out = self._interpolate(out, scale_factor=self._factor(s.resize_prob, s.resize_range))
                out = self._noise(out, s.gaussian_noise_prob, s.noise_range, s.poisson_scale_range, s.gray_noise_prob)
                out = self._jpeg(out, s.jpeg_range)
                if np.random.uniform() < s.second_blur_prob:
                    out = filter2D(out, kernel2)
                factor = self._factor(s.resize_prob2, s.resize_range2)
                out = self._interpolate(out, size=(max(1, int(H / scale * factor)), max(1, int(W / scale * factor))))
                out = self._noise(out, s.gaussian_noise_prob2, s.noise_range2, s.poisson_scale_range2,
                                  s.gray_noise_prob2)
                lq_size = (H // scale, W // scale)
                if np.random.uniform() < 0.5:  # resize back + sinc, then JPEG
                    out = filter2D(self._interpolate(out, size=lq_size), sinc)
                    out = self._jpeg(out, s.jpeg_range2)
                else:  # JPEG, then resize back + sinc
                    out = self._jpeg(out, s.jpeg_range2)
                    out = filter2D(self._interpolate(out, size=lq_size), sinc)
                lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return lq[0].float().contiguous(), target.clamp(0, 1).float().contiguous()


class BSRGANDegradation:
    """BSRGAN's random-order degradation (Zhang et al., "Designing a Practical Degradation Model for Deep Blind
    Image Super-Resolution", ICCV 2021), as KAIR's ``degradation_bsrgan`` makes the training pairs of the official
    real-world SwinIR: for x4, a first x1/2 resize with probability 0.25; then, shuffled (the final resize
    always after the random one), two blurs (an anisotropic Gaussian or an isotropic one, 7 to 25 pixels), a
    random downscale (by 1 to 2*sf with a random interpolation, or a shifted Gaussian blur and a nearest
    subsampling), the resize to 1/sf, Gaussian noise of 2 to 8 (color, gray or channel-correlated) and a JPEG
    of quality 30 to 95 (probability 0.9); then a final JPEG. The camera-ISP step is left out, as in KAIR's
    training (its ISP model is not published).

    ``(lq, gt) = degradation(gt, seed)`` as :class:`RealESRGANDegradation` (no USM sharpening: BSRGAN's
    target is the GT itself). All draws come from ``seed``.
    """

    def __init__(self, scale: int):
        self.scale = scale

    @staticmethod
    def _blur(img: np.ndarray, sf: int, rng: np.random.Generator) -> np.ndarray:
        size = 2 * int(rng.integers(2, 12)) + 3
        if rng.random() < 0.5:  # anisotropic: variances up to 4 + sf along a random direction
            var1, var2 = (max((4.0 + sf) * rng.random(), 1e-4) for _ in range(2))
            kernel = bivariate_Gaussian(size, math.sqrt(var1), math.sqrt(var2), rng.random() * math.pi,
                                        isotropic=False)
        else:  # isotropic, sigma up to 2 + 0.2 sf (MATLAB fspecial's truncation of tiny values)
            sigma = max((2.0 + 0.2 * sf) * rng.random(), 1e-3)
            kernel = bivariate_Gaussian(size, sigma, sigma, 0, isotropic=True)
            kernel[kernel < np.finfo(float).eps * kernel.max()] = 0
            kernel /= kernel.sum()
        return _convolve(img, kernel)

    @staticmethod
    def _interpolation(rng: np.random.Generator) -> int:
        return (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)[int(rng.integers(3))]

    def _noise(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        level = int(rng.integers(2, 9)) / 255.0
        kind = rng.random()
        if kind > 0.6 or img.shape[2] == 1:  # color noise
            img = img + rng.normal(0, level, img.shape).astype(np.float32)
        elif kind < 0.4:  # gray noise: the same in every channel
            img = img + rng.normal(0, level, (*img.shape[:2], 1)).astype(np.float32)
        else:  # noise correlated across channels: a random covariance of scale 8/255
            q, _ = np.linalg.qr(rng.random((3, 3)))
            cov = np.abs((8 / 255.0) ** 2 * (q.T @ np.diag(rng.random(3)) @ q))
            img = img + rng.multivariate_normal(np.zeros(3), cov, img.shape[:2]).astype(np.float32)
        return np.clip(img, 0.0, 1.0)

    @staticmethod
    def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        quality = int(rng.integers(30, 96))
        u8 = np.clip((img * 255.0).round(), 0, 255).astype(np.uint8)
        out = jpeg_input(u8 if u8.shape[2] == 3 else u8[:, :, 0], quality)  # the protocol's OpenCV round trip
        return (out if out.ndim == 3 else out[:, :, None]).astype(np.float32) / 255.0

    def __call__(self, gt: Tensor, seed: int) -> Tuple[Tensor, Tensor]:
        rng = np.random.default_rng(seed)
        C, H, W = gt.shape
        sf = self.scale
        img = np.ascontiguousarray(gt.permute(1, 2, 0).numpy().astype(np.float32))
        if sf == 4 and rng.random() < 0.25:  # downsample1: x1/2 first, then the x2 pipeline
            if rng.random() < 0.5:
                img = _resize(img, W // 2, H // 2, self._interpolation(rng))
            else:
                from .._basicsr import imresize  # MATLAB bicubic, as KAIR's imresize_np
                img = imresize(img, 0.5)
                img = img[:, :, None] if img.ndim == 2 else img
            img = np.clip(img, 0.0, 1.0)
            sf = 2
        order = list(rng.permutation(7))
        i2, i3 = order.index(2), order.index(3)
        if i2 > i3:  # the final resize (3) comes after the random one (2)
            order[i2], order[i3] = 3, 2
        size_before_down2 = img.shape[1], img.shape[0]
        for step in order:
            if step in (0, 1):
                img = self._blur(img, sf, rng)
            elif step == 2:
                size_before_down2 = img.shape[1], img.shape[0]
                if rng.random() < 0.75:
                    f = rng.uniform(1, 2 * sf)
                    img = _resize(img, int(img.shape[1] / f), int(img.shape[0] / f), self._interpolation(rng))
                else:  # blur with a Gaussian shifted by (sf - 1) / 2 pixels, then nearest subsampling
                    kernel = bivariate_Gaussian(25, rng.uniform(0.1, 0.6 * sf), 0, 0, isotropic=True)
                    shift = (sf - 1) * 0.5
                    kernel = np.clip(ndimage.shift(kernel, (-shift, -shift), order=1, mode="nearest"), 0, None)
                    img = _convolve(img, kernel / kernel.sum())[0::sf, 0::sf]
                img = np.clip(img, 0.0, 1.0)
            elif step == 3:
                w0, h0 = size_before_down2
                img = np.clip(_resize(img, int(w0 / sf), int(h0 / sf), self._interpolation(rng)), 0.0, 1.0)
            elif step == 4:
                img = self._noise(img, rng)
            elif step == 5:
                if rng.random() < 0.9:
                    img = self._jpeg(img, rng)
            # step 6: the camera ISP model, not used for training (KAIR passes none)
        img = self._jpeg(img, rng)
        lq = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        if lq.shape[1:] != (H // self.scale, W // self.scale):  # int() rounding on odd sizes: crop or pad by one
            lq = F.interpolate(lq[None], size=(H // self.scale, W // self.scale), mode="nearest")[0]
        return lq.float().contiguous(), gt.float().contiguous()


def _convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter every channel with ``kernel``, mirrored at the borders (as scipy's ``mode='mirror'``)."""
    out = cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    return out[:, :, None] if out.ndim == 2 else out


def _resize(img: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    out = cv2.resize(img, (max(1, w), max(1, h)), interpolation=interpolation)
    return out[:, :, None] if out.ndim == 2 else out


def settings_from(options: Optional[dict]) -> RealESRGANSettings:
    """Settings from the Real-ESRGAN keys of an options section (the rest take Real-ESRGAN's defaults)."""
    if not options:
        return RealESRGANSettings()
    fields = RealESRGANSettings.__dataclass_fields__
    values = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in options.items() if k in fields}
    return RealESRGANSettings(**values)
