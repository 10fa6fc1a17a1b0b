"""The restoration engine: device, precision, padding, seamless tiling and channel handling (the tile parser,
tile geometry and the plan's types live in :mod:`.tiling`, re-exported here).

Every front end (CLI, web UI, evaluation) runs models through :class:`Restorer`.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Callable, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import ModelOutputError
from .errors import SettingError
from .network import SwinIRConfig
from .network.capabilities import AMX_BF16_MIN_EMBED, Capabilities, activation_bytes
from .network.hardware import autocast
from .precision import PRECISIONS, auto_precision, resolve_precision
from .seamless import wrap_pad, wrap_padding
from .tiling import PlanNote, TilePlan, blend_ramp, parse_tile, tile_starts

__all__ = ["ALPHA_MODES", "AMX_BF16_MIN_EMBED", "DEFAULT_MODEL", "DEVICES", "PRECISIONS", "PlanNote", "Restorer",
           "SettingError", "TilePlan", "auto_precision", "available_memory", "blend_ramp", "bytes_per_pixel",
           "human_size", "is_oom", "parse_tile", "resolve_device", "resolve_precision", "tile_starts"]

DEFAULT_MODEL = "bundled-x4"  # what the CLI and the web app run unless told otherwise: bundled, offline
DEVICES = "auto, cpu, cuda, cuda:N or mps"
ALPHA_MODES = ("bicubic", "model")  # restore()'s alpha, the default first (measured: docs/python-api.md)
TileCallback = Callable[[int, int], None]
CancelCheck = Callable[[], None]  # polled while a model runs; raises to stop the work


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


_TRANSFORMS = [(k, flip) for flip in (False, True) for k in range(4)]  # the 8 dihedral transforms


def human_size(n: float) -> str:
    """Bytes in words: '512 bytes', '1.5 MB', '12.3 GB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024
    return str(n)


class Restorer:
    """Run a restoration model on images of any size, depth and channel layout.

    Everything the engine knows about the model comes from its declared
    :class:`~swinir_app.network.capabilities.Capabilities` (``model.capabilities``): scale, channels, the
    size multiple its tiles keep, its precisions, whether it tiles, where a run reports progress and stops.

    Args:
        model_or_spec: a model module with ``capabilities`` (the native networks, an ONNX graph), or anything
            :func:`swinir_app.load_model` accepts.
        tile: None (whole image), a tile size in input pixels, or "auto" (from free memory).
        tile_overlap: overlap between tiles, in input pixels.
        precision: "auto" (the fastest accurate one here, see :func:`~swinir_app.precision.auto_precision`),
            "fp32", "bf16" (CPUs with native bf16, CUDA sm80+), "fp16" (GPUs) or "int8" (CPUs: the native
            networks' transformer linears in int8, converted once; never picked by "auto").
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        self_ensemble: average the 8 flips/rotations (x8 slower, a little better).
        progress: show a tqdm bar over the tiles of each image.
        memory_share: if set (0 to 1), an image whose requested tiles (or whole image) would need more than
            this share of free memory is tiled from free memory instead, with a note (the web app: 0.25).
        seamless: wrap-around context at the borders, whole or tiled: a tileable input gives a tileable output.
        alpha: how :meth:`restore` upscales alpha: "model" (through it as a gray image), or "bicubic".
        mix: (spec or model, w): weights (1 - w) x the model + w x that one, once (:func:`~swinir_app.zoo.mix_models`).
        threads: CPU threads, set here for the whole process (``torch.set_num_threads``) and for an ONNX graph's
            sessions; 1 to 4x the cores. None (default): the cores this process may use, or PyTorch's current
            count if lower (:func:`~swinir_app.threads.default_threads`). On a busy machine 1 is faster.

    Raises:
        SettingError: a device, precision, tile, alpha or mix weight setting that cannot run here (checked
            before the model is loaded), or a precision the loaded model does not run.
        ModelLoadError: the model spec cannot be loaded, or the two models of ``mix`` cannot be mixed.
    """

    def __init__(self, model_or_spec: Union[nn.Module, str, os.PathLike], tile: Union[None, int, str] = None,
                 tile_overlap: int = 32, precision: str = "auto", device: Union[str, torch.device] = "auto",
                 self_ensemble: bool = False, progress: bool = False, weights_dir: Optional[str] = None,
                 memory_share: Optional[float] = None, seamless: bool = False, alpha: str = ALPHA_MODES[0],
                 mix: Optional[Tuple[Union[nn.Module, str, os.PathLike], float]] = None,
                 threads: Optional[int] = None):
        if tile not in (None, "auto") and (isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0):
            raise SettingError("tile", tile, "must be a positive number of pixels or 'auto'")
        if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or tile_overlap < 0:
            raise SettingError("tile_overlap", tile_overlap, "must be a number of pixels >= 0")
        if memory_share is not None and not 0 < memory_share <= 1:
            raise SettingError("memory_share", memory_share, "must be a share of free memory, above 0 and at most 1")
        if alpha not in ALPHA_MODES:
            raise SettingError("alpha", alpha, f"must be {' or '.join(ALPHA_MODES)}")
        from .zoo import check_mix, load_model, mix_models
        if mix is not None:
            mix = check_mix(mix)
        from .threads import apply_threads, resolve_threads
        threads = resolve_threads(threads)  # refused (SettingError) before anything is loaded
        self.device = resolve_device(device)
        resolve_precision(precision, self.device)  # refuse before loading anything
        self.tile, self.tile_overlap, self.memory_share = tile, tile_overlap, memory_share
        if isinstance(model_or_spec, nn.Module):
            model = model_or_spec if mix is None else mix_models(model_or_spec, *mix, weights_dir=weights_dir)
        else:
            model = load_model(model_or_spec, device="cpu", weights_dir=weights_dir, mix=mix)
        caps = getattr(type(model), "capabilities", None)
        if caps is None:
            raise TypeError(f"{type(model).__name__} declares no capabilities; load models with "
                            f"swinir_app.load_model (or give the module a `capabilities` property)")
        self.model = model.to(self.device).eval()
        self.threads: int = apply_threads(threads)
        if hasattr(model, "set_threads"):  # an ONNX graph: its sessions take the same count
            model.set_threads(self.threads)
        self.capabilities: Capabilities = model.capabilities
        self.config: Optional[SwinIRConfig] = getattr(model, "config", None)
        caps = self.capabilities
        self.precision = resolve_precision(precision, self.device, caps,
                                           label=getattr(getattr(model, "path", None), "name", "the model"))
        if self.precision == "int8" and not caps.own_precision:  # converted once (network/int8.py)
            from .network.int8 import quantize_linears
            self.model = quantize_linears(self.model, inplace=self.model is not model_or_spec)
        self.scale: int = caps.scale
        self.window: int = caps.size_multiple
        if caps.fixed_size is not None:  # tiles no larger than the model's largest input
            self.tile_overlap = min(tile_overlap, min(caps.fixed_size) // 4)
            most = max(self.window, min(caps.fixed_size) // self.window * self.window)
            self.tile = most if self.tile in (None, "auto") else min(self.tile, most)
        if caps.tiling == "internal":
            self.tile = None
        self.self_ensemble, self.progress, self.seamless, self.alpha = self_ensemble, progress, bool(seamless), alpha
        self._auto_tile: Optional[int] = None
        self._replanned: set = set()  # image sizes the memory limit re-planned

    @property
    def task(self) -> str:
        """The model's task: "sr", "denoise" or "jpeg"."""
        return self.capabilities.task

    # ---- the plan --------------------------------------------------------------------------

    def plan(self, H: int, W: int, name: Optional[str] = None) -> TilePlan:
        """How an H x W image is cut with these settings, with the notes a front end shows.

        The one place the tile policy is decided: every front end asks it (the CLI for its notes, the web
        app for its limits), and :meth:`restore` follows it. ``name`` words the notes ("a.png").
        """
        h, w = H, W  # the image; H x W from here on: what the model sees (with a seamless run's margins)
        if self.seamless:
            top, bottom, left, right = wrap_padding(H, W, self.window)
            H, W = H + top + bottom, W + left + right
        requested = self._tile_size(H, W)
        from_memory, notes = self.tile == "auto", []
        tile = requested
        bpp = self.bytes_per_pixel()
        need = bpp * (H * W if tile is None else min(tile, H) * min(tile, W))
        if self.memory_share is not None and not from_memory and self.capabilities.tiling != "internal":
            raw = self.tile  # as asked, before rounding to whole windows: the note names what was asked
            asked = bpp * (H * W if raw is None else min(raw, H) * min(raw, W))
            if (h, w) in self._replanned or asked > self.memory_share * available_memory(self.device):
                self._replanned.add((h, w))  # sticky: a video's frames are all cut alike
                from_memory, tile = True, self._auto_size(H, W)
                what = "the whole image at once" if raw is None else f"{raw}-pixel tiles"
                notes.append(PlanNote(f"tiled automatically: {what} would need about {human_size(asked)}"))
                need = bpp * (H * W if tile is None else min(tile, H) * min(tile, W))
        if tile is None:
            passes, work, overlap = 1, 1.0, 0
        else:
            overlap = min(self.tile_overlap, tile // 2)
            th, tw = min(tile, H), min(tile, W)
            passes = len(tile_starts(H, th, overlap)) * len(tile_starts(W, tw, overlap))
            work = passes * th * tw / (H * W)
        count = passes * (len(_TRANSFORMS) if self.self_ensemble else 1)
        if isinstance(self.tile, int) and not from_memory:
            if tile is not None and overlap < self.tile_overlap:
                notes.append(PlanNote(f"{{tile_overlap}} {self.tile_overlap} is more than half of the {tile}-pixel "
                                      f"tiles: {overlap} is used"))
            if work > 2:
                notes.append(PlanNote(f"{{tile}} {self.tile}: {count:,} tiles compute {work:.0f}x the pixels of "
                                      f"{name or 'the image'} ({w}x{h}); a larger tile, or auto, is faster"))
        return TilePlan(tile, overlap, count, work, need, from_memory, tuple(notes))

    def _tile_size(self, H: int, W: int) -> Optional[int]:
        if self.tile is None:
            return None
        if self.tile == "auto":
            return self._auto_size(H, W)
        return self._whole_windows(self.tile, H, W)

    def _auto_size(self, H: int, W: int) -> Optional[int]:
        if self._auto_tile is None:
            self._auto_tile = self.auto_tile_size()
        return self._whole_windows(self._auto_tile, H, W)

    def _whole_windows(self, tile: int, H: int, W: int) -> Optional[int]:
        tile = max(self.window, math.ceil(tile / self.window) * self.window)
        return None if tile >= max(H, W) else tile

    def bytes_per_pixel(self) -> int:
        """Rough peak activation memory per input pixel, as the model declares it."""
        return self.capabilities.bytes_per_pixel

    def auto_tile_size(self) -> int:
        """The tile side "auto" uses: a share of free memory (half on CUDA, a quarter elsewhere), in
        whole windows, between 4 windows and 2048 pixels."""
        budget = available_memory(self.device) * (0.5 if self.device.type == "cuda" else 0.25)
        side = int(math.sqrt(budget / self.bytes_per_pixel()))
        return int(min(max(side // self.window * self.window, 4 * self.window), 2048))

    # ---- tensors ---------------------------------------------------------------------------

    @torch.inference_mode()
    def restore_tensor(self, x: Tensor, callback: Optional[TileCallback] = None,
                       cancel: Optional[CancelCheck] = None) -> Tensor:
        """Restore a batch of images, tiled and at the chosen precision.

        Args:
            x: (B, C, H, W) float in [0, 1], C = the model's ``in_chans``; any device (moved as needed).
            callback: called as ``callback(done, total)`` in steps of the model's stages (its residual
                groups) across all tiles, after each stage and each tile; ``done == total`` at the end of
                the image (of each of the 8 passes with self-ensemble). Raise to stop the work.
            cancel: called before each tile, before each stage and transformer block of a network, and
                every 0.1 s while an ONNX graph runs; raise to stop the work (a graph's run is terminated).

        Returns:
            (B, out_chans, H * scale, W * scale) float32 on the CPU, not clamped.

        Raises:
            ValueError: ``x`` is not (B, in_chans, H, W).
            ModelOutputError: a tile's output holds NaN or Inf (in fp32 too), or has the wrong shape.
        """
        in_chans = self.capabilities.in_chans
        if x.ndim != 4 or x.shape[1] != in_chans:
            raise ValueError(f"expected (B, {in_chans}, H, W), got {tuple(x.shape)}")
        x = x.float().cpu()
        with _Stages(self.model, self.capabilities, callback, cancel) as stages:
            if not self.self_ensemble:
                return self._tiled(x, stages)
            out = None
            for k, flip in _TRANSFORMS:
                t = x.flip(-1) if flip else x
                y = self._tiled(torch.rot90(t, k, (-2, -1)), stages)
                y = torch.rot90(y, -k, (-2, -1))
                y = y.flip(-1) if flip else y
                out = y if out is None else out.add_(y)
            return out.div_(len(_TRANSFORMS))

    def _tiled(self, x: Tensor, stages: "_Stages") -> Tensor:
        plan = self.plan(*x.shape[-2:])
        if not self.seamless:
            return self._planned(x, plan, stages)
        H, W, s = *x.shape[-2:], self.scale
        top, bottom, left, right = wrap_padding(H, W, self.window)
        out = self._planned(wrap_pad(x, top, bottom, left, right), plan, stages)
        return out[:, :, top * s:(top + H) * s, left * s:(left + W) * s].contiguous()

    def _planned(self, x: Tensor, plan: TilePlan, stages: "_Stages") -> Tensor:
        B, C, H, W = x.shape
        tile = plan.tile
        while True:
            try:
                if tile is None:
                    stages.start(1)
                    out = self._run(x, stages)
                    stages.finished(1)
                    return out
                return self._run_tiles(x, tile, stages)
            except Exception as err:
                current = tile or max(H, W)
                if not (is_oom(err) and plan.from_memory and current > 2 * self.window):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile = max(self.window * 2, (current // 2) // self.window * self.window)
                self._auto_tile = tile
                warnings.warn(f"out of memory; retrying with {tile}px tiles", RuntimeWarning, stacklevel=2)

    def _run_tiles(self, x: Tensor, tile: int, stages: "_Stages") -> Tensor:
        B, C, H, W = x.shape
        s = self.scale
        th, tw = min(tile, H), min(tile, W)
        overlap = min(self.tile_overlap, tile // 2)
        ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
        out = torch.zeros(B, self.capabilities.out_chans, H * s, W * s)
        # Weights are separable and the grid is a product, so the normaliser is too.
        norm_y, norm_x = torch.zeros(H * s), torch.zeros(W * s)
        wys = [blend_ramp(th * s, overlap * s, y0 == 0, y0 + th == H) for y0 in ys]
        wxs = [blend_ramp(tw * s, overlap * s, x0 == 0, x0 + tw == W) for x0 in xs]
        for y0, wy in zip(ys, wys):
            norm_y[y0 * s:(y0 + th) * s] += wy
        for x0, wx in zip(xs, wxs):
            norm_x[x0 * s:(x0 + tw) * s] += wx
        total, done = len(ys) * len(xs), 0
        stages.start(total)
        bar = None
        if self.progress and total > 1:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="tiles", unit="tile", leave=False, disable=None)  # below any open bar
        try:
            for y0, wy in zip(ys, wys):
                for x0, wx in zip(xs, wxs):
                    y = self._run(x[:, :, y0:y0 + th, x0:x0 + tw], stages)
                    out[:, :, y0 * s:(y0 + th) * s, x0 * s:(x0 + tw) * s] += y * (wy[:, None] * wx[None, :])
                    done += 1
                    if bar is not None:
                        bar.update()
                    stages.finished(done)
        finally:
            if bar is not None:
                bar.close()
        return out.div_(norm_y[:, None] * norm_x[None, :])

    def _run(self, x: Tensor, stages: "_Stages") -> Tensor:
        """One forward at the chosen precision; non-finite output is redone in fp32, and refused there:
        clipped and rounded, NaN and Inf become a black or white image that looks like a result."""
        stages.poll()
        xd = x.to(self.device, non_blocking=True)
        caps = self.capabilities
        if caps.polls_cancel:
            y = self.model(xd, cancel=stages.cancel)
        elif self.precision in ("fp32", "int8") or caps.own_precision:
            y = self.model(xd)
        else:
            with autocast(self.device, self.precision):
                y = self.model(xd)
            if not torch.isfinite(y).all():
                warnings.warn(f"{self.precision} produced NaN/Inf in a tile; redoing it in fp32", RuntimeWarning,
                              stacklevel=3)
                y = self.model(xd)
        if not torch.isfinite(y).all():
            graph = caps.own_precision is not None
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
        Alpha: upscaled separately and kept: run through the model as a gray image (``alpha="model"``, a
        second run that ``callback`` counts as another pass; not for a uniform alpha), or with bicubic.
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
            if alpha.min() == alpha.max() or self.alpha == "bicubic":  # opaque (or uniform): nothing to restore
                a_out = self._resize(alpha, out.shape[:2])[:, :, None]
            else:
                a_out = self._restore_color(alpha[:, :, None], callback, cancel)
            out = np.concatenate([out, a_out], axis=2)
        out = np.clip(out, 0.0, 1.0)
        if a.ndim == 2:
            out = out[:, :, 0]
        if peak:
            return np.round(out * peak).astype(a.dtype)
        return out.astype(a.dtype)

    def _restore_color(self, f: np.ndarray, callback: Optional[TileCallback],
                       cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """HxWx1 or HxWx3 float -> restored, same channel count."""
        model_c, c = self.capabilities.in_chans, f.shape[2]
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


class _Stages:
    """Progress and cancel inside a run, as the model declares its stages and cancel points: hooks on those
    submodules for the length of one :meth:`Restorer.restore_tensor` call, removed after it.

    Progress counts, per pass (a tile, or the whole image), one step per stage and one for the pass's end.
    """

    def __init__(self, model: nn.Module, caps: Capabilities, callback: Optional[TileCallback],
                 cancel: Optional[CancelCheck]):
        self.model, self.caps, self.callback, self.cancel = model, caps, callback, cancel
        self.unit = len(caps.stages) + 1
        self.total = self.done = self.base = 0
        self.hooks: list = []

    def __enter__(self) -> "_Stages":
        if self.cancel is not None:
            for name in self.caps.stages + self.caps.cancel_points:
                self.hooks.append(self.model.get_submodule(name).register_forward_pre_hook(lambda *_: self.cancel()))
        if self.callback is not None:
            for name in self.caps.stages:
                self.hooks.append(self.model.get_submodule(name).register_forward_hook(self._stage_done))
        return self

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()

    def poll(self) -> None:
        if self.cancel is not None:
            self.cancel()

    def start(self, passes: int) -> None:
        self.total, self.done, self.base = passes * self.unit, 0, 0

    def _stage_done(self, *_) -> None:
        self.done = min(self.done + 1, self.base + self.unit - 1)  # an fp32 redo does not count twice
        self.callback(self.done, self.total)

    def finished(self, passes: int) -> None:
        self.done = self.base = passes * self.unit
        if self.callback is not None:
            self.callback(self.done, self.total)


def bytes_per_pixel(c: SwinIRConfig) -> int:
    """Rough peak activation memory of a forward per input pixel (bytes, fp32) of a ``c`` network (see
    :func:`~swinir_app.network.capabilities.activation_bytes`)."""
    return activation_bytes(c)
