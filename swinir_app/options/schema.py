"""The one BasicSR-compatible options schema, for training and for evaluation, declared with pydantic.

    name / model_type / scale / num_gpu / manual_seed
    datasets: {train: ..., val: ..., val_2: ..., test_1: ...}    network_g: {type: SwinIR, <SwinIR arguments>}
    path / train / val / logger / dist_params                     task / noise / jpeg (evaluation)

BasicSR's own SwinIR training and test files parse as they are. Every key is declared: an unknown or
misspelled one is an error that names it with its full path (``train.optim_g.lrr``) and the closest
known key. Values keep BasicSR's YAML: ``5e3`` (a string to YAML 1.1) is a number, a bool is not.
Checks that span keys (a scale that fits the network, a patch that fits the scale) are in
:func:`check_training` and :func:`check_testing`.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Dict, Literal, Mapping, Optional, Tuple, Union

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, InstanceOf, model_validator
from pydantic_core import PydanticCustomError

from ..network import ARCH_NAMES, SwinIRConfig

SKIMAGE_SCHEME = "skimage://"  # a dataroot naming scikit-image's bundled photos: skimage://astronaut,coffee
DATASET_TYPES = {
    "PairedImageDataset": "paired",  # HR + LR folders/lmdb; without dataroot_lq the LR is MATLAB bicubic
    "SingleHRDataset": "bicubic",  # HR only, LR made with MATLAB bicubic (and cached)
    "DenoisingDataset": "noise",  # HR only, Gaussian noise of sigma (fixed or a [min, max] range)
    "JPEGDataset": "jpeg",  # HR only, OpenCV JPEG at quality (fixed or a [min, max] range)
    "RealESRGANDataset": "realesrgan",  # HR only, Real-ESRGAN's second-order degradation per patch
    "BSRGANDataset": "bsrgan",  # HR only, BSRGAN's random-order degradation per patch (KAIR's blindsr)
}
# Real-ESRGAN's degradation keys (train_realesrgan_x4plus.yml), all in the dataset's section here; unset
# ones take Real-ESRGAN's values (swinir_app.train.realworld.RealESRGANSettings).
REALESRGAN_KEYS = ("blur_kernel_size", "kernel_list", "kernel_prob", "sinc_prob", "blur_sigma", "betag_range",
                   "betap_range", "resize_prob", "resize_range", "gaussian_noise_prob", "noise_range",
                   "poisson_scale_range", "gray_noise_prob", "jpeg_range", "second_blur_prob", "blur_kernel_size2",
                   "kernel_list2", "kernel_prob2", "sinc_prob2", "blur_sigma2", "betag_range2", "betap_range2",
                   "resize_prob2", "resize_range2", "gaussian_noise_prob2", "noise_range2", "poisson_scale_range2",
                   "gray_noise_prob2", "jpeg_range2", "final_sinc_prob", "gt_usm")
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
METRIC_TYPES = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "calculate_psnrb": "psnrb",
                "calculate_lpips": "lpips"}
# GAN training: basicsr's discriminators and losses, with the arguments their constructors take.
DISCRIMINATORS = {"UNetDiscriminatorSN": {"num_in_ch": int, "num_feat": int, "skip_connection": bool},
                  "VGGStyleDiscriminator": {"num_in_ch": int, "num_feat": int, "input_size": int}}
PERCEPTUAL_ARGS = {"layer_weights": Dict[str, float], "vgg_type": str, "use_input_norm": bool, "range_norm": bool,
                   "perceptual_weight": float, "style_weight": float, "criterion": str}
GAN_ARGS = {"gan_type": str, "real_label_val": float, "fake_label_val": float, "loss_weight": float}
GAN_TYPES = ("vanilla", "lsgan", "hinge", "wgan", "wgan_softplus")
TASKS = ("sr", "denoise", "jpeg")
AMP_DTYPES = ("bf16", "fp16")


# ---------------------------------------------------------------------------------------------
# Values as BasicSR's YAML writes them


def _number(v: Any) -> Union[int, float]:
    # YAML 1.1 reads 5e3 (no dot) as a string; BasicSR files write !!float 5e3. Take both.
    if isinstance(v, bool) or v is None:
        raise ValueError(f"expected a number, got {v!r}")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {v!r}")


def _whole(v: Any) -> int:
    n = _number(v)
    if isinstance(n, float) and not (math.isfinite(n) and n == int(n)):
        raise ValueError(f"expected a whole number, got {v!r}")
    return int(n)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected true or false, got {v!r}")


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise ValueError(f"expected a string, got {v!r}")


def _one_of(*choices: str):
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"{v!r} is not one of {', '.join(choices)}")
        return v
    return BeforeValidator(check)


Int = Annotated[int, BeforeValidator(_whole)]
Float = Annotated[float, BeforeValidator(lambda v: float(_number(v)))]
Bool = Annotated[bool, BeforeValidator(_bool)]
Str = Annotated[str, BeforeValidator(_text)]
Level = Union[Float, Tuple[Float, Float]]  # a fixed level, or a [min, max] range drawn per patch
Pair = Tuple[Float, Float]


class Section(BaseModel):
    """A mapping of the file: every key declared, values checked, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# The sections


class IOBackendOptions(Section):
    type: Annotated[str, _one_of("disk", "lmdb")] = "disk"


class DatasetOptions(Section):
    """``datasets.<key>``: where the images are and how LQ is made (training, validation, testing)."""

    name: Str = ""
    type: Annotated[str, _one_of(*DATASET_TYPES)] = "PairedImageDataset"
    dataroot_gt: Optional[Str] = None
    dataroot_lq: Optional[Str] = None
    meta_info_file: Optional[Str] = None
    filename_tmpl: Str = "{}"
    io_backend: IOBackendOptions = IOBackendOptions()
    # training crops and augmentation
    gt_size: Optional[Int] = None
    use_hflip: Bool = True
    use_flip: Optional[Bool] = None  # the older BasicSR name of use_hflip
    use_rot: Bool = True
    # degradations made on the fly
    sigma: Optional[Level] = None  # DenoisingDataset: 15, or [0, 50] drawn per patch
    quality: Optional[Union[Int, Tuple[Int, Int]]] = None  # JPEGDataset: 40, or [10, 40] drawn per patch
    noise_seed: Int = 0  # validation noise: reseeded per image, as the official test script
    lq_cache: Optional[Str] = None  # where MATLAB-bicubic LR images are cached (default: <experiment>/cache)
    # RealESRGANDataset: Real-ESRGAN's degradation (see REALESRGAN_KEYS; unset = Real-ESRGAN's value)
    blur_kernel_size: Optional[Int] = None
    kernel_list: Optional[Tuple[Str, ...]] = None
    kernel_prob: Optional[Tuple[Float, ...]] = None
    sinc_prob: Optional[Float] = None
    blur_sigma: Optional[Pair] = None
    betag_range: Optional[Pair] = None
    betap_range: Optional[Pair] = None
    resize_prob: Optional[Tuple[Float, Float, Float]] = None
    resize_range: Optional[Pair] = None
    gaussian_noise_prob: Optional[Float] = None
    noise_range: Optional[Pair] = None
    poisson_scale_range: Optional[Pair] = None
    gray_noise_prob: Optional[Float] = None  # also DenoisingDataset: a share of patches get gray noise
    jpeg_range: Optional[Pair] = None
    second_blur_prob: Optional[Float] = None
    blur_kernel_size2: Optional[Int] = None
    kernel_list2: Optional[Tuple[Str, ...]] = None
    kernel_prob2: Optional[Tuple[Float, ...]] = None
    sinc_prob2: Optional[Float] = None
    blur_sigma2: Optional[Pair] = None
    betag_range2: Optional[Pair] = None
    betap_range2: Optional[Pair] = None
    resize_prob2: Optional[Tuple[Float, Float, Float]] = None
    resize_range2: Optional[Pair] = None
    gaussian_noise_prob2: Optional[Float] = None
    noise_range2: Optional[Pair] = None
    poisson_scale_range2: Optional[Pair] = None
    gray_noise_prob2: Optional[Float] = None
    jpeg_range2: Optional[Pair] = None
    final_sinc_prob: Optional[Float] = None
    gt_usm: Optional[Bool] = None
    # loader
    use_shuffle: Bool = True
    batch_size_per_gpu: Int = 1
    num_worker_per_gpu: Int = 0
    dataset_enlarge_ratio: Int = 1
    pin_memory: Bool = False
    persistent_workers: Bool = False
    prefetch_mode: Optional[Str] = None  # accepted for BasicSR files; loading is the DataLoader's workers
    num_prefetch_queue: Int = 1
    phase: Optional[Str] = None  # set by BasicSR itself; accepted
    scale: Optional[Int] = None  # idem

    @property
    def kind(self) -> str:
        return DATASET_TYPES[self.type]

    @property
    def realesrgan(self) -> dict:
        """The Real-ESRGAN degradation keys that are set."""
        return {k: getattr(self, k) for k in REALESRGAN_KEYS if getattr(self, k) is not None}

    @property
    def hflip(self) -> bool:
        return self.use_hflip if self.use_flip is None else self.use_flip


class PathOptions(Section):
    pretrain_network_g: Optional[Str] = None  # anything load_model takes: a zoo name, a file, a training folder
    strict_load_g: Bool = True
    param_key_g: Str = "params"
    pretrain_network_d: Optional[Str] = None  # a net_d_<iter>.pth of an earlier GAN run
    strict_load_d: Bool = True
    param_key_d: Str = "params"
    resume_state: Optional[Str] = None
    experiments_root: Optional[Str] = None  # default experiments/<name>
    visualization: Optional[Str] = None  # default <experiments_root>/visualization
    results_root: Optional[Str] = None  # evaluation: where save_img writes (default results/<name>)


class TypedOptions(Section):
    """``{type: X, ...arguments}``: the arguments are checked against what X takes (see TrainOptions)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Str

    @property
    def args(self) -> Dict[str, Any]:
        return dict(self.model_extra or {})


class TrainOptions(Section):
    optim_g: TypedOptions
    total_iter: Int
    scheduler: Optional[TypedOptions] = None
    pixel_opt: TypedOptions = TypedOptions(type="L1Loss")
    ema_decay: Float = 0.0
    warmup_iter: Int = -1
    amp: Optional[Annotated[str, _one_of(*AMP_DTYPES)]] = None  # mixed precision for the transformer body
    grad_clip: Optional[Float] = None  # max total gradient norm
    nan_tolerance: Int = 10  # consecutive non-finite steps (skipped) before training stops
    # GAN training (with network_d): BasicSR's SRGANModel / RealESRGANModel keys
    optim_d: Optional[TypedOptions] = None
    perceptual_opt: Optional[TypedOptions] = None
    gan_opt: Optional[TypedOptions] = None
    net_d_iters: Int = 1  # G is updated every net_d_iters iterations ...
    net_d_init_iters: Int = 0  # ... and not during the first net_d_init_iters (D alone warms up)

    @property
    def gan(self) -> bool:
        return self.gan_opt is not None

    @model_validator(mode="after")
    def _arguments(self) -> "TrainOptions":
        """Each typed section's arguments, by what its type takes, coerced to their types."""
        checks = [("optim_g", self.optim_g, OPTIMIZERS, lambda t: _optimizer_args(t)),
                  ("optim_d", self.optim_d, OPTIMIZERS, lambda t: _optimizer_args(t)),
                  ("scheduler", self.scheduler, tuple(SCHEDULERS), lambda t: SCHEDULERS[t]),
                  ("pixel_opt", self.pixel_opt, tuple(LOSSES), _loss_args),
                  ("perceptual_opt", self.perceptual_opt, ("PerceptualLoss",), lambda t: PERCEPTUAL_ARGS),
                  ("gan_opt", self.gan_opt, ("GANLoss",), lambda t: GAN_ARGS)]
        updates = {}
        for key, typed, types, spec_of in checks:
            if typed is None:
                continue
            if typed.type not in types:
                raise PydanticCustomError("option", "{where}: {message}", {
                    "where": f"{key}.type", "message": f"{typed.type!r} is not one of {', '.join(types)}"})
            spec = spec_of(typed.type)
            args = {}
            for name, value in typed.args.items():
                if name not in spec:
                    raise PydanticCustomError("unknown", "unknown",
                                              {"where": f"{key}.{name}", "known": [*spec, "type"]})
                args[name] = _coerce(value, spec[name], f"{key}.{name}")
            updates[key] = TypedOptions(type=typed.type, **args)
        for key, value in updates.items():
            object.__setattr__(self, key, value)
        return self


def _optimizer_args(name: str) -> Dict[str, Any]:
    params = inspect.signature(getattr(torch.optim, name)).parameters
    kind = lambda d: bool if isinstance(d, bool) else float if isinstance(d, (int, float)) else (  # noqa: E731
        Tuple[float, ...] if isinstance(d, tuple) else Any)
    return {k: kind(v.default) for k, v in params.items() if k not in ("params", "self")}


def _loss_args(name: str) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"loss_weight": float, "reduction": str}
    if LOSSES[name] == "charbonnier":
        spec["eps"] = float
    return spec


def _coerce(value: Any, tp: Any, where: str) -> Any:
    try:
        if tp is float:
            return float(_number(value))
        if tp is int:
            return _whole(value)
        if tp is bool:
            return _bool(value)
        if tp is str:
            return _text(value)
        if tp == Dict[str, float]:
            if not isinstance(value, dict):
                raise ValueError(f"expected a mapping of names to numbers, got {value!r}")
            return {_text(k): float(_number(v)) for k, v in value.items()}
        if tp in (Tuple[int, ...], Tuple[float, ...]):
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expected a list of numbers, got {value!r}")
            one = _whole if tp == Tuple[int, ...] else (lambda v: float(_number(v)))
            return tuple(one(v) for v in value)
    except ValueError as e:
        raise PydanticCustomError("option", "{where}: {message}", {"where": where, "message": str(e)}) from None
    return value


class MetricOptions(Section):
    type: Annotated[str, _one_of(*METRIC_TYPES)]
    crop_border: Optional[Int] = None  # default: scale for SR, 0 for denoising/JPEG
    test_y_channel: Bool = True
    better: Annotated[str, _one_of("higher", "lower")] = "higher"
    net: Annotated[str, _one_of("alex", "vgg")] = "alex"  # calculate_lpips only

    @property
    def metric(self) -> str:
        return METRIC_TYPES[self.type]


class ValOptions(Section):
    val_freq: Int = 5000
    save_img: Bool = False
    suffix: Optional[Str] = None
    pbar: Bool = False
    metrics: Dict[str, MetricOptions] = Field(default_factory=dict)


class LoggerOptions(Section):
    print_freq: Int = 100
    save_checkpoint_freq: Int = 5000
    use_tb_logger: Bool = True
    wandb: Optional[Dict[str, Any]] = None  # accepted for BasicSR files; not used


class DistOptions(Section):
    backend: Optional[Str] = None  # accepted; the backend is nccl on CUDA and gloo on CPU
    port: Optional[Int] = None  # accepted; torchrun sets the rendezvous


@dataclass(frozen=True)
class NetworkOptions:
    """``network_g``: the architecture and its checked config."""

    type: str
    config: SwinIRConfig
    given: Tuple[str, ...] = field(default=(), compare=False)  # the arguments the file names; others default


def _network(value: Any) -> Any:
    """network_g: {type: SwinIR or Swin2SR, <official arguments>} -> NetworkOptions with a checked SwinIRConfig."""
    if isinstance(value, NetworkOptions) or value is None:
        return value
    if not isinstance(value, Mapping):
        raise PydanticCustomError("option", "{where}: {message}",
                                  {"where": "", "message": "is required: type: SwinIR and the SwinIR arguments"})
    kind = value.get("type", "SwinIR")
    archs = {name: arch for arch, name in ARCH_NAMES.items()}
    if kind not in archs:
        raise PydanticCustomError("option", "{where}: {message}",
                                  {"where": "type", "message": f"{kind!r}: one of {', '.join(archs)}"})
    known = [f for f in SwinIRConfig.__dataclass_fields__ if f != "arch"]
    args = {}
    for key, v in value.items():
        if key == "type":
            continue
        if key == "arch":  # written by to_dict for Swin2SR; the type already says it
            if v != archs[kind]:
                raise PydanticCustomError("option", "{where}: {message}",
                                          {"where": "arch", "message": f"{v!r} contradicts type {kind}"})
            continue
        if key not in known:
            raise PydanticCustomError("unknown", "unknown", {"where": str(key), "known": known + ["type"]})
        args[key] = "" if key == "upsampler" and v is None else v  # KAIR and some BasicSR files write null
    try:
        return NetworkOptions(kind, SwinIRConfig.from_dict({**args, "arch": archs[kind]}), tuple(args))
    except (TypeError, ValueError) as e:
        raise PydanticCustomError("option", "{where}: {message}", {"where": "", "message": str(e)}) from None


Network = Annotated[InstanceOf[NetworkOptions], BeforeValidator(_network)]


class Options(Section):
    """An options file, parsed and checked: a training file or a test (evaluation) file."""

    name: Str
    datasets: Dict[str, DatasetOptions]
    network_g: Optional[Network] = None
    network_d: Optional[TypedOptions] = None  # GAN training: UNetDiscriminatorSN or VGGStyleDiscriminator
    train: Optional[TrainOptions] = None
    model_type: Annotated[str, _one_of(*MODEL_TYPES)] = "SwinIRModel"
    scale: Optional[Int] = None
    num_gpu: Union[Int, Literal["auto"]] = "auto"
    manual_seed: Optional[Int] = None
    queue_size: Optional[Int] = None  # Real-ESRGAN's training-pair pool (swinir_app.train.pool), per process
    path: PathOptions = PathOptions()
    val: Optional[ValOptions] = None
    logger: LoggerOptions = LoggerOptions()
    dist_params: DistOptions = DistOptions()
    # evaluation: what the LQ is made of when there is no dataroot_lq
    task: Optional[Annotated[str, _one_of(*TASKS)]] = None
    noise: Optional[Float] = None
    jpeg: Optional[Int] = None
    source: str = Field(default="", exclude=True)  # the file it was read from

    @model_validator(mode="after")
    def _discriminator(self) -> "Options":
        """network_d's arguments, by what its basicsr class takes."""
        d = self.network_d
        if d is None:
            return self
        if d.type not in DISCRIMINATORS:
            raise PydanticCustomError("option", "{where}: {message}", {
                "where": "network_d.type", "message": f"{d.type!r} is not one of {', '.join(DISCRIMINATORS)}"})
        spec = DISCRIMINATORS[d.type]
        args = {}
        for name, value in d.args.items():
            if name not in spec:
                raise PydanticCustomError("unknown", "unknown",
                                          {"where": f"network_d.{name}", "known": [*spec, "type"]})
            args[name] = _coerce(value, spec[name], f"network_d.{name}")
        object.__setattr__(self, "network_d", TypedOptions(type=d.type, **args))
        return self

    @model_validator(mode="after")
    def _names(self) -> "Options":
        """Datasets without a name take their key; scale defaults to the network's."""
        named = {k: d if d.name else d.model_copy(update={"name": k}) for k, d in self.datasets.items()}
        object.__setattr__(self, "datasets", named)
        if self.scale is None and self.network_g is not None:
            object.__setattr__(self, "scale", self.network_g.config.upscale)
        return self

    # ---- training ----------------------------------------------------------------------------

    @property
    def train_set(self) -> DatasetOptions:
        return self.datasets["train"]

    @property
    def val_sets(self) -> Tuple[DatasetOptions, ...]:
        return tuple(d for k, d in self.datasets.items() if k != "train")

    @property
    def experiments_root(self) -> Path:
        return Path(self.path.experiments_root or Path("experiments") / self.name)

    # ---- evaluation --------------------------------------------------------------------------

    @property
    def test_sets(self) -> Tuple[DatasetOptions, ...]:
        """The datasets an evaluation scores: every one but ``train``, in file order."""
        return self.val_sets

    def metrics(self) -> Dict[str, MetricOptions]:
        return dict(self.val.metrics) if self.val else {}

    def metric_names(self) -> Tuple[str, ...]:
        return tuple(m.metric for m in self.metrics().values())

    def crop_border(self, metric: Optional[MetricOptions] = None) -> Optional[int]:
        """``metric``'s border (its own, else the scale for SR and 0 for restoration); without a
        metric, the one border every metric names (None if none does)."""
        if metric is not None:
            if metric.crop_border is not None:
                return metric.crop_border
            return self.scale if self.network_g is not None and self.network_g.config.upsampler else 0
        borders = {m.crop_border for m in self.metrics().values() if m.crop_border is not None}
        return borders.pop() if len(borders) == 1 else None

    def y_channel(self) -> bool:
        flags = {m.test_y_channel for m in self.metrics().values() if m.metric != "lpips"}
        return flags.pop() if len(flags) == 1 else True

    def lpips_net(self) -> str:
        return next((m.net for m in self.metrics().values() if m.metric == "lpips"), "alex")

    def to_dict(self) -> Dict[str, Any]:
        """The options as YAML data in the file's layout, every default filled in (for the log)."""
        return _plain(self)


def _plain(x: Any) -> Any:
    if isinstance(x, NetworkOptions):
        return {"type": x.type, **x.config.to_dict()}
    if isinstance(x, TypedOptions):
        return {"type": x.type, **_plain(x.args)}
    if isinstance(x, BaseModel):
        return {k: _plain(getattr(x, k)) for k in type(x).model_fields if k != "source"}
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
