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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Dict, Literal, Mapping, Optional, Tuple, Union

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, InstanceOf, model_validator
from pydantic_core import PydanticCustomError

from ..network import ARCH_NAMES, SwinIRConfig
from ..precision import AMP_PRECISIONS
from .dataset import DatasetOptions
from .values import Bool, Float, Int, Section, Str, _bool, _number, _one_of, _text, _whole

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
AMP_DTYPES = AMP_PRECISIONS  # train.amp: the precision module's names


# ---------------------------------------------------------------------------------------------
# The sections


class PathOptions(Section):
    """``path``: weights to start from, where a run writes, what it resumes."""

    pretrain_network_g: Optional[Str] = Field(None, description=(
        "Weights to start from: anything `load_model` takes (a zoo name, a weights file, a training folder); "
        "ignored on resume. Evaluation: the model scored (or `--model`)."))
    strict_load_g: Bool = Field(True, description=(
        "Every key and shape must match `network_g`; false loads what fits (BasicSR's). Evaluation needs true."))
    param_key_g: Str = Field("params", description=(
        "The key of the weights in a `pretrain_network_g` file (`params` or `params_ema`); missing: what it has."))
    pretrain_network_d: Optional[Str] = Field(None, description=(
        "GAN training: a `net_d_<iter>.pth` of an earlier GAN run to start the discriminator from."))
    strict_load_d: Bool = Field(True, description="As `strict_load_g`, for `pretrain_network_d`.")
    param_key_d: Str = Field("params", description="As `param_key_g`, for `pretrain_network_d`.")
    resume_state: Optional[Str] = Field(None, description=(
        "A `training_states/<iter>.state` to resume from; unset: a new run (or, with `--auto_resume`, the "
        "latest state that loads)."))
    experiments_root: Optional[Str] = Field(None, description="The run's folder (default `experiments/<name>`).")
    visualization: Optional[Str] = Field(None, description=(
        "Where validation images go with `val.save_img` (default `<experiments_root>/visualization`)."))
    results_root: Optional[Str] = Field(None, description=(
        "Evaluation: where `val.save_img` writes the outputs, a folder per set (default `results/<name>`)."))


class TypedOptions(Section):
    """``{type: X, ...arguments}``: the arguments are checked against what X takes (see each key)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Str = Field(description=(
        "The class; the other keys are its arguments, checked against what it takes (see the key that holds it)."))

    @property
    def args(self) -> Dict[str, Any]:
        return dict(self.model_extra or {})


class TrainOptions(Section):
    """``train``: BasicSR's optimizer, schedule, losses and step options (training files only)."""

    optim_g: TypedOptions = Field(description=(
        "The generator's optimizer: `type` one of Adam, AdamW, Adamax, SGD, RMSprop, and that "
        "`torch.optim` class's arguments (`lr` required; `betas`, `weight_decay`, ...)."))
    total_iter: Int = Field(description="Iterations (optimizer steps) to train, >= 1.")
    scheduler: Optional[TypedOptions] = Field(None, description=(
        "BasicSR's learning-rate schedule by iteration: `MultiStepLR`/`MultiStepRestartLR` (`milestones`, "
        "`gamma` [0.1], `restarts`, `restart_weights`) or `CosineAnnealingRestartLR` (`periods`, "
        "`restart_weights`, `eta_min` [0]); unset: a constant `lr`."))
    pixel_opt: TypedOptions = Field(TypedOptions(type="L1Loss"), description=(
        "The pixel loss: `L1Loss`, `MSELoss` or `CharbonnierLoss` (`eps` [1e-12]), with `loss_weight` [1] and "
        "`reduction` (`mean` or `sum`)."))
    ema_decay: Float = Field(0.0, description=(
        "Decay of the EMA of the weights (`params_ema`), in [0, 1); 0: no EMA (SwinIR's files use 0.999)."))
    warmup_iter: Int = Field(-1, description=(
        "Linear learning-rate warmup over this many iterations, as BasicSR's; <= 1: none."))
    amp: Optional[Annotated[str, _one_of(*AMP_DTYPES)]] = Field(None, description=(
        "Mixed precision for the transformer body: `bf16` or `fp16` (with a gradient scaler); null: float32. "
        "Checked against the device before training."))
    grad_clip: Optional[Float] = Field(None, description="Clip the total gradient norm to this (> 0); null: none.")
    nan_tolerance: Int = Field(10, description=(
        "Consecutive non-finite steps (skipped) before training stops as diverged, >= 1."))
    optim_d: Optional[TypedOptions] = Field(None, description=(
        "GAN training (with `network_d`, required): the discriminator's optimizer, as `optim_g` (`lr` "
        "required); it follows the same schedule from its own `lr`."))
    perceptual_opt: Optional[TypedOptions] = Field(None, description=(
        "GAN training: basicsr's `PerceptualLoss`: `layer_weights` (required), `vgg_type` [vgg19], "
        "`use_input_norm`, `range_norm`, `perceptual_weight`, `style_weight`, `criterion` (l1, l2, fro)."))
    gan_opt: Optional[TypedOptions] = Field(None, description=(
        "GAN training (with `network_d`, required): basicsr's `GANLoss`: `gan_type` (vanilla, lsgan, hinge, wgan, "
        "wgan_softplus), `real_label_val`, `fake_label_val`, `loss_weight`."))
    net_d_iters: Int = Field(1, description="GAN training: G is updated on every n-th iteration only (>= 1).")
    net_d_init_iters: Int = Field(0, description=(
        "GAN training: G is not updated in the first n iterations (>= 0), while D alone warms up."))

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
    """``val.metrics.<key>``: one metric, as BasicSR's ``{type: calculate_psnr, crop_border: 4}``."""

    type: Annotated[str, _one_of(*METRIC_TYPES)] = Field(description=(
        "`calculate_psnr`, `calculate_ssim`, `calculate_psnrb` or `calculate_lpips` (evaluation only)."))
    crop_border: Optional[Int] = Field(None, description=(
        "Pixels cropped from each edge before scoring; default: `scale` for SR, 0 for denoising/JPEG."))
    test_y_channel: Bool = Field(True, description=(
        "Score the Y channel of YCbCr (the papers' tables) rather than RGB; not for LPIPS."))
    better: Annotated[str, _one_of("higher", "lower")] = Field("higher", description=(
        "Whether a `higher` or `lower` value is better, for the best value a training run reports."))
    net: Annotated[str, _one_of("alex", "vgg")] = Field("alex", description="`calculate_lpips`: its network.")

    @property
    def metric(self) -> str:
        return METRIC_TYPES[self.type]


class ValOptions(Section):
    """``val``: validation during training, and the metrics and outputs of an evaluation."""

    val_freq: Int = Field(5000, description="Training: validate every this many iterations (>= 1).")
    save_img: Bool = Field(False, description=(
        "Save the outputs as PNG: training to `path.visualization`, evaluation to `path.results_root`."))
    suffix: Optional[Str] = Field(None, description=(
        "Training: saved images are `<image>_<suffix>.png`; unset: `<image>_<iteration>.png`."))
    pbar: Bool = Field(False, description=(
        "Evaluation: a progress bar (shown when this key is absent, as without an options file)."))
    metrics: Dict[str, MetricOptions] = Field(default_factory=dict, description=(
        "The metrics by name (`psnr: {type: calculate_psnr, ...}`); training takes psnr, ssim, psnrb. Evaluation "
        "without any: PSNR and SSIM (and PSNR-B for JPEG)."))


class LoggerOptions(Section):
    """``logger``: how often a run logs and saves."""

    print_freq: Int = Field(100, description="Log a progress line every this many iterations (>= 1).")
    save_checkpoint_freq: Int = Field(5000, description=(
        "Save the weights and a resume state every this many iterations (>= 1), and at the end."))
    use_tb_logger: Bool = Field(True, description="Write TensorBoard events to `<experiments_root>/tb_logger`.")
    wandb: Optional[Dict[str, Any]] = Field(None, description="Accepted for BasicSR files; not used.")


class DistOptions(Section):
    """``dist_params``: accepted from BasicSR files; ``torchrun`` and the device decide."""

    backend: Optional[Str] = Field(None, description="Accepted; the backend is nccl on CUDA and gloo on CPU.")
    port: Optional[Int] = Field(None, description="Accepted; torchrun sets the rendezvous.")


@dataclass(frozen=True)
class NetworkOptions:
    """``network_g``: the architecture and its checked config."""

    type: str
    config: SwinIRConfig
    given: Tuple[str, ...] = field(default=(), compare=False)  # the arguments the file names; others default


def _network(value: Any) -> Any:
    """network_g: {type: SwinIR, Swin2SR, HAT or DAT, <official arguments>} -> NetworkOptions with a checked
    SwinIRConfig."""
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
    # The official DAT's names for two of SwinIR's arguments (zhengchen1999/DAT's options files use them).
    aliases = {"depth": "depths", "use_chk": "use_checkpoint"} if kind == "DAT" else {}
    args = {}
    for key, v in value.items():
        if key == "type":
            continue
        if key in aliases:
            if aliases[key] in value:
                raise PydanticCustomError("option", "{where}: {message}",
                                          {"where": str(key), "message": f"and {aliases[key]} are the same "
                                           "argument (the official DAT's name and SwinIR's): give one"})
            key = aliases[key]
        if key == "arch":  # written by to_dict for Swin2SR; the type already says it
            if v != archs[kind]:
                raise PydanticCustomError("option", "{where}: {message}",
                                          {"where": "arch", "message": f"{v!r} contradicts type {kind}"})
            continue
        if key not in known:
            raise PydanticCustomError("unknown", "unknown",
                                      {"where": str(key), "known": known + list(aliases) + ["type"]})
        args[key] = "" if key == "upsampler" and v is None else v  # KAIR and some BasicSR files write null
    try:
        return NetworkOptions(kind, SwinIRConfig.from_dict({**args, "arch": archs[kind]}), tuple(args))
    except (TypeError, ValueError) as e:
        raise PydanticCustomError("option", "{where}: {message}", {"where": "", "message": str(e)}) from None


Network = Annotated[InstanceOf[NetworkOptions], BeforeValidator(_network)]


class Options(Section):
    """An options file, parsed and checked: a training file or a test (evaluation) file."""

    name: Str = Field(description=(
        "The experiment's name: `experiments/<name>` (training, `debug_` prefixed with `--debug`), "
        "`results/<name>` (evaluation)."))
    datasets: Dict[str, DatasetOptions] = Field(description=(
        "The sets by key: training `train` and `val`/`val_<anything>`; evaluation `test_1`, ... "
        "(any key but `train`)."))
    network_g: Optional[Network] = Field(None, description=(
        "`{type: SwinIR, Swin2SR, HAT or DAT, <the official constructor's arguments>}` (`upscale`, `in_chans`, "
        "`img_size`, `window_size`, `embed_dim`, `depths`, `num_heads`, `upsampler`, ...; DAT: `split_size`, "
        "`expansion_factor`, and `depth` for `depths`). Required to train; "
        "evaluation: checked against the loaded model."))
    network_d: Optional[TypedOptions] = Field(None, description=(
        "GAN training: the discriminator, `UNetDiscriminatorSN` (`num_in_ch`, `num_feat`, `skip_connection`) "
        "or `VGGStyleDiscriminator` (`num_in_ch`, `num_feat`, `input_size` = `gt_size`)."))
    train: Optional[TrainOptions] = Field(None, description="Required to train: the optimization (see `train`).")
    model_type: Annotated[str, _one_of(*MODEL_TYPES)] = Field("SwinIRModel", description=(
        "BasicSR's model class: `SwinIRModel` or `SRModel`; accepted, the same training."))
    scale: Optional[Int] = Field(None, description=(
        "The upscaling factor, 1 for denoising/JPEG; default `network_g.upscale` (evaluation: the model's)."))
    num_gpu: Union[Int, Literal["auto"]] = Field("auto", description=(
        "`auto`: CUDA when available, else the CPU; 0: the CPU; N > 0: CUDA, an error without it (more "
        "processes come from `torchrun`, not from N)."))
    manual_seed: Optional[Int] = Field(None, description=(
        "The run's seed, 0 to 2**32 - 1; null: a random one (BasicSR's); a resumed run keeps its own. "
        "Evaluation: the seed of the noise it makes (default 0)."))
    queue_size: Optional[Int] = Field(None, description=(
        "Real-ESRGAN's training-pair pool, pairs per process, a multiple of `batch_size_per_gpu`; unset: none."))
    path: PathOptions = Field(PathOptions(), description="Weights to load, output and resume paths.")
    val: Optional[ValOptions] = Field(None, description="Validation and metrics; unset: no validation.")
    logger: LoggerOptions = Field(LoggerOptions(), description="Log and checkpoint frequencies.")
    dist_params: DistOptions = Field(DistOptions(), description="Accepted from BasicSR files; not used.")
    task: Optional[Annotated[str, _one_of(*TASKS)]] = Field(None, description=(
        "Evaluation: `sr`, `denoise` or `jpeg`, to make the LQ without `dataroot_lq` (default: the model's)."))
    noise: Optional[Float] = Field(None, description=(
        "Evaluation, denoising: Gaussian noise sigma (0-255, > 0); default: the level in the model's name, else 15."))
    jpeg: Optional[Int] = Field(None, description=(
        "Evaluation, JPEG: the quality, 1-100; default: the level in the model's name, else 40."))
    source: str = Field(default="", exclude=True, description="The file the options were read from (not a key).")

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
