"""Training options: a BasicSR-style YAML file, parsed once into typed, checked objects.

    name / model_type / scale / num_gpu / manual_seed
    datasets: {train: ..., val: ..., val_2: ...}    network_g: {type: SwinIR, <SwinIR arguments>}
    path / train / val / logger / dist_params

BasicSR's own SwinIR training files parse as they are. Every key is known: an unknown or misspelled
one is an error that names it with its full path (``train.optim_g.lrr``). ``--force_yml a:b=value``
overrides are applied to the raw tree before checking, values read as YAML scalars.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import random
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..network import SwinIRConfig

SKIMAGE_SCHEME = "skimage://"  # a dataroot naming scikit-image's bundled photos: skimage://astronaut,coffee
DATASET_TYPES = {
    "PairedImageDataset": "paired",  # HR + LR folders/lmdb; without dataroot_lq the LR is MATLAB bicubic
    "SingleHRDataset": "bicubic",  # HR only, LR made with MATLAB bicubic (and cached)
    "DenoisingDataset": "noise",  # HR only, Gaussian noise of sigma (fixed or a [min, max] range)
    "JPEGDataset": "jpeg",  # HR only, OpenCV JPEG at quality (fixed or a [min, max] range)
}
MODEL_TYPES = ("SwinIRModel", "SRModel")
OPTIMIZERS = ("Adam", "AdamW", "Adamax", "SGD", "RMSprop")
_MULTISTEP = {"milestones": Tuple[int, ...], "gamma": float, "restarts": Tuple[int, ...],
              "restart_weights": Tuple[float, ...]}
SCHEDULERS = {  # BasicSR's: MultiStepLR is its MultiStepRestartLR
    "MultiStepLR": _MULTISTEP,
    "MultiStepRestartLR": _MULTISTEP,
    "CosineAnnealingRestartLR": {"periods": Tuple[int, ...], "restart_weights": Tuple[float, ...], "eta_min": float},
}
LOSSES = {"L1Loss": "l1", "MSELoss": "mse", "CharbonnierLoss": "charbonnier",
          "L1": "l1", "MSE": "mse", "Charbonnier": "charbonnier"}
METRIC_TYPES = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "calculate_psnrb": "psnrb"}
AMP_DTYPES = ("bf16", "fp16")


class OptionsError(Exception):
    """An options file (or override) that cannot be used; ``str()`` is one line naming the key."""


# ---------------------------------------------------------------------------------------------
# The typed tree


@dataclass(frozen=True)
class IOBackendOptions:
    type: str = "disk"  # disk | lmdb


@dataclass(frozen=True)
class DatasetOptions:
    name: str = ""
    type: str = "PairedImageDataset"
    dataroot_gt: Optional[str] = None
    dataroot_lq: Optional[str] = None
    meta_info_file: Optional[str] = None
    filename_tmpl: str = "{}"
    io_backend: IOBackendOptions = field(default_factory=IOBackendOptions)
    # training crops and augmentation
    gt_size: Optional[int] = None
    use_hflip: bool = True
    use_flip: Optional[bool] = None  # the older BasicSR name of use_hflip
    use_rot: bool = True
    # degradations made on the fly
    sigma: Union[float, Tuple[float, float], None] = None  # DenoisingDataset: 15, or [0, 50] drawn per patch
    quality: Union[int, Tuple[int, int], None] = None  # JPEGDataset: 40, or [10, 40] drawn per patch
    noise_seed: int = 0  # validation noise: reseeded per image, as the official test script
    lq_cache: Optional[str] = None  # where MATLAB-bicubic LR images are cached (default: <experiment>/cache)
    # loader
    use_shuffle: bool = True
    batch_size_per_gpu: int = 1
    num_worker_per_gpu: int = 0
    dataset_enlarge_ratio: int = 1
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_mode: Optional[str] = None  # accepted for BasicSR files; loading is the DataLoader's workers
    num_prefetch_queue: int = 1
    phase: Optional[str] = None  # set by BasicSR itself; accepted
    scale: Optional[int] = None  # idem

    @property
    def kind(self) -> str:
        return DATASET_TYPES[self.type]

    @property
    def hflip(self) -> bool:
        return self.use_hflip if self.use_flip is None else self.use_flip


@dataclass(frozen=True)
class NetworkOptions:
    type: str
    config: SwinIRConfig


@dataclass(frozen=True)
class PathOptions:
    pretrain_network_g: Optional[str] = None
    strict_load_g: bool = True
    param_key_g: str = "params"
    resume_state: Optional[str] = None
    experiments_root: Optional[str] = None  # default experiments/<name>
    visualization: Optional[str] = None  # default <experiments_root>/visualization


@dataclass(frozen=True)
class TypedOptions:
    """``{type: X, ...arguments}``: the arguments are checked against what X takes."""

    type: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class TrainOptions:
    optim_g: TypedOptions
    total_iter: int
    scheduler: Optional[TypedOptions] = None
    pixel_opt: TypedOptions = TypedOptions("L1Loss", {})
    ema_decay: float = 0.0
    warmup_iter: int = -1
    amp: Optional[str] = None  # bf16 | fp16: mixed precision for the transformer body
    grad_clip: Optional[float] = None  # max total gradient norm
    nan_tolerance: int = 10  # consecutive non-finite steps (skipped) before training stops


@dataclass(frozen=True)
class MetricOptions:
    type: str
    crop_border: Optional[int] = None  # default: scale for SR, 0 for denoising/JPEG
    test_y_channel: bool = True
    better: str = "higher"

    @property
    def metric(self) -> str:
        return METRIC_TYPES[self.type]


@dataclass(frozen=True)
class ValOptions:
    val_freq: int = 5000
    save_img: bool = False
    suffix: Optional[str] = None
    pbar: bool = False
    metrics: Dict[str, MetricOptions] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggerOptions:
    print_freq: int = 100
    save_checkpoint_freq: int = 5000
    use_tb_logger: bool = True
    wandb: Optional[Dict[str, Any]] = None  # accepted for BasicSR files; not used


@dataclass(frozen=True)
class DistOptions:
    backend: Optional[str] = None  # accepted; the backend is nccl on CUDA and gloo on CPU
    port: Optional[int] = None  # accepted; torchrun sets the rendezvous


@dataclass(frozen=True)
class Options:
    """A training options file, parsed and checked."""

    name: str
    network_g: NetworkOptions
    train: TrainOptions
    datasets: Dict[str, DatasetOptions]
    model_type: str = "SwinIRModel"
    scale: int = 1
    num_gpu: Union[int, str] = "auto"
    manual_seed: Optional[int] = None
    path: PathOptions = field(default_factory=PathOptions)
    val: Optional[ValOptions] = None
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    dist_params: DistOptions = field(default_factory=DistOptions)
    source: str = ""  # the file it was read from

    @property
    def train_set(self) -> DatasetOptions:
        return self.datasets["train"]

    @property
    def val_sets(self) -> Tuple[DatasetOptions, ...]:
        return tuple(d for k, d in self.datasets.items() if k != "train")

    @property
    def experiments_root(self) -> Path:
        return Path(self.path.experiments_root or Path("experiments") / self.name)

    @property
    def task(self) -> str:
        return self.network_g.config.task

    def crop_border(self, metric: MetricOptions) -> int:
        if metric.crop_border is not None:
            return metric.crop_border
        return self.scale if self.network_g.config.upsampler else 0

    def to_dict(self) -> Dict[str, Any]:
        """The options as YAML data in the file's layout, every default filled in (for the log)."""
        return {k: v for k, v in _plain(self).items() if k != "source"}


def _plain(x: Any) -> Any:
    if isinstance(x, NetworkOptions):
        return {"type": x.type, **x.config.to_dict()}
    if isinstance(x, TypedOptions):
        return {"type": x.type, **_plain(dict(x.args))}
    if dataclasses.is_dataclass(x):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------
# Reading


def load_options(path: Union[str, os.PathLike], overrides: Sequence[str] = (), *, debug: bool = False) -> Options:
    """Read, override (``key:sub=value``) and check a training options file."""
    text = read_text(path)
    raw = parse_yaml(text, str(path))
    for entry in overrides:
        apply_override(raw, entry, str(path))
    if debug:
        apply_debug(raw)
    return parse_options(raw, source=str(path))


def read_text(path: Union[str, os.PathLike]) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise OptionsError(f"cannot read options file {path}: {e.strerror or e}") from None


def parse_yaml(text: str, source: str) -> Dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise OptionsError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict):
        raise OptionsError(f"{source}: expected a mapping at the top level")
    return raw


def apply_override(raw: Dict[str, Any], entry: str, source: str = "--force_yml") -> None:
    """BasicSR's ``--force_yml train:ema_decay=0.999``: the value is read as a YAML scalar or list."""
    import yaml

    keys, sep, text = entry.partition("=")
    if not sep or not keys:
        raise OptionsError(f"--force_yml {entry!r}: expected key:sub=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise OptionsError(f"--force_yml {entry!r}: the value is not valid YAML") from None
    node = raw
    parts = keys.split(":")
    for i, key in enumerate(parts[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise OptionsError(f"--force_yml {entry!r}: {'.'.join(parts[:i + 1])} is not a mapping")
        node = child
    node[parts[-1]] = value


def apply_debug(raw: Dict[str, Any]) -> None:
    """BasicSR's --debug: a debug_ name, a log line every iteration, validation and saving every 8."""
    name = str(raw.get("name", ""))
    if not name.startswith("debug"):
        raw["name"] = f"debug_{name}"
    for section, key, value in (("logger", "print_freq", 1), ("logger", "save_checkpoint_freq", 8),
                                ("val", "val_freq", 8)):
        if section == "val" and not isinstance(raw.get("val"), dict):
            continue
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
        raw[section][key] = value


def parse_options(raw: Mapping[str, Any], source: str = "options") -> Options:
    """The typed options of a raw YAML tree; errors name the file and the full key."""
    p = _Parser(source)
    raw = dict(raw)
    if "datasets" not in raw or not isinstance(raw["datasets"], Mapping) or "train" not in raw["datasets"]:
        raise OptionsError(f"{source}: datasets.train is missing: it names the training data")
    datasets = {}
    for key, value in raw["datasets"].items():
        phase = str(key).split("_")[0]
        if phase not in ("train", "val"):
            raise OptionsError(f"{source}: datasets.{key}: dataset keys are train, val or val_<anything>")
        datasets[str(key)] = p.build(DatasetOptions, value, f"datasets.{key}")
        if not datasets[str(key)].name:
            datasets[str(key)] = dataclasses.replace(datasets[str(key)], name=str(key))
    network = p.network(raw.get("network_g"))
    top = {k: v for k, v in raw.items() if k not in ("datasets", "network_g")}
    top.setdefault("scale", network.config.upscale)
    if "train" not in top:
        raise OptionsError(f"{source}: train is missing: it holds the optimizer, schedule and loss")
    opts = p.build(Options, top, "", datasets=datasets, network_g=network, source=source)
    return _check(opts, p)


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, message: str) -> OptionsError:
        return OptionsError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def build(self, cls, data: Any, where: str, **fixed):
        """``cls(**data)`` with every value coerced to its field's type; unknown keys name themselves."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise self.error(where, f"expected a mapping, got {data!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in fixed and f.name != "source"}
        values = {}
        for key, value in data.items():
            full = f"{where}.{key}" if where else str(key)
            if key not in fields:
                raise self.unknown(full, list(fields))
            values[key] = self.coerce(value, hints[key], full)
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in values:
                raise self.error(f"{where}.{name}" if where else name, "is required")
        return cls(**values, **fixed)

    def unknown(self, full: str, known: Sequence[str]) -> OptionsError:
        key = full.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return OptionsError(f"{self.source}: unknown option {full}{hint}; known here: {', '.join(sorted(known))}")

    def coerce(self, value: Any, tp: Any, where: str) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            return value
        if origin in (Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:  # Optional[X]: X's own error says more
                return self.coerce(value, options[0], where)
            for option in options:
                try:
                    return self.coerce(value, option, where)
                except OptionsError:
                    pass
            raise self.error(where, f"expected {_describe(tp)}, got {value!r}")
        if dataclasses.is_dataclass(tp):
            if tp is TypedOptions:
                return self.typed(value, where)
            return self.build(tp, value, where)
        if origin in (tuple, list):
            if not isinstance(value, (list, tuple)):
                raise self.error(where, f"expected a list ({_describe(tp)}), got {value!r}")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) != len(args):
                raise self.error(where, f"expected {len(args)} values, got {len(value)}")
            return tuple(self.coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        if origin in (dict, Mapping) or tp in (dict, Mapping):
            if not isinstance(value, Mapping):
                raise self.error(where, f"expected a mapping, got {value!r}")
            vt = args[1] if args else Any
            return {str(k): self.coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
        if tp is bool:
            if isinstance(value, bool):
                return value
            raise self.error(where, f"expected true or false, got {value!r}")
        if tp is int:
            number = self._number(value, where, tp)
            if number != int(number):
                raise self.error(where, f"expected a whole number, got {value!r}")
            return int(number)
        if tp is float:
            return float(self._number(value, where, tp))
        if tp is str:
            if isinstance(value, str):
                return value
            raise self.error(where, f"expected a string, got {value!r}")
        raise TypeError(f"unsupported option type {tp!r} at {where}")  # a bug here, not in the file

    def _number(self, value: Any, where: str, tp: Any) -> float:
        # YAML 1.1 reads 5e3 (no dot) as a string; BasicSR files write !!float 5e3. Take both.
        if isinstance(value, bool) or value is None:
            raise self.error(where, f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise self.error(where, f"expected a number, got {value!r}")

    def typed(self, value: Any, where: str) -> TypedOptions:
        if not isinstance(value, Mapping) or "type" not in value:
            raise self.error(where, f"expected a mapping with a type, got {value!r}")
        args = {str(k): v for k, v in value.items() if k != "type"}
        return TypedOptions(str(value["type"]), args)

    def network(self, value: Any) -> NetworkOptions:
        if not isinstance(value, Mapping):
            raise self.error("network_g", "is required: type: SwinIR and the SwinIR arguments")
        kind = value.get("type", "SwinIR")
        if kind != "SwinIR":
            raise self.error("network_g.type", f"{kind!r}: only SwinIR is trained here")
        known = [f.name for f in dataclasses.fields(SwinIRConfig)]
        args = {}
        hints = typing.get_type_hints(SwinIRConfig)
        for key, v in value.items():
            if key == "type":
                continue
            if key not in known:
                raise self.unknown(f"network_g.{key}", known + ["type"])
            if key == "upsampler" and v is None:  # KAIR and some BasicSR files write null for "none"
                v = ""
            args[key] = self.coerce(v, hints[key], f"network_g.{key}") if key != "img_size" else v
        try:
            return NetworkOptions("SwinIR", SwinIRConfig.from_dict(args))
        except (TypeError, ValueError) as e:
            raise self.error("network_g", str(e)) from None


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        return "a list of " + (_describe(args[0]) + "s" if args and args[-1] is Ellipsis else
                               f"{len(args)} values")
    return {int: "a whole number", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


# ---------------------------------------------------------------------------------------------
# Checks across keys


def _choice(p: _Parser, where: str, value: Any, choices) -> None:
    if value not in choices:
        raise p.error(where, f"{value!r} is not one of {', '.join(map(str, choices))}")


def _check(opts: Options, p: _Parser) -> Options:
    cfg = opts.network_g.config
    _choice(p, "model_type", opts.model_type, MODEL_TYPES)
    if isinstance(opts.num_gpu, str) and opts.num_gpu != "auto":
        raise p.error("num_gpu", f"{opts.num_gpu!r}: a number or auto")
    if cfg.upsampler and opts.scale != cfg.upscale:
        raise p.error("scale", f"{opts.scale} but network_g.upscale is {cfg.upscale}")
    if not cfg.upsampler and opts.scale != 1:
        raise p.error("scale", f"{opts.scale}, but network_g has no upsampler (denoising/JPEG): use scale 1")
    for key, ds in opts.datasets.items():
        where = f"datasets.{key}"
        _choice(p, f"{where}.type", ds.type, DATASET_TYPES)
        _choice(p, f"{where}.io_backend.type", ds.io_backend.type, ("disk", "lmdb"))
        if not ds.dataroot_gt:
            raise p.error(f"{where}.dataroot_gt", "is required")
        if ds.kind == "paired" and ds.dataroot_lq is None and ds.io_backend.type == "lmdb":
            raise p.error(f"{where}.dataroot_lq", "is required with io_backend lmdb")
        if ds.kind != "paired" and ds.dataroot_lq is not None:
            raise p.error(f"{where}.dataroot_lq", f"{ds.type} makes the LR itself; use PairedImageDataset")
        if ds.kind in ("paired", "bicubic") and not cfg.upsampler:
            raise p.error(f"{where}.type", f"{ds.type} is for super-resolution; network_g has no upsampler "
                                           f"(use DenoisingDataset or JPEGDataset)")
        if ds.kind in ("noise", "jpeg") and cfg.upsampler:
            raise p.error(f"{where}.type", f"{ds.type} is for restoration at scale 1; network_g upsamples "
                                           f"x{cfg.upscale}")
        level, name = (ds.sigma, "sigma") if ds.kind == "noise" else (ds.quality, "quality")
        if ds.kind in ("noise", "jpeg"):
            if level is None:
                raise p.error(f"{where}.{name}", f"is required for {ds.type}")
            lo, hi = level if isinstance(level, tuple) else (level, level)
            if lo > hi or lo < 0 or (name == "quality" and not 1 <= lo <= hi <= 100):
                raise p.error(f"{where}.{name}", f"{level!r} is not a valid {name} (or [min, max] range)")
            if key != "train" and isinstance(level, tuple) and lo != hi:
                raise p.error(f"{where}.{name}", "validation needs one fixed level, not a range")
        elif ds.sigma is not None or ds.quality is not None:
            raise p.error(f"{where}", f"sigma/quality are for DenoisingDataset/JPEGDataset, not {ds.type}")
        if ds.prefetch_mode not in (None, "cpu", "cuda"):
            raise p.error(f"{where}.prefetch_mode", f"{ds.prefetch_mode!r} is not one of null, cpu, cuda")
        for name in ("batch_size_per_gpu", "dataset_enlarge_ratio"):
            if getattr(ds, name) < 1:
                raise p.error(f"{where}.{name}", "must be at least 1")
        if ds.num_worker_per_gpu < 0:
            raise p.error(f"{where}.num_worker_per_gpu", "must be 0 or more")
        if key == "train":
            if ds.gt_size is None:
                raise p.error(f"{where}.gt_size", "is required: the HR patch size")
            if ds.gt_size % opts.scale:
                raise p.error(f"{where}.gt_size", f"{ds.gt_size} is not a multiple of scale {opts.scale}")
    t = opts.train
    _choice(p, "train.optim_g.type", t.optim_g.type, OPTIMIZERS)
    signature = inspect.signature(getattr(torch.optim, t.optim_g.type)).parameters
    optim_types = {k: _arg_type(v.default) for k, v in signature.items() if k not in ("params", "self")}
    optim = _typed_args(p, t.optim_g, "train.optim_g", optim_types)
    if "lr" not in optim.args:
        raise p.error("train.optim_g.lr", "is required")
    lr = optim.args["lr"]
    if not (math.isfinite(lr) and lr >= 0):
        raise p.error("train.optim_g.lr", f"{lr!r} is not a number >= 0")
    try:  # the optimizer checks the rest of its arguments (betas, weight_decay, eps...)
        getattr(torch.optim, t.optim_g.type)([torch.zeros(1, requires_grad=True)], **optim.args)
    except (ValueError, TypeError) as e:
        raise p.error("train.optim_g", " ".join(str(e).split())) from None
    scheduler = None
    if t.scheduler is not None:
        _choice(p, "train.scheduler.type", t.scheduler.type, SCHEDULERS)
        scheduler = _typed_args(p, t.scheduler, "train.scheduler", SCHEDULERS[t.scheduler.type])
        needed = "periods" if t.scheduler.type == "CosineAnnealingRestartLR" else "milestones"
        if needed not in scheduler.args:
            raise p.error(f"train.scheduler.{needed}", f"is required for {t.scheduler.type}")
    _choice(p, "train.pixel_opt.type", t.pixel_opt.type, LOSSES)
    loss_types = {"loss_weight": float, "reduction": str}
    if LOSSES[t.pixel_opt.type] == "charbonnier":
        loss_types["eps"] = float
    loss = _typed_args(p, t.pixel_opt, "train.pixel_opt", loss_types)
    if loss.args.get("reduction", "mean") not in ("mean", "sum"):
        raise p.error("train.pixel_opt.reduction", "must be mean or sum")
    for where, typed in (("train.scheduler", scheduler), ("train.pixel_opt", loss)):
        for key, value in (typed.args.items() if typed else ()):
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not (math.isfinite(v) and v >= 0) for v in values):
                raise p.error(f"{where}.{key}", f"{value!r}: every value must be a finite number >= 0")
    if scheduler is not None and any(v <= 0 for v in scheduler.args.get("periods", ())):
        raise p.error("train.scheduler.periods", "every period must be at least 1 iteration")
    if "eps" in loss.args and not loss.args["eps"] > 0:
        raise p.error("train.pixel_opt.eps", "must be positive")
    if opts.manual_seed is not None and not 0 <= opts.manual_seed < 2 ** 32:
        raise p.error("manual_seed", f"{opts.manual_seed} is not in 0 to 2**32 - 1 (or null for a random seed)")
    if t.amp is not None:
        _choice(p, "train.amp", t.amp, AMP_DTYPES)
    if not 0 <= t.ema_decay < 1:
        raise p.error("train.ema_decay", f"{t.ema_decay} is not in [0, 1)")
    if t.total_iter < 1:
        raise p.error("train.total_iter", "must be at least 1")
    if t.grad_clip is not None and t.grad_clip <= 0:
        raise p.error("train.grad_clip", "must be positive (or null for no clipping)")
    if t.nan_tolerance < 1:
        raise p.error("train.nan_tolerance", "must be at least 1")
    for key, m in (opts.val.metrics.items() if opts.val else ()):
        _choice(p, f"val.metrics.{key}.type", m.type, METRIC_TYPES)
    if opts.val is not None and opts.val.val_freq < 1:
        raise p.error("val.val_freq", "must be at least 1")
    for name in ("print_freq", "save_checkpoint_freq"):
        if getattr(opts.logger, name) < 1:
            raise p.error(f"logger.{name}", "must be at least 1")
    return dataclasses.replace(opts, train=dataclasses.replace(t, optim_g=optim, scheduler=scheduler, pixel_opt=loss))


def _arg_type(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    if isinstance(default, tuple):
        return Tuple[float, ...]
    return Any


def _typed_args(p: _Parser, typed: TypedOptions, where: str, spec: Mapping[str, Any]) -> TypedOptions:
    """``typed`` with every argument known to ``spec`` (name -> type) and coerced to its type."""
    args = {}
    for key, value in typed.args.items():
        if key not in spec:
            raise p.unknown(f"{where}.{key}", sorted(set(spec) | {"type"}))
        args[key] = p.coerce(value, spec[key], f"{where}.{key}")
    return TypedOptions(typed.type, args)


def random_seed() -> int:
    """BasicSR's choice when manual_seed is not set."""
    return random.randint(1, 10000)
