"""The restoration engine: device, precision, padding, seamless tiling and channel handling.

Every front end (CLI, web UI, evaluation) runs models through :class:`Restorer`.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from .errors import UserError
from .checkpoint import ModelOutputError
from .network import SwinIR, SwinIRConfig, hardware
from .network.hardware import autocast

DEFAULT_MODEL = "bundled-x4"  # what the CLI and the web app run unless told otherwise: bundled, offline
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = "auto, cpu, cuda, cuda:N or mps"
TileCallback = Callable[[int, int], None]
CancelCheck = Callable[[], None]  # polled while a model runs; raises to stop the work


class SettingError(UserError, ValueError):
    """A device, precision or tile setting this machine or model cannot run; one line that names it.

    ``str()`` reads ``precision 'bf16': <reason>``; front ends print :meth:`flag` for their own option
    names (``--precision bf16: <reason>``).
    """

    def __init__(self, setting: str, value: object, reason: str, advice: Optional[str] = None):
        self.setting, self.value, self.reason, self.advice = setting, value, reason, advice
        self.detail = reason + (f"; {advice}" if advice else "")
        super().__init__(f"{setting} {str(value)!r}: {self.detail}")

    def flag(self) -> str:
        return f"--{self.setting.replace('_', '-')} {self.value}: {self.detail}"


def parse_tile(value: Union[None, int, str]) -> Union[None, int, str]:
    """A tile setting as users write it -> :class:`Restorer`'s ``tile``: 'auto' (from free memory),
    'none' / 'off' / 'whole' / 0 (the whole image at once), or a size in input pixels.

    The one parser of the CLI flags and the web page. Raises :class:`SettingError`.
    """
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        if value is not None and value < 0:
            raise SettingError("tile", value, "must be 'auto', 'none' or a number of pixels")
        return value or None
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("none", "off", "whole", "whole image", "0", ""):
        return None
    if not text.isdecimal() or int(text) <= 0:  # whole pixels: "12.5" is not a tile size
        raise SettingError("tile", value, "must be 'auto', 'none' or a number of pixels")
    return int(text)


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """'auto' (CUDA, else MPS, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps' -> a device that exists here.

    Raises :class:`SettingError` naming the device and why it cannot be used.
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SettingError("device", device, f"not a device; use {DEVICES}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError("device", device, "CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise SettingError("device", device, f"this machine has {count} CUDA device{'s' if count > 1 else ''} "
                                                 f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    elif dev.type == "mps":
        if not _mps_available():
            raise SettingError("device", device, "MPS (Apple GPU) is not available on this machine")
    elif dev.type != "cpu":
        raise SettingError("device", device, f"not supported; use {DEVICES}")
    return dev


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


# bf16 pays on an AMX CPU only when the transformer is wide: measured fp32/bf16 speedups at 128x128 on a
# 2-core AMX Xeon were 1.73x for SwinIR-M (embed 180), 1.15x for SwinIR-S (60), 1.04x for bundled-x4
# (48) and 0.89x for bundled-dn (48). Narrow models stay in fp32, which is then as fast and exact.
AMX_BF16_MIN_EMBED = 96


def auto_precision(device: torch.device, config: Optional[SwinIRConfig] = None) -> str:
    """The precision ``"auto"`` picks for a model on ``device``: the fastest accurate one there.

    - CUDA: bf16 on sm80 and newer, else fp16 (a tile that overflows is redone in fp32);
    - CPU with AMX-BF16: bf16 for models with ``embed_dim >= 96`` (where it is faster, README
      Performance), else fp32;
    - other CPUs (AVX2, AVX512-BF16 without AMX: not measured faster) and MPS: fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if hardware.gpu(device).bf16 else "fp16"
    if device.type == "cpu" and hardware.cpu().amx and (config is None or config.embed_dim >= AMX_BF16_MIN_EMBED):
        return "bf16"
    return "fp32"


def resolve_precision(precision: str, device: torch.device, config: Optional[SwinIRConfig] = None) -> str:
    """'auto', 'fp32', 'bf16' or 'fp16' -> the precision that will run a ``config`` model on ``device``.

    A half precision this device cannot run natively is refused with :class:`SettingError` (one line
    saying why and what to use), never left to fail inside a kernel or to run emulated and slow.
    """
    if precision not in PRECISIONS:
        raise SettingError("precision", precision, f"not one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "auto":
        return auto_precision(device, config)
    if precision == "bf16":
        if device.type == "cpu" and not hardware.cpu().bf16:
            raise SettingError("precision", precision, f"this CPU ({hardware.cpu().describe()}) would emulate "
                                                       f"bf16, about 100x slower than fp32", "use fp32 or auto")
        if device.type == "cuda" and not hardware.gpu(device).bf16:
            raise SettingError("precision", precision, f"this GPU ({hardware.gpu(device).describe()}) has no "
                                                       f"native bf16 (sm80 and newer have it)", "use fp16 or auto")
        if device.type == "mps":
            raise SettingError("precision", precision, "not supported on MPS", "use fp16, fp32 or auto")
    if precision == "fp16" and device.type == "cpu":
        other = "fp32, bf16 (native on this CPU)" if hardware.cpu().bf16 else "fp32"
        raise SettingError("precision", precision, "fp16 is for GPUs", f"on this CPU use {other} or auto")
    return precision


def available_memory(device: torch.device) -> int:
    """Bytes free for activations on the device."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def is_oom(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of equal tiles covering [0, size); the last one is flush with the end."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> Tensor:
    """1-D tile weight: 1 inside, a raised-cosine fade across the overlap, 0 at the very edge.

    Edges of the image get no fade. The fade leaves the outer quarter of the overlap at ~0, so
    the pixels a tile sees least context for barely count; opposite fades sum to one.
    """
    w = torch.ones(length)
    margin = overlap // 4
    ramp_len = max(overlap - 2 * margin, 1)
    t = (torch.arange(overlap, dtype=torch.float32) - margin + 0.5) / ramp_len
    fade = 0.5 - 0.5 * torch.cos(math.pi * t.clamp(0, 1))
    fade = fade.clamp_min(1e-6)  # strictly positive: a pixel is never left without weight
    n = min(overlap, length)
    if overlap and not at_start:
        w[:n] = torch.minimum(w[:n], fade[:n])
    if overlap and not at_end:
        w[-n:] = torch.minimum(w[-n:], fade[:n].flip(0))
    return w


_TRANSFORMS = [(k, flip) for flip in (False, True) for k in range(4)]  # the 8 dihedral transforms


@dataclass(frozen=True)
class Tiling:
    """See :meth:`Restorer.tiling`."""

    tile: Optional[int]  # None: the whole image at once
    overlap: int
    count: int  # model passes
    work: float  # pixels computed / pixels of the image (1 without tiles)


class Restorer:
    """Run a SwinIR model on images of any size, depth and channel layout.

    Args:
        model_or_spec: a SwinIR module, or anything :func:`swinir_app.load_model` accepts.
        tile: None (whole image), a tile size in input pixels, or "auto" (from free memory).
        tile_overlap: overlap between tiles, in input pixels.
        precision: "auto" (the fastest accurate one here, see :func:`auto_precision`), "fp32", "bf16"
            (CPUs with native bf16, CUDA sm80+) or "fp16" (GPUs).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        self_ensemble: average the 8 flips/rotations (x8 slower, a little better).

    Raises:
        SettingError: a device, precision or tile setting that cannot run here (checked before the
            model is loaded).
        ModelLoadError: the model spec cannot be loaded.
    """

    def __init__(self, model_or_spec: Union[nn.Module, str, os.PathLike], tile: Union[None, int, str] = None,
                 tile_overlap: int = 32, precision: str = "auto", device: Union[str, torch.device] = "auto",
                 self_ensemble: bool = False, progress: bool = False, weights_dir: Optional[str] = None):
        if tile not in (None, "auto") and (isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0):
            raise SettingError("tile", tile, "must be a positive number of pixels or 'auto'")
        if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or tile_overlap < 0:
            raise SettingError("tile_overlap", tile_overlap, "must be a number of pixels >= 0")
        self.device = resolve_device(device)
        resolve_precision(precision, self.device)  # refuse before loading anything
        self.tile, self.tile_overlap = tile, tile_overlap
        if isinstance(model_or_spec, nn.Module):
            model = model_or_spec
        else:
            from .zoo import load_model
            model = load_model(model_or_spec, device="cpu", weights_dir=weights_dir)
        self.model: SwinIR = model.to(self.device).eval()
        self.config = model.config
        if getattr(model, "graph_precision", False):  # an exported graph (deploy.OnnxModel): its own precision
            if precision not in ("auto", model.precision):
                raise SettingError("precision", precision, f"{model.path.name} is a {model.precision} graph",
                                   f"export it again with --precision {precision}, or use auto"
                                   if precision in ("fp32", "fp16") else "use auto")
            self.precision = model.precision
            if model.fixed_size is not None:  # tiles no larger than the graph's input
                self.tile_overlap = min(tile_overlap, min(model.fixed_size) // 4)
                tile = max(model.window_size, min(model.fixed_size) // model.window_size * model.window_size)
                self.tile = tile if self.tile in (None, "auto") else min(self.tile, tile)
        else:
            self.precision = resolve_precision(precision, self.device, self.config)
        self.scale: int = model.config.upscale
        self.window: int = model.config.window_size
        self.self_ensemble, self.progress = self_ensemble, progress
        self._auto_tile: Optional[int] = None

    # ---- tensors ---------------------------------------------------------------------------

    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, callback: Optional[TileCallback] = None,
                       cancel: Optional[CancelCheck] = None) -> Tensor:
        """Restore a batch of images, tiled and at the chosen precision.

        Args:
            x: (B, C, H, W) float in [0, 1], C = the model's ``in_chans``; any device (moved as needed).
            callback: called as ``callback(done, total)`` after each tile (raise to stop the work).
            cancel: called before each tile and, while an ONNX graph runs, every 0.1 s; raise to stop the
                work (a graph's run is terminated then, however long it would take).

        Returns:
            (B, out_chans, H * scale, W * scale) float32 on the CPU, not clamped.

        Raises:
            ValueError: ``x`` is not (B, in_chans, H, W).
            ModelOutputError: a tile's output holds NaN or Inf (in fp32 too), or has the wrong shape.
        """
        if x.ndim != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"expected (B, {self.config.in_chans}, H, W), got {tuple(x.shape)}")
        x = x.float().cpu()
        if not self.self_ensemble:
            return self._tiled(x, callback, cancel)
        out = None
        for i, (k, flip) in enumerate(_TRANSFORMS):
            t = x.flip(-1) if flip else x
            y = self._tiled(torch.rot90(t, k, (-2, -1)), callback, cancel)
            y = torch.rot90(y, -k, (-2, -1))
            y = y.flip(-1) if flip else y
            out = y if out is None else out.add_(y)
        return out.div_(len(_TRANSFORMS))

    def _tile_size(self, H: int, W: int) -> Optional[int]:
        if self.tile is None:
            return None
        if self.tile == "auto":
            if self._auto_tile is None:
                self._auto_tile = self.auto_tile_size()
            tile = self._auto_tile
        else:
            tile = self.tile
        tile = max(self.window, math.ceil(tile / self.window) * self.window)  # whole windows per tile
        return None if tile >= max(H, W) else tile

    def tiling(self, H: int, W: int) -> "Tiling":
        """How an H x W image is cut with these settings: tile side and overlap in input pixels (the
        overlap is at most half a tile), model passes (self-ensemble included), and the pixels the
        passes compute over the pixels of the image."""
        tile = self._tile_size(H, W)
        if tile is None:
            passes, work, overlap = 1, 1.0, 0
        else:
            overlap = min(self.tile_overlap, tile // 2)
            th, tw = min(tile, H), min(tile, W)
            passes = len(tile_starts(H, th, overlap)) * len(tile_starts(W, tw, overlap))
            work = passes * th * tw / (H * W)
        n = len(_TRANSFORMS) if self.self_ensemble else 1
        return Tiling(tile, overlap, passes * n, work)

    def bytes_per_pixel(self) -> int:
        """Rough peak activation memory per input pixel, for choosing tile sizes (see :func:`bytes_per_pixel`)."""
        return bytes_per_pixel(self.config)

    def auto_tile_size(self) -> int:
        budget = available_memory(self.device) * (0.5 if self.device.type == "cuda" else 0.25)
        side = int(math.sqrt(budget / self.bytes_per_pixel()))
        return int(min(max(side // self.window * self.window, 4 * self.window), 2048))

    def _tiled(self, x: Tensor, callback: Optional[TileCallback], cancel: Optional[CancelCheck]) -> Tensor:
        B, C, H, W = x.shape
        tile = self._tile_size(H, W)
        while True:
            try:
                if tile is None:
                    out = self._run(x, cancel)
                    if callback:
                        callback(1, 1)
                    return out
                return self._run_tiles(x, tile, callback, cancel)
            except Exception as err:
                current = tile or max(H, W)
                if not (is_oom(err) and self.tile == "auto" and current > 2 * self.window):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile = max(self.window * 2, (current // 2) // self.window * self.window)
                self._auto_tile = tile
                warnings.warn(f"out of memory; retrying with {tile}px tiles", RuntimeWarning, stacklevel=2)

    def _run_tiles(self, x: Tensor, tile: int, callback: Optional[TileCallback],
                   cancel: Optional[CancelCheck]) -> Tensor:
        B, C, H, W = x.shape
        s = self.scale
        th, tw = min(tile, H), min(tile, W)
        overlap = self.tiling(H, W).overlap
        ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
        out = torch.zeros(B, self.config.out_chans, H * s, W * s)
        # Weights are separable and the grid is a product, so the normaliser is too.
        norm_y, norm_x = torch.zeros(H * s), torch.zeros(W * s)
        wys = [blend_ramp(th * s, overlap * s, y0 == 0, y0 + th == H) for y0 in ys]
        wxs = [blend_ramp(tw * s, overlap * s, x0 == 0, x0 + tw == W) for x0 in xs]
        for y0, wy in zip(ys, wys):
            norm_y[y0 * s:(y0 + th) * s] += wy
        for x0, wx in zip(xs, wxs):
            norm_x[x0 * s:(x0 + tw) * s] += wx
        total, done = len(ys) * len(xs), 0
        bar = None
        if self.progress and total > 1:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="tiles", unit="tile", leave=False, disable=None)  # below any open bar
        try:
            for y0, wy in zip(ys, wys):
                for x0, wx in zip(xs, wxs):
                    y = self._run(x[:, :, y0:y0 + th, x0:x0 + tw], cancel)
                    out[:, :, y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += y * (wy[:, None] * wx[None, :])
                    done += 1
                    if bar is not None:
                        bar.update()
                    if callback:
                        callback(done, total)
        finally:
            if bar is not None:
                bar.close()
        return out.div_(norm_y[:, None] * norm_x[None, :])

    def _run(self, x: Tensor, cancel: Optional[CancelCheck] = None) -> Tensor:
        """One forward at the chosen precision; non-finite output is redone in fp32, and refused there:
        clipped and rounded, NaN and Inf become a black or white image that looks like a result."""
        if cancel is not None:
            cancel()
        xd = x.to(self.device, non_blocking=True)
        graph = getattr(self.model, "graph_precision", False)
        if self.precision == "fp32" or graph:
            y = self.model(xd, cancel=cancel) if graph else self.model(xd)
        else:
            with autocast(self.device, self.precision):
                y = self.model(xd)
            if not torch.isfinite(y).all():
                warnings.warn(f"{self.precision} produced NaN/Inf in a tile; redoing it in fp32", RuntimeWarning,
                              stacklevel=3)
                y = self.model(xd)
        if not torch.isfinite(y).all():
            what = (f"the graph {self.model.path.name}" if graph else "the model") + (
                f" ({self.precision})" if graph or self.precision == "fp32" else f" ({self.precision}, then fp32)")
            raise ModelOutputError(f"{what} produced NaN or Inf values (weights that overflow on this input?); "
                                   f"the image would come out black, so it is not written")
        return y.float().cpu()

    # ---- arrays ----------------------------------------------------------------------------

    def restore(self, image: np.ndarray, callback: Optional[TileCallback] = None,
                cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """Restore one image array and return it in the same kind: dtype, channels, layout.

        Args:
            image: HxW or HxWxC (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), uint8 (0-255), uint16
                (0-65535) or float (0-1).
            callback, cancel: as for :meth:`restore_tensor`.

        Returns:
            (H * scale, W * scale[, C]) in ``image``'s dtype, clipped to its range.

        Raises:
            ValueError: another shape or channel count; TypeError: another dtype.
            ModelOutputError: the model's output holds NaN or Inf, or has the wrong shape.

        Color in a gray model: the luma is restored and the chroma upscaled with bicubic.
        Gray in a color model: the gray is replicated and the result averaged back.
        Alpha: upscaled separately with bicubic and kept.
        """
        a = np.asarray(image)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected HxW or HxWxC image with C in 1..4, got shape {a.shape}")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"empty image of shape {a.shape}")
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype)
        if peak is None and not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"unsupported pixel type {a.dtype}; use uint8, uint16 or float")
        f = a.astype(np.float32) / peak if peak else a.astype(np.float32)
        if f.ndim == 2:
            f = f[:, :, None]
        color, alpha = (f[:, :, :-1], f[:, :, -1]) if f.shape[2] in (2, 4) else (f, None)
        out = self._restore_color(color, callback, cancel)
        if alpha is not None:
            out = np.concatenate([out, self._resize(alpha, out.shape[:2])[:, :, None]], axis=2)
        out = np.clip(out, 0.0, 1.0)
        if a.ndim == 2:
            out = out[:, :, 0]
        if peak:
            return np.round(out * peak).astype(a.dtype)
        return out.astype(a.dtype)

    def _restore_color(self, f: np.ndarray, callback: Optional[TileCallback],
                       cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """HxWx1 or HxWx3 float -> restored, same channel count."""
        model_c, c = self.config.in_chans, f.shape[2]
        if c == model_c:
            return self._model_hwc(f, callback, cancel)
        if c == 1:  # gray into a color model
            return self._model_hwc(np.repeat(f, 3, axis=2), callback, cancel).mean(axis=2, keepdims=True)
        # color into a gray model: restore luma, bicubic for chroma (BT.601 full range)
        ycc = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2YCrCb)
        y = self._model_hwc(ycc[:, :, :1], callback, cancel)
        crcb = self._resize(ycc[:, :, 1:], y.shape[:2])
        return cv2.cvtColor(np.concatenate([np.clip(y, 0, 1), crcb], axis=2).astype(np.float32),
                            cv2.COLOR_YCrCb2RGB)

    def _model_hwc(self, f: np.ndarray, callback: Optional[TileCallback],
                   cancel: Optional[CancelCheck] = None) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None]
        return self.restore_tensor(x, callback, cancel)[0].numpy().transpose(1, 2, 0)

    def _resize(self, a: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
        if a.shape[:2] == tuple(size_hw):
            return a
        r = cv2.resize(a, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_CUBIC)
        return np.clip(r, 0.0, 1.0).reshape(size_hw + a.shape[2:])


def bytes_per_pixel(c: SwinIRConfig) -> int:
    """Rough peak activation memory of a forward per input pixel (bytes, fp32), so that every
    architecture's auto tiles stay within one memory budget."""
    body = (10 + 2 * c.mlp_ratio) * c.embed_dim * 4
    if c.arch == "hat":  # OCAB's unfolded windows and the CABs: measured 61-62 KB a pixel for HAT and
        body *= 3.7      # HAT-S x4 at 128² against SwinIR-M's 29 KB (README, HAT)
    recon = (c.upscale ** 2) * max(c.num_feat, 3 * c.out_chans) * 4 * 3
    return int(1.5 * (body + recon))


def resize_lanczos(a: np.ndarray, size_hw: Tuple[int, int]) -> np.ndarray:
    """Resize uint8/uint16 HxW(xC) pixels to ``size_hw`` (height, width) with Lanczos (OpenCV's 8x8),
    rounded and clipped to the dtype: the ``outscale`` step after the model."""
    if a.shape[:2] == tuple(size_hw):
        return a
    f = cv2.resize(a.astype(np.float32), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_LANCZOS4)
    peak = np.iinfo(a.dtype).max
    return np.clip(np.round(f), 0, peak).astype(a.dtype)
