"""Options files read, overridden and checked: one path rule, one-line errors that name the key.

Relative paths in an options file are relative to the current directory, as in BasicSR (whose files
say ``datasets/DF2K/...`` and are run from its root): the shipped files are run from this repository's
root. ``--force_yml a:b=value`` overrides are applied to the raw tree before checking, the value read
as YAML.
"""
from __future__ import annotations

import difflib
import math
import os
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import torch
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from ..files import FileReadError, read_regular_file
from .schema import GAN_TYPES, SCHEDULERS, Options

PURPOSES = ("train", "test")
MAX_OPTIONS_BYTES = 16 << 20  # options files are a few KB: a larger one is not one


class OptionsError(UserError):
    """An options file (or override) that cannot be used; ``str()`` is one line naming the key."""


def load_options(path: Union[str, os.PathLike], overrides: Sequence[str] = (), *, debug: bool = False,
                 purpose: str = "train") -> Options:
    """Read, override (``key:sub=value``) and check an options file for training or testing.

    Raises :class:`OptionsError` (one line: the file, the full key, what is wrong).
    """
    raw = parse_yaml(read_text(path), str(path))
    for entry in overrides:
        apply_override(raw, entry, str(path))
    if debug:
        apply_debug(raw)
    return parse_options(raw, source=str(path), purpose=purpose)


def read_text(path: Union[str, os.PathLike]) -> str:
    # Regular files only: -opt on a FIFO would wait forever, on /dev/zero fill memory.
    try:
        return read_regular_file(Path(path), str(path), MAX_OPTIONS_BYTES).decode("utf-8")
    except FileReadError as e:
        raise OptionsError(f"cannot read options file {path}: {e.reason}") from None
    except UnicodeDecodeError:
        raise OptionsError(f"cannot read options file {path}: not UTF-8 text") from None


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


def parse_options(raw: Mapping[str, Any], source: str = "options", purpose: str = "train") -> Options:
    """The typed options of a raw YAML tree, checked for ``purpose`` ('train' or 'test')."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    raw = dict(raw)
    if purpose == "train":
        datasets = raw.get("datasets")
        if not isinstance(datasets, Mapping) or "train" not in datasets:
            raise OptionsError(f"{source}: datasets.train is missing: it names the training data")
        if "train" not in raw:
            raise OptionsError(f"{source}: train is missing: it holds the optimizer, schedule and loss")
        if not isinstance(raw.get("network_g"), Mapping):
            raise OptionsError(f"{source}: network_g: is required: type: SwinIR and the SwinIR arguments")
    try:
        opts = Options.model_validate(raw)
    except ValidationError as e:
        raise OptionsError(f"{source}: {describe(e)}") from None
    opts = opts.model_copy(update={"source": source})
    check = _check_training if purpose == "train" else _check_testing
    problem = check(opts)
    if problem:
        raise OptionsError(f"{source}: {problem}")
    return opts


# ---------------------------------------------------------------------------------------------
# pydantic's errors as one line in the words of the file


def describe(error: ValidationError) -> str:
    """The first error: ``<full key>: <what is wrong>``, or an unknown key with the closest known one."""
    err = error.errors(include_url=False)[0]
    keys = [str(p) for p in err["loc"] if _is_key(p)]
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "unknown" or kind == "extra_forbidden":
        if kind == "unknown":
            full, known = ".".join(keys + [ctx["where"]]), list(ctx["known"])
        else:
            full, known = ".".join(keys), _known_at(keys[:-1])
        key = full.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown option {full}{hint}; known here: {', '.join(sorted(known))}"
    if kind == "option":
        where = ".".join(keys + ([ctx["where"]] if ctx.get("where") else []))
        message = err["msg"][len(ctx.get("where", "")) + 2:] if ctx.get("where") else err["msg"][2:]
        return f"{where}: {message}" if where else message
    where = ".".join(keys)
    if kind == "missing":
        return f"{where}: is required"
    if kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {err.get('input')!r}"
    elif kind in ("tuple_type", "list_type"):
        message = f"expected a list, got {err.get('input')!r}"
    elif kind == "too_short" or kind == "too_long":
        message = f"expected {ctx.get('expected', '')} values, got {err.get('input')!r}".replace("  ", " ")
    elif kind == "literal_error":
        message = f"{err.get('input')!r} is not one of {ctx.get('expected', '')}"
    else:
        message = f"{err['msg']}, got {err.get('input')!r}"
    return f"{where}: {message}" if where else message


def _is_key(part: Any) -> bool:
    # pydantic adds the branches it tried to a location ('function-before[...]', 'tuple[...]', 'int')
    if isinstance(part, int):
        return False
    return not any(c in str(part) for c in "[]") and part not in ("int", "float", "str", "bool", "none")


def _known_at(keys: Sequence[str]) -> list:
    """The declared keys of the section at ``keys`` (a mapping's own keys are free)."""
    model: Any = Options
    for key in keys:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(key)
        if field is None:  # a free key of a Dict field: the section below is the dict's value type
            continue
        model = _section_type(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [k for k in model.model_fields if k != "source"]
    return []


def _section_type(annotation: Any) -> Any:
    import typing

    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) in (dict, Dict) and args:
            return _section_type(args[1])
    return None


# ---------------------------------------------------------------------------------------------
# Checks across keys


def _check_training(opts: Options) -> str:
    cfg = opts.network_g.config
    if cfg.upsampler and opts.scale != cfg.upscale:
        return f"scale: {opts.scale} but network_g.upscale is {cfg.upscale}"
    if not cfg.upsampler and opts.scale != 1:
        return f"scale: {opts.scale}, but network_g has no upsampler (denoising/JPEG): use scale 1"
    for key in ("task", "noise", "jpeg"):
        if getattr(opts, key) is not None:
            return f"{key}: is for evaluation options; training takes the task from network_g and its datasets"
    for key, ds in opts.datasets.items():
        if key.split("_")[0] not in ("train", "val"):
            return f"datasets.{key}: dataset keys are train, val or val_<anything>"
        problem = _check_dataset(opts, key, ds, cfg)
        if problem:
            return problem
    if cfg.arch == "dat" and opts.train_set.batch_size_per_gpu < 2:
        return ("datasets.train.batch_size_per_gpu: DAT needs at least 2 per process (the BatchNorm after its "
                "blocks' global average pool needs two samples in training, as in the official network)")
    if opts.queue_size is not None:
        bs = opts.train_set.batch_size_per_gpu
        if opts.queue_size < bs or opts.queue_size % bs:
            return (f"queue_size: {opts.queue_size} is not a multiple of datasets.train.batch_size_per_gpu "
                    f"({bs})")
    for key, m in (opts.val.metrics.items() if opts.val else ()):
        if m.metric == "lpips":
            return f"val.metrics.{key}.type: calculate_lpips is for evaluation; training validates with psnr/ssim/psnrb"
    t = opts.train
    problem = _check_optimizer(t) or _check_gan(opts)
    if problem:
        return problem
    if t.scheduler is not None:
        needed = "periods" if t.scheduler.type == "CosineAnnealingRestartLR" else "milestones"
        if needed not in t.scheduler.args:
            return f"train.scheduler.{needed}: is required for {t.scheduler.type}"
        if any(v <= 0 for v in t.scheduler.args.get("periods", ())):
            return "train.scheduler.periods: every period must be at least 1 iteration"
        steps = "periods" if t.scheduler.type == "CosineAnnealingRestartLR" else "restarts"
        weights = t.scheduler.args.get("restart_weights")
        if weights is not None and len(weights) != len(t.scheduler.args.get(steps, (0,))):
            return f"train.scheduler: {steps} and restart_weights differ in length"
    if t.pixel_opt.args.get("reduction", "mean") not in ("mean", "sum"):
        return "train.pixel_opt.reduction: must be mean or sum"
    for where, typed in (("train.scheduler", t.scheduler), ("train.pixel_opt", t.pixel_opt)):
        for key, value in (typed.args.items() if typed else ()):
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not (math.isfinite(v) and v >= 0) for v in values):
                return f"{where}.{key}: {value!r}: every value must be a finite number >= 0"
    if "eps" in t.pixel_opt.args and not t.pixel_opt.args["eps"] > 0:
        return "train.pixel_opt.eps: must be positive"
    if opts.manual_seed is not None and not 0 <= opts.manual_seed < 2 ** 32:
        return f"manual_seed: {opts.manual_seed} is not in 0 to 2**32 - 1 (or null for a random seed)"
    if not 0 <= t.ema_decay < 1:
        return f"train.ema_decay: {t.ema_decay} is not in [0, 1)"
    if t.total_iter < 1:
        return "train.total_iter: must be at least 1"
    if t.grad_clip is not None and not t.grad_clip > 0:
        return "train.grad_clip: must be positive (or null for no clipping)"
    if t.nan_tolerance < 1:
        return "train.nan_tolerance: must be at least 1"
    if opts.val is not None and opts.val.val_freq < 1:
        return "val.val_freq: must be at least 1"
    for name in ("print_freq", "save_checkpoint_freq"):
        if getattr(opts.logger, name) < 1:
            return f"logger.{name}: must be at least 1"
    return ""


def _check_optimizer(t) -> str:
    args = t.optim_g.args
    if "lr" not in args:
        return "train.optim_g.lr: is required"
    if not (math.isfinite(args["lr"]) and args["lr"] >= 0):
        return f"train.optim_g.lr: {args['lr']!r} is not a number >= 0"
    try:  # the optimizer checks the rest of its arguments (betas, weight_decay, eps...)
        getattr(torch.optim, t.optim_g.type)([torch.zeros(1, requires_grad=True)], **args)
    except (ValueError, TypeError) as e:
        return f"train.optim_g: {' '.join(str(e).split())}"
    return ""


def _check_dataset(opts: Options, key: str, ds, cfg) -> str:
    where = f"datasets.{key}"
    if not ds.dataroot_gt:
        return f"{where}.dataroot_gt: is required"
    if ds.kind == "paired" and ds.dataroot_lq is None and ds.io_backend.type == "lmdb":
        return f"{where}.dataroot_lq: is required with io_backend lmdb"
    if ds.kind != "paired" and ds.dataroot_lq is not None:
        return f"{where}.dataroot_lq: {ds.type} makes the LR itself; use PairedImageDataset"
    stray = [k for k in ds.realesrgan if not (ds.kind == "noise" and k == "gray_noise_prob")]
    if ds.kind != "realesrgan" and stray:
        return (f"{where}.{stray[0]}: Real-ESRGAN degradation keys are for RealESRGANDataset"
                f"{' (DenoisingDataset takes gray_noise_prob)' if ds.kind == 'noise' else ''}")
    if ds.kind == "noise" and ds.gray_noise_prob is not None and not 0 <= ds.gray_noise_prob <= 1:
        return f"{where}.gray_noise_prob: {ds.gray_noise_prob} is not a probability in [0, 1]"
    if ds.kind == "realesrgan":
        problem = _check_realesrgan(ds)
        if problem:
            return f"{where}.{problem}"
    if ds.kind in ("paired", "bicubic", "realesrgan", "bsrgan") and not cfg.upsampler:
        return (f"{where}.type: {ds.type} is for super-resolution; network_g has no upsampler "
                f"(use DenoisingDataset or JPEGDataset)")
    if ds.kind in ("noise", "jpeg") and cfg.upsampler:
        return f"{where}.type: {ds.type} is for restoration at scale 1; network_g upsamples x{cfg.upscale}"
    level, name = (ds.sigma, "sigma") if ds.kind == "noise" else (ds.quality, "quality")
    if ds.kind in ("noise", "jpeg"):
        if level is None:
            return f"{where}.{name}: is required for {ds.type}"
        lo, hi = level if isinstance(level, tuple) else (level, level)
        if lo > hi or lo < 0 or (name == "quality" and not 1 <= lo <= hi <= 100):
            return f"{where}.{name}: {level!r} is not a valid {name} (or [min, max] range)"
        if key != "train" and isinstance(level, tuple) and lo != hi:
            return f"{where}.{name}: validation needs one fixed level, not a range"
    elif ds.sigma is not None or ds.quality is not None:
        return f"{where}: sigma/quality are for DenoisingDataset/JPEGDataset, not {ds.type}"
    if ds.prefetch_mode not in (None, "cpu", "cuda"):
        return f"{where}.prefetch_mode: {ds.prefetch_mode!r} is not one of null, cpu, cuda"
    for name in ("batch_size_per_gpu", "dataset_enlarge_ratio"):
        if getattr(ds, name) < 1:
            return f"{where}.{name}: must be at least 1"
    if ds.num_worker_per_gpu < 0:
        return f"{where}.num_worker_per_gpu: must be 0 or more"
    if key == "train":
        if ds.gt_size is None:
            return f"{where}.gt_size: is required: the HR patch size"
        if ds.gt_size % opts.scale:
            return f"{where}.gt_size: {ds.gt_size} is not a multiple of scale {opts.scale}"
    return ""


def _check_gan(opts: Options) -> str:
    """A discriminator comes with its optimizer and a GAN loss; the losses' arguments are basicsr's."""
    t, d = opts.train, opts.network_d
    if d is None:
        for key in ("optim_d", "gan_opt"):
            if getattr(t, key) is not None:
                return f"train.{key}: GAN training needs a discriminator: add network_d (UNetDiscriminatorSN)"
        if opts.path.pretrain_network_d:
            return "path.pretrain_network_d: there is no network_d to load it into"
        return ""
    if t.optim_d is None:
        return "train.optim_d: is required with network_d (Adam, lr 1e-4 in the published recipe)"
    if t.gan_opt is None:
        return "train.gan_opt: is required with network_d ({type: GANLoss, gan_type: vanilla, loss_weight: 0.1})"
    if "lr" not in t.optim_d.args:
        return "train.optim_d.lr: is required"
    gan_type = t.gan_opt.args.get("gan_type", "vanilla")
    if gan_type not in GAN_TYPES:
        return f"train.gan_opt.gan_type: {gan_type!r} is not one of {', '.join(GAN_TYPES)}"
    p = t.perceptual_opt
    if p is not None:
        if p.args.get("vgg_type", "vgg19") not in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn",
                                                  "vgg16_bn", "vgg19_bn"):
            return f"train.perceptual_opt.vgg_type: {p.args['vgg_type']!r} is not a torchvision VGG"
        if p.args.get("criterion", "l1") not in ("l1", "l2", "fro"):
            return f"train.perceptual_opt.criterion: {p.args['criterion']!r} is not one of l1, l2, fro"
        if not p.args.get("layer_weights"):
            return "train.perceptual_opt.layer_weights: is required (conv1_2: 0.1, ..., conv5_4: 1)"
    if t.net_d_iters < 1 or t.net_d_init_iters < 0:
        return "train.net_d_iters must be at least 1 and net_d_init_iters at least 0"
    if d.type == "VGGStyleDiscriminator" and d.args.get("input_size", 128) != opts.train_set.gt_size:
        return (f"network_d.input_size: {d.args.get('input_size', 128)} must equal datasets.train.gt_size "
                f"({opts.train_set.gt_size}) for VGGStyleDiscriminator")
    return ""


def _check_realesrgan(ds) -> str:
    """Real-ESRGAN's keys: probabilities in [0, 1], ranges ordered, kernels known, odd kernel sizes."""
    kernels = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
    for name, value in ds.realesrgan.items():
        if name.endswith("_prob") or name[:-1].endswith("_prob"):
            values = value if isinstance(value, tuple) else (value,)
            if not all(0 <= v <= 1 for v in values):
                return f"{name}: {value!r}: probabilities are in [0, 1]"
        if name.startswith("kernel_list") and not set(value) <= set(kernels):
            return f"{name}: {value!r}: kernels are {', '.join(kernels)}"
        if name.startswith("blur_kernel_size") and (value < 7 or value % 2 == 0):
            return f"{name}: {value}: an odd size of at least 7 (Real-ESRGAN draws 7 to 21)"
        if isinstance(value, tuple) and len(value) == 2 and name.endswith(("_range", "_range2", "_sigma", "_sigma2")) \
                and not 0 <= value[0] <= value[1]:
            return f"{name}: {value!r} is not a [min, max] range"
        if name.startswith(("blur_sigma", "betag_range", "betap_range")) and not value[0] < value[1]:
            return f"{name}: {value!r}: basicsr draws from [min, max) and needs min < max"
        if name.startswith("jpeg_range") and not 1 <= value[0] <= value[1] <= 99:
            return f"{name}: {value!r}: JPEG qualities are in 1..99 (basicsr's DiffJPEG divides by zero at 100)"
    for a, b in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
        la, lb = ds.realesrgan.get(a), ds.realesrgan.get(b)
        if (la is None) != (lb is None) or (la is not None and len(la) != len(lb)):
            return f"{b}: give one probability per kernel of {a} (both, or neither)"
    return ""


def _check_testing(opts: Options) -> str:
    """A BasicSR test file: datasets scored with a GT folder and an optional LQ folder."""
    if not opts.test_sets:
        return "datasets: name at least one set to score (test_1: {dataroot_gt: ...})"
    for key, ds in opts.datasets.items():
        if key == "train":
            return "datasets.train: a test options file scores datasets (test_1, val, ...), it does not train"
        where = f"datasets.{key}"
        if ds.type != "PairedImageDataset":
            return f"{where}.type: {ds.type!r}: only PairedImageDataset (GT folder, optional LQ folder) can be scored"
        if ds.io_backend.type != "disk":
            return f"{where}.io_backend: only {{type: disk}} is supported"
        if not ds.dataroot_gt:
            return f"{where}.dataroot_gt: is required"
    if not opts.path.strict_load_g:
        return "path.strict_load_g: false: evaluation needs every weight"
    borders = {m.crop_border for m in opts.metrics().values() if m.crop_border is not None}
    if len(borders) > 1:
        return f"val.metrics use different crop_border values {sorted(borders)}; one protocol has one"
    if len({m.test_y_channel for m in opts.metrics().values() if m.metric != "lpips"}) > 1:
        return "val.metrics mix test_y_channel true and false"
    return ""


def random_seed() -> int:
    """BasicSR's choice when manual_seed is not set."""
    return random.randint(1, 10000)


__all__ = ["OptionsError", "SCHEDULERS", "apply_debug", "apply_override", "load_options", "parse_options",
           "parse_yaml", "random_seed", "read_text"]
