"""Evaluation with the SwinIR paper's protocol: PSNR/SSIM (Y and RGB), PSNR-B and LPIPS.

    python -m swinir_app.evaluate --model SPEC --gt DIR [--lq DIR] [--scale K] [--task sr|denoise|jpeg]
           [--noise 15|25|50] [--jpeg Q] [--metrics psnr ssim psnrb lpips] [--self-ensemble]
           [--tile N] [--save-images DIR] [--out results.json] [--csv per_image.csv]
    python -m swinir_app.evaluate -opt options/test_x4.yml

The protocol is that of the official ``main_test_swinir.py``: images read with OpenCV; the input
mirror-padded to a window multiple (always, as the official script) and the output cropped back;
outputs clamped and rounded to uint8; the GT cropped to LQ x scale; ``scale`` border pixels dropped
for SR and none for denoising/JPEG; basicsr's PSNR/SSIM on BT.601 Y and on RGB.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch import nn

from ._basicsr import imresize
from .engine import PRECISIONS, Restorer
from .metrics import LPIPS, LPIPS_NETS, METRICS, LPIPSWeightsMissing, bt601_y, compute_metrics, to_uint8

TASKS = ("sr", "denoise", "jpeg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
BICUBIC = "bicubic"
PADDING = "official mirror padding: always pad to the next window multiple (flip-concatenate), crop output"
ModelSpec = Union[str, Path, nn.Module]


class EvalError(Exception):
    """A usage error (bad arguments, folders, model, options file); ``str()`` is one line."""


class ImageError(Exception):
    """One image that cannot be scored; reported on one line naming the file, then skipped."""


# ---------------------------------------------------------------------------------------------
# Results


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
                "images": [{"name": im.name, **clean(im.metrics)} for im in self.images]}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = self.keys
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["name", *keys])
            for im in self.images:
                writer.writerow([im.name, *(repr(im.metrics[k]) if k in im.metrics else "" for k in keys)])

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


# ---------------------------------------------------------------------------------------------
# Inputs, made or read the way the official script does


def read_image(path: Path, mode: str) -> np.ndarray:
    """A uint8 image as the official script reads it: 'color' -> RGB HxWx3 (OpenCV decoding),
    'gray' -> HxW (OpenCV's gray conversion), 'y' -> HxW, a gray file as is and a color one as its
    rounded BT.601 Y (the official gray JPEG input)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode, not imread: any path encoding
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if mode == "y":
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if raw is not None and raw.ndim == 3:
            color = read_image(path, "color")
            return np.clip(bt601_y(color).round(), 0, 255).astype(np.uint8)
        mode = "gray"
    flag = cv2.IMREAD_COLOR if mode == "color" else cv2.IMREAD_GRAYSCALE
    img = cv2.imdecode(data, flag) if data.size else None
    if img is None:
        raise ImageError(f"{path}: not a readable image")
    return np.ascontiguousarray(img[:, :, ::-1]) if mode == "color" else img


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


def noisy_input(gt: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """GT/255 plus Gaussian noise of std sigma/255, float32, neither clipped nor rounded.

    As the official script: the generator is reseeded with ``seed`` for every image and the noise is
    drawn in OpenCV's BGR channel order, so the numbers match its tables.
    """
    img = gt[:, :, ::-1] if gt.ndim == 3 else gt
    noise = np.random.RandomState(seed).normal(0, sigma / 255.0, img.shape)
    noisy = img.astype(np.float32) / 255.0 + noise
    noisy = noisy[:, :, ::-1] if gt.ndim == 3 else noisy
    return np.ascontiguousarray(noisy, dtype=np.float32)


def jpeg_input(gt: np.ndarray, quality: int) -> np.ndarray:
    """``gt`` (RGB or gray uint8) encoded by OpenCV as JPEG at ``quality`` and decoded."""
    img = gt[:, :, ::-1] if gt.ndim == 3 else gt
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ImageError("OpenCV could not JPEG-encode the image")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR if gt.ndim == 3 else cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(out[:, :, ::-1]) if gt.ndim == 3 else out


def official_pad(x: torch.Tensor, window_size: int) -> torch.Tensor:
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


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    arr = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


# ---------------------------------------------------------------------------------------------
# The model side


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
        x = _to_tensor(lq)
        h, w = x.shape[-2:]
        x = official_pad(x, self.window_size)
        y = self.restorer.restore_tensor(x)[..., :h * self.scale, :w * self.scale]
        return to_uint8(y)


def _runner(model: ModelSpec, *, scale: Optional[int], task: Optional[str], label: Optional[str],
            device: str, tile: Union[int, str, None], tile_overlap: int, precision: str, self_ensemble: bool,
            weights_dir: Optional[Path]) -> _Runner:
    if isinstance(model, (str, Path)) and str(model).lower() == BICUBIC:
        if scale is None:
            raise EvalError("--model bicubic needs --scale")
        if task not in (None, "sr"):
            raise EvalError(f"--model bicubic is a super-resolution baseline, not {task}")
        if self_ensemble or tile:
            raise EvalError("--self-ensemble and --tile apply to networks, not to --model bicubic")
        return _Runner(label or BICUBIC, "sr", scale, 3, None)
    if isinstance(model, (str, Path)):
        from .zoo import ModelLoadError, load_model

        try:
            module = load_model(model, device="cpu", weights_dir=weights_dir)
        except (ModelLoadError, OSError) as e:
            raise EvalError(f"cannot load model {str(model)!r}: {e}") from None
        label = label or str(model)
    elif isinstance(model, nn.Module):
        module, label = model, label or type(model).__name__
    else:
        raise EvalError(f"model must be a spec (str/path) or an nn.Module, got {type(model).__name__}")
    config = getattr(module, "config", None)
    if config is None:
        raise EvalError(f"{label}: the model has no .config (expected a swinir_app SwinIR)")
    if scale is not None and scale != config.upscale:
        raise EvalError(f"--scale {scale} does not match the x{config.upscale} model {label}")
    restoration = ("denoise", "jpeg")
    if task is not None and task != config.task and not (task in restoration and config.task in restoration):
        raise EvalError(f"--task {task} does not fit {label}, a {config.task} model")
    try:
        restorer = Restorer(module, tile=tile, tile_overlap=tile_overlap, precision=precision, device=device,
                            self_ensemble=self_ensemble)
    except ValueError as e:  # tile sizes, precision names
        raise EvalError(str(e)) from None
    return _Runner(label, task or config.task, config.upscale, config.in_chans, config.window_size, restorer)


# ---------------------------------------------------------------------------------------------
# Evaluation


def list_images(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def dataset_name(gt: Path) -> str:
    """'Set5' for Set5/HR or Set14/HR_x4: benchmark GT folders are named after their role, not the set."""
    gt = gt.resolve()
    return gt.parent.name if re.fullmatch(r"(?i)(hr|gt)(_?x\d+)?|original|ground_?truth", gt.name) else gt.name


def find_lq(lq_dir: Path, gt_path: Path, scale: int, template: Optional[str]) -> Path:
    """The LQ file for ``gt_path``: ``template.format(stem)`` if given, else ``<stem>x<scale>``
    (the benchmark naming) or ``<stem>``, with the GT's extension first, then any image extension."""
    stems = [template.format(gt_path.stem)] if template else [f"{gt_path.stem}x{scale}", gt_path.stem]
    for stem in stems:
        for ext in (gt_path.suffix, *IMAGE_EXTENSIONS):
            candidate = lq_dir / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
    raise ImageError(f"{gt_path}: no LQ file {' or '.join(s + '.*' for s in stems)} in {lq_dir}")


def _level_in_name(label: str, pattern: str, default: float) -> float:
    """The noise level or JPEG quality that a model is named for (zoo names, official file names)."""
    m = re.search(pattern, Path(label).name, re.IGNORECASE)
    return float(m.group(1)) if m else default


def evaluate(model: ModelSpec, gt: Union[str, Path], *, lq: Union[str, Path, None] = None,
             lq_template: Optional[str] = None, scale: Optional[int] = None,
             task: Optional[str] = None, noise: Optional[float] = None, jpeg: Optional[int] = None, seed: int = 0,
             metrics: Optional[Sequence[str]] = None, lpips_net: str = "alex", crop_border: Optional[int] = None,
             y_channel: bool = True, self_ensemble: bool = False, tile: Union[int, str, None] = None,
             tile_overlap: int = 32, precision: str = "fp32", device: str = "auto",
             save_images: Union[str, Path, None] = None, name: Optional[str] = None,
             model_label: Optional[str] = None, weights_dir: Union[str, Path, None] = None,
             progress: bool = True) -> EvalResult:
    """Score ``model`` (a ``load_model`` spec, ``"bicubic"`` or a SwinIR module) on the images in ``gt``.

    The LQ input comes from ``lq`` files, else it is made from the GT: MATLAB bicubic 1/scale
    for SR, Gaussian noise (``noise``, ``seed``) for denoising, OpenCV JPEG at ``jpeg`` for JPEG.
    ``noise``/``jpeg`` default to the level in the model's name (``color-dn-25``, ``..._jpeg10.pth``),
    else to the official script's 15 and 40.
    ``metrics`` defaults to psnr+ssim, plus psnrb for JPEG. Images that cannot be read are reported
    one line each and skipped (``result.failures``); usage errors raise :class:`EvalError`.
    """
    from tqdm import tqdm

    gt = Path(gt)
    if not gt.is_dir():
        raise EvalError(f"GT folder not found: {gt}")
    if task is not None and task not in TASKS:
        raise EvalError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if lq is not None and not Path(lq).is_dir():
        raise EvalError(f"LQ folder not found: {lq}")
    if (noise is not None and noise <= 0) or (jpeg is not None and not 1 <= jpeg <= 100):
        raise EvalError(f"need --noise > 0 and --jpeg in 1..100, got {noise} and {jpeg}")
    if lpips_net not in LPIPS_NETS:
        raise EvalError(f"--lpips-net must be one of {', '.join(LPIPS_NETS)}, got {lpips_net!r}")
    files = list_images(gt)
    if not files:
        raise EvalError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {gt}")

    run = _runner(model, scale=scale, task=task, label=model_label, device=device, tile=tile,
                  tile_overlap=tile_overlap, precision=precision, self_ensemble=self_ensemble,
                  weights_dir=Path(weights_dir) if weights_dir else None)
    task, scale = run.task, run.scale
    noise = noise if noise is not None else _level_in_name(run.label, r"(?:dn|noise)[-_]?(\d+)", 15)
    jpeg = jpeg if jpeg is not None else int(_level_in_name(run.label, r"jpeg[-_]?(\d+)", 40))
    wanted = tuple(metrics) if metrics else (("psnr", "ssim", "psnrb") if task == "jpeg" else ("psnr", "ssim"))
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise EvalError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    border = (scale if task == "sr" else 0) if crop_border is None else int(crop_border)
    gray = run.in_chans == 1
    mode = "color" if not gray else ("y" if task == "jpeg" else "gray")

    lq_dir = Path(lq) if lq is not None else None
    if lq_dir is not None:
        lq_source = f"files in {lq_dir}"
    elif task == "sr":
        lq_source = f"MATLAB bicubic 1/{scale} of the GT (basicsr imresize), rounded to uint8"
    elif task == "denoise":
        lq_source = f"GT + Gaussian noise sigma {noise:g}/255, seed {seed} per image, not clipped"
    else:
        lq_source = f"OpenCV JPEG quality {jpeg} of the {'gray ' if gray else ''}GT"
    lpips_model = LPIPS(lpips_net) if "lpips" in wanted else None  # once per run: it loads a backbone
    restorer = run.restorer
    protocol = Protocol(
        dataset=name or dataset_name(gt), model=run.label, task=task, scale=scale, crop_border=border,
        y_channel=y_channel and not gray, channels="gray" if gray else "rgb", metrics=wanted,
        lq_source=lq_source, padding=PADDING if run.window_size else "none (bicubic needs none)",
        window_size=run.window_size,
        noise_sigma=float(noise) if task == "denoise" and lq_dir is None else None,
        noise_seed=seed if task == "denoise" and lq_dir is None else None,
        jpeg_quality=int(jpeg) if task == "jpeg" and lq_dir is None else None,
        lpips_net=lpips_net if lpips_model else None, self_ensemble=self_ensemble,
        tile=tile if restorer else None, tile_overlap=tile_overlap if restorer and tile else None,
        precision=precision if restorer else "fp32")
    out_dir = Path(save_images) if save_images else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)

    result = EvalResult(protocol)
    for path in tqdm(files, desc=protocol.dataset, unit="img", file=sys.stderr, disable=not progress,
                     dynamic_ncols=True):
        try:
            img_gt = read_image(path, mode)
            if lq_dir is not None:
                img_lq = read_image(find_lq(lq_dir, path, scale, lq_template), mode)
            elif task == "sr":
                img_gt, img_lq = bicubic_downscale(img_gt, scale)
            elif task == "denoise":
                img_lq = noisy_input(img_gt, noise, seed)
            else:
                img_lq = jpeg_input(img_gt, jpeg)
            h, w = img_lq.shape[0] * scale, img_lq.shape[1] * scale
            if img_gt.shape[0] < h or img_gt.shape[1] < w:
                raise ImageError(f"{path}: GT {img_gt.shape[1]}x{img_gt.shape[0]} is smaller than "
                                 f"LQ x{scale} ({w}x{h})")
            output = run(img_lq)
            img_gt = img_gt[:h, :w]  # the GT cropped to LQ x scale, when the sizes don't divide
            scores = compute_metrics(output, img_gt, crop_border=border, metrics=wanted, y_channel=y_channel,
                                     lpips=lpips_model)
        except ImageError as e:
            result.failures.append(str(e))
            tqdm.write(f"error: {e}", file=sys.stderr)
            continue
        if out_dir:
            cv2.imwrite(str(out_dir / f"{path.stem}.png"), output[:, :, ::-1] if output.ndim == 3 else output)
        result.images.append(ImageResult(path.stem, scores))
    return result


# ---------------------------------------------------------------------------------------------
# Options files (BasicSR test-options style)


class OptionsError(EvalError):
    """An options file that cannot be used as written."""


@dataclass(frozen=True)
class MetricOptions:
    type: str
    crop_border: Optional[int] = None
    test_y_channel: bool = True
    better: str = "higher"
    net: str = "alex"  # LPIPS only


@dataclass(frozen=True)
class DatasetOptions:
    name: str
    dataroot_gt: Path
    dataroot_lq: Optional[Path] = None
    type: str = "PairedImageDataset"
    filename_tmpl: Optional[str] = None
    io_backend: Mapping[str, str] = field(default_factory=lambda: {"type": "disk"})
    phase: str = "test"


@dataclass(frozen=True)
class PathOptions:
    pretrain_network_g: Optional[str] = None
    strict_load_g: bool = True


@dataclass(frozen=True)
class ValOptions:
    metrics: Mapping[str, MetricOptions] = field(default_factory=dict)
    save_img: bool = False
    suffix: Optional[str] = None
    pbar: bool = True


@dataclass(frozen=True)
class TestOptions:
    """A BasicSR-style test options file, parsed and checked once."""

    name: str
    datasets: Tuple[DatasetOptions, ...]
    path: PathOptions
    val: ValOptions
    scale: Optional[int] = None
    task: Optional[str] = None
    noise: Optional[float] = None
    jpeg: Optional[int] = None
    manual_seed: int = 0
    network_g: Optional[Mapping[str, Any]] = None
    model_type: str = "SwinIRModel"
    num_gpu: int = 0
    source: str = ""

    def metric_names(self) -> Tuple[str, ...]:
        return tuple(_METRIC_TYPES[m.type] for m in self.val.metrics.values())

    def crop_border(self) -> Optional[int]:
        borders = {m.crop_border for m in self.val.metrics.values() if m.crop_border is not None}
        if len(borders) > 1:
            raise OptionsError(f"{self.source}: val.metrics use different crop_border values {sorted(borders)}; "
                               f"one protocol has one")
        return borders.pop() if borders else None

    def y_channel(self) -> bool:
        flags = {m.test_y_channel for m in self.val.metrics.values() if m.type != "calculate_lpips"}
        if len(flags) > 1:
            raise OptionsError(f"{self.source}: val.metrics mix test_y_channel true and false")
        return flags.pop() if flags else True

    def lpips_net(self) -> str:
        nets = [m.net for m in self.val.metrics.values() if m.type == "calculate_lpips"]
        return nets[0] if nets else "alex"


_METRIC_TYPES = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "calculate_psnrb": "psnrb",
                 "calculate_lpips": "lpips"}


def _build(cls, data: Any, where: str, **fixed):
    """``cls(**data)`` with a one-line error naming unknown and missing keys."""
    if not isinstance(data, Mapping):
        raise OptionsError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)} - set(fixed) - {"source"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise OptionsError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING} - set(fixed)
    missing = sorted(required - set(data))
    if missing:
        raise OptionsError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**data, **fixed)


def load_options(path: Union[str, Path]) -> TestOptions:
    """Parse a test options file. Relative paths in it are relative to the file's own folder."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise OptionsError(f"cannot read options file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise OptionsError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    where = str(path)
    if not isinstance(raw, Mapping):
        raise OptionsError(f"{where}: expected a mapping at the top level")
    base = path.resolve().parent
    rel = lambda p: None if p is None else Path(os.path.normpath(base / Path(str(p)).expanduser()))  # noqa: E731

    datasets_raw = raw.get("datasets")
    if not isinstance(datasets_raw, Mapping) or not datasets_raw:
        raise OptionsError(f"{where}: 'datasets' must map names (test_1, ...) to datasets")
    datasets = []
    for key, d in datasets_raw.items():
        ds = _build(DatasetOptions, d, f"{where}: datasets.{key}")
        if ds.type != "PairedImageDataset":
            raise OptionsError(f"{where}: datasets.{key}.type {ds.type!r}: only PairedImageDataset "
                               f"(GT folder, optional LQ folder) can be scored")
        if dict(ds.io_backend) != {"type": "disk"}:
            raise OptionsError(f"{where}: datasets.{key}.io_backend: only {{type: disk}} is supported")
        datasets.append(dataclasses.replace(ds, dataroot_gt=rel(ds.dataroot_gt), dataroot_lq=rel(ds.dataroot_lq)))

    path_opts = _build(PathOptions, raw.get("path") or {}, f"{where}: path")
    if not path_opts.strict_load_g:
        raise OptionsError(f"{where}: path.strict_load_g false: evaluation needs every weight")
    spec = path_opts.pretrain_network_g
    if spec is not None and (base / str(spec)).exists():  # a file or folder beside the options; else a zoo name
        path_opts = dataclasses.replace(path_opts, pretrain_network_g=str(base / str(spec)))

    val_raw = dict(raw.get("val") or {})
    metrics = {}
    for key, m in (val_raw.pop("metrics", None) or {}).items():
        mo = _build(MetricOptions, m, f"{where}: val.metrics.{key}")
        if mo.type not in _METRIC_TYPES:
            raise OptionsError(f"{where}: val.metrics.{key}.type {mo.type!r}; known: {', '.join(_METRIC_TYPES)}")
        metrics[key] = mo
    val = _build(ValOptions, val_raw, f"{where}: val", metrics=metrics)

    top = {k: v for k, v in raw.items() if k not in ("datasets", "path", "val")}
    network_g = top.get("network_g")
    if network_g is not None and (not isinstance(network_g, Mapping) or network_g.get("type", "SwinIR") != "SwinIR"):
        raise OptionsError(f"{where}: network_g must describe a SwinIR (type: SwinIR)")
    opts = _build(TestOptions, top, where, datasets=tuple(datasets), path=path_opts, val=val, source=where)
    if opts.task is not None and opts.task not in TASKS:
        raise OptionsError(f"{where}: task must be one of {', '.join(TASKS)}, got {opts.task!r}")
    opts.crop_border(), opts.y_channel()  # fail now, not after loading the model
    return opts


def _check_network_g(opts: TestOptions, model: nn.Module) -> None:
    """network_g, when given, must describe the loaded model (img_size aside, which changes nothing)."""
    from .network import SwinIRConfig

    given = {k: v for k, v in opts.network_g.items() if k != "type"}
    try:
        expected = SwinIRConfig(**given)
    except (TypeError, ValueError) as e:
        raise OptionsError(f"{opts.source}: network_g: {e}") from None
    for key in given:
        if key == "img_size":
            continue
        a, b = getattr(expected, key), getattr(model.config, key)
        if a != b:
            raise OptionsError(f"{opts.source}: network_g.{key} is {a!r} but the model has {b!r}")


def run_options(opts: TestOptions, *, model: Optional[str] = None, **overrides: Any) -> List[EvalResult]:
    """Evaluate every dataset of ``opts``; ``model`` (a spec) replaces path.pretrain_network_g and network_g."""
    spec = model or opts.path.pretrain_network_g
    if spec is None:
        raise OptionsError(f"{opts.source}: path.pretrain_network_g is not set (or pass --model)")
    label = str(spec)
    if str(spec).lower() != BICUBIC:
        from .zoo import ModelLoadError, load_model

        try:
            loaded: ModelSpec = load_model(spec, device="cpu", weights_dir=overrides.get("weights_dir"))
        except (ModelLoadError, OSError) as e:
            raise EvalError(f"cannot load model {label!r}: {e}") from None
        if model is None and opts.network_g is not None:
            _check_network_g(opts, loaded)
    else:
        loaded = BICUBIC
    settings = dict(scale=opts.scale, task=opts.task, noise=opts.noise, jpeg=opts.jpeg, seed=opts.manual_seed,
                    metrics=opts.metric_names() or None, lpips_net=opts.lpips_net(),
                    crop_border=opts.crop_border(), y_channel=opts.y_channel(), progress=opts.val.pbar)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    save_root = settings.pop("save_images", None)
    results = []
    for ds in opts.datasets:
        if save_root is not None:
            save = Path(save_root) / ds.name if len(opts.datasets) > 1 else Path(save_root)
        else:
            save = Path("results") / opts.name / ds.name if opts.val.save_img else None
        results.append(evaluate(loaded, ds.dataroot_gt, lq=ds.dataroot_lq, lq_template=ds.filename_tmpl,
                                name=ds.name, model_label=label, save_images=save, **settings))
    return results


# ---------------------------------------------------------------------------------------------
# CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as every other usage error
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _tile(value: str) -> Union[int, str]:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in pixels or 'auto', got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m swinir_app.evaluate",
                description="Score a model with the SwinIR paper's protocol (PSNR/SSIM on Y and RGB, PSNR-B, "
                            "LPIPS).")
    p.add_argument("-opt", "--opt", type=Path, metavar="YML", help="a BasicSR-style test options file")
    p.add_argument("--model", help="zoo name, checkpoint file, training folder, or 'bicubic' (no weights)")
    p.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth images")
    p.add_argument("--lq", type=Path, metavar="DIR",
                   help="input images (SR: <name>x<K>.<ext> or <name>.<ext>); default: made from the GT")
    p.add_argument("--scale", type=int, metavar="K", help="SR factor (default: the model's; required for bicubic)")
    p.add_argument("--task", choices=TASKS, help="default: the model's")
    p.add_argument("--noise", type=float, metavar="SIGMA",
                   help="denoising: sigma on 0-255 (default: the model's name, e.g. color-dn-25, else 15)")
    p.add_argument("--jpeg", type=int, metavar="Q",
                   help="JPEG: quality of the input (default: the model's name, e.g. gray-jpeg-10, else 40)")
    p.add_argument("--seed", type=int, default=0, help="denoising: noise seed, reset for every image (0)")
    p.add_argument("--metrics", nargs="+", choices=METRICS, metavar="M",
                   help=f"of {', '.join(METRICS)} (default: psnr ssim, plus psnrb for JPEG)")
    p.add_argument("--lpips-net", choices=LPIPS_NETS, default="alex", help="LPIPS backbone (alex)")
    p.add_argument("--crop-border", type=int, metavar="N", help="default: scale for SR, 0 otherwise")
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations")
    p.add_argument("--tile", type=_tile, metavar="N|auto", help="restore in N x N input tiles, or 'auto' from free "
                                                               "memory (saves memory; changes results slightly)")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="N")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default: the published numbers)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--weights-dir", type=Path, metavar="DIR", help="where zoo weights are cached")
    p.add_argument("--save-images", type=Path, metavar="DIR", help="write the outputs as PNG")
    p.add_argument("--out", type=Path, metavar="JSON", help="summary, protocol and per-image numbers")
    p.add_argument("--csv", type=Path, metavar="CSV", help="per-image numbers")
    p.add_argument("--per-image", action="store_true", help="print a row per image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return p


def _suffixed(path: Optional[Path], name: str, many: bool) -> Optional[Path]:
    """With several datasets, one file each: results.json -> results_Set5.json."""
    return path.with_name(f"{path.stem}_{name}{path.suffix}") if path and many else path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    common = dict(self_ensemble=args.self_ensemble, tile=args.tile, tile_overlap=args.tile_overlap,
                  precision=args.precision, device=args.device, weights_dir=args.weights_dir)
    try:
        if args.opt:
            if args.gt or args.lq:
                raise EvalError("-opt takes its folders from the options file: drop --gt/--lq")
            results = run_options(load_options(args.opt), model=args.model, save_images=args.save_images,
                                  progress=False if args.no_progress else None, **common)
        else:
            if not args.model or not args.gt:
                raise EvalError("need --model and --gt (or -opt FILE)")
            results = [evaluate(args.model, args.gt, lq=args.lq, scale=args.scale,
                                task=args.task, noise=args.noise, jpeg=args.jpeg, seed=args.seed,
                                metrics=args.metrics, lpips_net=args.lpips_net, crop_border=args.crop_border,
                                save_images=args.save_images, progress=not args.no_progress, **common)]
    except (EvalError, LPIPSWeightsMissing) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    many = len(results) > 1
    for r in results:
        print(r.table(per_image=args.per_image))
        if args.out:
            r.write_json(_suffixed(args.out, r.protocol.dataset, many))
        if args.csv:
            r.write_csv(_suffixed(args.csv, r.protocol.dataset, many))
    failed = sum(len(r.failures) for r in results)
    if failed:
        print(f"{failed} image(s) could not be scored (listed above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
