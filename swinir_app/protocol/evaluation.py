"""The SwinIR paper's evaluation protocol as a library: score a model on a folder of GT images.

PSNR/SSIM on Y and on RGB, PSNR-B, LPIPS, with inputs made or read as the official
``main_test_swinir.py`` makes and reads them (see :mod:`.inputs`, :mod:`.degrade`, :mod:`.runner`).
No argparse and no YAML here: ``python -m swinir_app.evaluate`` is the front end.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import nn

from ..errors import UserError
from ..engine import Restorer
from ..files import atomic_write
from ..images import IMAGE_EXTENSIONS, write_image
from ..zoo import ModelLoadError, load_model
from .degrade import (bicubic_downscale, bicubic_upscale, jpeg_input, noisy_input, parse_realistic,
                      realistic_downscale)
from .inputs import ImageError, dataset_name, find_lq, list_images, read
from .metrics import (LPIPS, LPIPS_NETS, METRICS, NIQE_MIN_SIDE, NO_REFERENCE, MetricError, compute_metrics,
                      niqe)
from .runner import PADDING, run_official

TASKS = ("sr", "denoise", "jpeg")
BICUBIC = "bicubic"
ModelSpec = Union[str, Path, nn.Module]


class EvalError(UserError):
    """A usage error (bad arguments, folders, model); ``str()`` is one line."""


@dataclass(frozen=True)
class Protocol:
    """Everything that decides the numbers, recorded next to them."""

    dataset: str
    model: str
    task: str
    scale: int
    crop_border: int
    y_channel: bool
    channels: str  # 'rgb' or 'gray': how images are read for the model
    metrics: Tuple[str, ...]
    lq_source: str
    padding: str
    window_size: Optional[int]
    rounding: str = "uint8 (clamp to [0, 1], x255, round half to even)"
    color_space: str = "ITU-R BT.601 YCbCr, Y in 16-235 (basicsr), in addition to RGB"
    gt_crop: str = "GT cropped to LQ size x scale"
    metric_code: str = "basicsr calculate_psnr/calculate_ssim on BGR; PSNR-B as official SwinIR"
    noise_sigma: Optional[float] = None
    noise_seed: Optional[int] = None
    jpeg_quality: Optional[int] = None
    lpips_net: Optional[str] = None
    self_ensemble: bool = False
    tile: Union[int, str, None] = None
    tile_overlap: Optional[int] = None
    precision: str = "fp32"


@dataclass
class ImageResult:
    name: str
    metrics: Dict[str, float]


@dataclass
class EvalResult:
    protocol: Protocol
    images: List[ImageResult] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)  # one line per image that could not be scored

    @property
    def keys(self) -> List[str]:
        """The metric keys present, in the order they first appear."""
        keys: List[str] = []
        for image in self.images:
            keys += [k for k in image.metrics if k not in keys]
        return keys

    @property
    def summary(self) -> Dict[str, float]:
        """The mean of every metric over the images (the paper's per-dataset number)."""
        return {k: float(np.mean([im.metrics[k] for im in self.images if k in im.metrics])) for k in self.keys}

    def to_json(self) -> Dict[str, Any]:
        # inf (identical images) is not JSON: written as null.
        clean = lambda d: {k: (v if math.isfinite(v) else None) for k, v in d.items()}  # noqa: E731
        return {"summary": clean(self.summary), "protocol": dataclasses.asdict(self.protocol),
                "images": [{"name": im.name, **clean(im.metrics)} for im in self.images], "failures": self.failures}

    def write_json(self, path: Union[str, os.PathLike]) -> None:
        """Summary, protocol and per-image numbers as JSON, written atomically."""
        atomic_write(Path(path), (json.dumps(self.to_json(), indent=2) + "\n").encode())

    def write_csv(self, path: Union[str, os.PathLike]) -> None:
        """One row per image (name, then every metric), written atomically."""
        keys = self.keys
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["name", *keys])
        for im in self.images:
            writer.writerow([im.name, *(repr(im.metrics[k]) if k in im.metrics else "" for k in keys)])
        atomic_write(Path(path), buf.getvalue().encode())

    def table(self, per_image: bool = False) -> str:
        """A plain-text table: the protocol in one line, optional per-image rows, then the averages."""
        p, keys = self.protocol, self.keys
        fmt = lambda k, v: f"{v:.4f}" if k.startswith(("ssim", "lpips")) else f"{v:.3f}"  # noqa: E731
        width = max([len("average")] + [len(im.name) for im in self.images]) + 2
        head = (f"{p.dataset}: {p.model}, {p.task} x{p.scale}, {len(self.images)} images, crop {p.crop_border}, "
                f"LQ {p.lq_source}")
        lines = [head, "".join([f"{'image':<{width}}"] + [f"{k.upper():>10}" for k in keys])]
        rows = self.images if per_image else []
        for im in rows:
            lines.append("".join([f"{im.name:<{width}}"] + [f"{fmt(k, im.metrics[k]):>10}" if k in im.metrics
                                                            else f"{'-':>10}" for k in keys]))
        lines.append("".join([f"{'average':<{width}}"] + [f"{fmt(k, v):>10}" for k, v in self.summary.items()]))
        return "\n".join(lines)


@dataclass
class _Runner:
    """Maps an LQ image (uint8, or float [0, 1] for noisy inputs) to a uint8 output."""

    label: str
    task: str
    scale: int
    in_chans: int
    window_size: Optional[int]
    restorer: Any = None  # an engine.Restorer; None for the bicubic baseline

    def __call__(self, lq: np.ndarray) -> np.ndarray:
        if self.restorer is None:
            return bicubic_upscale(lq, self.scale)
        return run_official(self.restorer.restore_tensor, lq, self.scale, self.window_size)


def _runner(model: ModelSpec, *, scale: Optional[int], task: Optional[str], label: Optional[str],
            device: str, tile: Union[int, str, None], tile_overlap: int, precision: str, self_ensemble: bool,
            weights_dir: Optional[Path], threads: Optional[int] = None) -> _Runner:
    if isinstance(model, (str, Path)) and str(model).lower() == BICUBIC:
        if scale is None:
            raise EvalError("the bicubic baseline needs a scale")
        if task not in (None, "sr"):
            raise EvalError(f"bicubic is a super-resolution baseline, not a {task} model")
        if self_ensemble or tile:
            raise EvalError("self-ensemble and tiles apply to networks, not to the bicubic baseline")
        return _Runner(label or BICUBIC, "sr", scale, 3, None)
    if isinstance(model, (str, Path)):
        try:
            module = load_model(model, device="cpu", weights_dir=weights_dir)
        except (ModelLoadError, OSError) as e:
            raise EvalError(f"cannot load model {str(model)!r}: {e}") from None
        label = label or str(model)
    elif isinstance(model, nn.Module):
        module, label = model, label or type(model).__name__
    else:
        raise EvalError(f"model must be a spec (str/path) or an nn.Module, got {type(model).__name__}")
    caps = getattr(type(module), "capabilities", None) and module.capabilities
    if not caps:
        raise EvalError(f"{label}: the model declares no capabilities (load it with swinir_app.load_model)")
    if scale is not None and scale != caps.scale:
        raise EvalError(f"scale {scale} does not match {label}, an x{caps.scale} model")
    restoration = ("denoise", "jpeg")
    if task is not None and task != caps.task and not (task in restoration and caps.task in restoration):
        raise EvalError(f"task {task} does not fit {label}, a {caps.task} model")
    try:
        restorer = Restorer(module, tile=tile, tile_overlap=tile_overlap, precision=precision, device=device,
                            self_ensemble=self_ensemble, threads=threads)
    except ValueError as e:  # tile sizes, precision names
        raise EvalError(str(e)) from None
    # The SwinIR family's official test scripts mirror-pad to a window multiple; other architectures' scripts
    # feed the image as it is (their wrapper pads to what the network needs).
    window = module.config.window_size if module.config is not None else None
    return _Runner(label, task or caps.task, caps.scale, caps.in_chans, window, restorer)


def _level_in_name(label: str, pattern: str, default: float) -> float:
    """The noise level or JPEG quality that a model is named for (zoo names, official file names)."""
    m = re.search(pattern, Path(label).name, re.IGNORECASE)
    return float(m.group(1)) if m else default


def evaluate(model: ModelSpec, gt: Union[str, Path, None], *, lq: Union[str, Path, None] = None,
             lq_template: Optional[str] = None, scale: Optional[int] = None,
             task: Optional[str] = None, noise: Optional[float] = None, jpeg: Optional[int] = None, seed: int = 0,
             metrics: Optional[Sequence[str]] = None, lpips_net: str = "alex", crop_border: Optional[int] = None,
             y_channel: bool = True, self_ensemble: bool = False, tile: Union[int, str, None] = None,
             tile_overlap: int = 32, precision: str = "fp32", device: str = "auto",
             save_images: Union[str, Path, None] = None, name: Optional[str] = None,
             model_label: Optional[str] = None, weights_dir: Union[str, Path, None] = None,
             progress: bool = True, degradation: Optional[str] = None, gray_noise: bool = False,
             threads: Optional[int] = None) -> EvalResult:
    """Score ``model`` (a ``load_model`` spec, ``"bicubic"`` or a SwinIR module) on the images in ``gt``.

    ``degradation`` (SR, LQ made from the GT): ``"blur:1.5,noise:10,jpeg:50"`` makes a real-world-like LQ
    instead of the clean bicubic one: blur, MATLAB bicubic, Gaussian noise (seeded per image), JPEG.

    Without ``gt`` (real photos have none), the images in ``lq`` are restored and scored with the no-reference
    NIQE only: ``niqe`` of the output and ``niqe_lq`` of the input (lower is more natural).

    The LQ input comes from ``lq`` files, else it is made from the GT: MATLAB bicubic 1/scale
    for SR, Gaussian noise (``noise``, ``seed``) for denoising, OpenCV JPEG at ``jpeg`` for JPEG.
    ``noise``/``jpeg`` default to the level in the model's name (``color-dn-25``, ``..._jpeg10.pth``),
    else to the official script's 15 and 40.
    ``gray_noise`` (denoising with a color model): one noise plane for R, G and B, as a gray photo carries
    it when given to a color model, instead of the official script's noise per channel.
    ``threads``: CPU threads, as :class:`~swinir_app.engine.Restorer` takes them (None: the allowed cores).
    ``metrics`` defaults to psnr+ssim, plus psnrb for JPEG. Images that cannot be read are reported
    one line each and skipped (``result.failures``); usage errors raise :class:`EvalError`.
    """
    from tqdm import tqdm

    reference = gt is not None
    if not reference and lq is None:
        raise EvalError("need a GT folder, or an LQ folder alone for the no-reference metric (niqe)")
    gt = Path(gt) if reference else None
    if reference and not gt.is_dir():
        raise EvalError(f"GT folder not found: {gt}")
    if task is not None and task not in TASKS:
        raise EvalError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if lq is not None and not Path(lq).is_dir():
        raise EvalError(f"LQ folder not found: {lq}")
    if (noise is not None and noise <= 0) or (jpeg is not None and not 1 <= jpeg <= 100):
        raise EvalError(f"the noise level must be > 0 and the JPEG quality in 1..100, got {noise} and {jpeg}")
    if lpips_net not in LPIPS_NETS:
        raise EvalError(f"the LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {lpips_net!r}")
    if degradation is not None:
        if lq is not None or not reference:
            raise EvalError("--degradation makes the LQ from the GT: it takes --gt and no --lq")
        try:
            parse_realistic(degradation)
        except ValueError as e:
            raise EvalError(f"--degradation {e}") from None
    files = list_images(gt if reference else Path(lq))
    if not files:
        raise EvalError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {gt if reference else lq}")

    run = _runner(model, scale=scale, task=task, label=model_label, device=device, tile=tile,
                  tile_overlap=tile_overlap, precision=precision, self_ensemble=self_ensemble,
                  weights_dir=Path(weights_dir) if weights_dir else None, threads=threads)
    task, scale = run.task, run.scale
    if gray_noise and (task != "denoise" or run.in_chans != 3 or lq is not None):
        raise EvalError("--gray-noise is for color denoising models, with the noise made from the GT (no --lq)")
    if degradation is not None and task != "sr":
        raise EvalError(f"--degradation is for super-resolution models; this is a {task} model")
    # Swin2SR's compressed SR (its pixelshuffle_aux head): the LQ is the bicubic LQ, JPEG-compressed at
    # quality 10, as in the Swin2SR paper (AIM 2022 compressed-input SR).
    config = run.restorer.config if run.restorer is not None else None
    compressed = task == "sr" and config is not None and config.upsampler == "pixelshuffle_aux"
    noise = noise if noise is not None else _level_in_name(run.label, r"(?:dn|noise)[-_]?(\d+)", 15)
    jpeg = jpeg if jpeg is not None else int(_level_in_name(run.label, r"jpeg[-_]?(\d+)", 10 if compressed else 40))
    wanted = tuple(metrics) if metrics else (("psnr", "ssim", "psnrb") if task == "jpeg" else ("psnr", "ssim"))
    if not reference:
        wanted = tuple(metrics) if metrics else NO_REFERENCE
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise EvalError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    full_reference = [m for m in wanted if m not in NO_REFERENCE]
    if not reference and full_reference:
        raise EvalError(f"{', '.join(full_reference)} need{'s' if len(full_reference) == 1 else ''} ground truth "
                        f"(a GT folder); without it: {', '.join(NO_REFERENCE)}")
    border = (scale if task == "sr" and reference else 0) if crop_border is None else int(crop_border)
    gray = run.in_chans == 1
    mode = "color" if not gray else ("y" if task == "jpeg" else "gray")

    lq_dir = Path(lq) if lq is not None else None
    if not reference:
        lq_source = (f"files in {lq_dir} (no ground truth: NIQE of the outputs, and of the inputs of at least "
                     f"{NIQE_MIN_SIDE}x{NIQE_MIN_SIDE} as niqe_lq)")
    elif lq_dir is not None:
        lq_source = f"files in {lq_dir}"
    elif degradation is not None:
        blur, sigma, quality = parse_realistic(degradation)
        lq_source = (f"Gaussian blur sigma {blur:g}, MATLAB bicubic 1/{scale}, Gaussian noise sigma {sigma:g}/255 "
                     f"(seed {seed} per image), uint8, OpenCV JPEG quality {quality} ({degradation})")
    elif compressed:
        lq_source = f"MATLAB bicubic 1/{scale} of the GT, then OpenCV JPEG quality {jpeg} (Swin2SR compressed SR)"
    elif task == "sr":
        lq_source = f"MATLAB bicubic 1/{scale} of the GT (basicsr imresize), rounded to uint8"
    elif task == "denoise":
        lq_source = (f"GT + Gaussian noise sigma {noise:g}/255{', one plane for all channels' if gray_noise else ''}, "
                     f"seed {seed} per image, not clipped")
    else:
        lq_source = f"OpenCV JPEG quality {jpeg} of the {'gray ' if gray else ''}GT"
    lpips_model = LPIPS(lpips_net) if "lpips" in wanted else None  # once per run: it loads a backbone
    restorer = run.restorer
    protocol = Protocol(
        dataset=name or dataset_name(gt if reference else lq_dir), model=run.label, task=task, scale=scale,
        crop_border=border,
        y_channel=y_channel and not gray, channels="gray" if gray else "rgb", metrics=wanted,
        lq_source=lq_source, padding=PADDING if run.window_size else "none" if run.restorer is None else
        "none (the model's own padding to its size needs)",
        window_size=run.window_size,
        noise_sigma=float(noise) if task == "denoise" and lq_dir is None else None,
        noise_seed=seed if task == "denoise" and lq_dir is None else None,
        jpeg_quality=int(jpeg) if (task == "jpeg" or compressed) and lq_dir is None else None,
        lpips_net=lpips_net if lpips_model else None, self_ensemble=self_ensemble,
        tile=tile if restorer else None, tile_overlap=tile_overlap if restorer and tile else None,
        precision=precision if restorer else "fp32")
    out_dir = Path(save_images) if save_images else None
    if out_dir:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EvalError(f"cannot create the --save-images folder {out_dir}: {e.strerror or e}") from None

    def score_pair(path: Path):
        """The output of one GT image's LQ (read or made), and its scores against the GT."""
        img_gt = read(path, mode)
        if lq_dir is not None:
            img_lq = read(find_lq(lq_dir, path, scale, lq_template), mode)
        elif task == "sr" and degradation is not None:
            img_gt, img_lq = realistic_downscale(img_gt, scale, degradation, seed)
        elif task == "sr":
            img_gt, img_lq = bicubic_downscale(img_gt, scale)
            if compressed:
                img_lq = jpeg_input(img_lq, jpeg)
        elif task == "denoise":
            img_lq = noisy_input(img_gt, noise, seed, gray=gray_noise)
        else:
            img_lq = jpeg_input(img_gt, jpeg)
        h, w = img_lq.shape[0] * scale, img_lq.shape[1] * scale
        if img_gt.shape[0] < h or img_gt.shape[1] < w:
            raise ImageError(f"{path}: GT {img_gt.shape[1]}x{img_gt.shape[0]} is smaller than LQ x{scale} ({w}x{h})")
        output = run(img_lq)
        img_gt = img_gt[:h, :w]  # the GT cropped to LQ x scale, when the sizes don't divide
        return output, compute_metrics(output, img_gt, crop_border=border, metrics=wanted, y_channel=y_channel,
                                       lpips=lpips_model)

    def score_alone(path: Path):
        """The output of one LQ image with no ground truth, and the NIQE of both (of the input only where it
        is large enough: an SR input often is not)."""
        img_lq = read(path, mode)
        output = run(img_lq)
        scores = {"niqe": niqe(output, border)}
        if min(img_lq.shape[:2]) >= NIQE_MIN_SIDE:
            scores["niqe_lq"] = niqe(img_lq, 0)
        return output, scores

    result = EvalResult(protocol)
    for path in tqdm(files, desc=protocol.dataset, unit="img", file=sys.stderr, disable=not progress,
                     dynamic_ncols=True):
        try:
            output, scores = (score_pair if reference else score_alone)(path)
        except (ImageError, MetricError) as e:  # MetricError: an image too small for a metric (NIQE)
            line = str(e) if isinstance(e, ImageError) else f"{path}: {e}"
            result.failures.append(line)
            tqdm.write(f"error: {line}", file=sys.stderr)
            continue
        if out_dir:  # atomically, like every output; a failed write is a failure of this image
            try:
                write_image(out_dir / f"{path.stem}.png", output)
            except OSError as e:  # scored, so it stays in the averages; the missing file is a failure
                line = f"{path}: cannot write {out_dir / (path.stem + '.png')}: {e.strerror or e}"
                result.failures.append(line)
                tqdm.write(f"error: {line}", file=sys.stderr)
        result.images.append(ImageResult(path.stem, scores))
    return result


