"""Every other architecture through spandrel: ESRGAN, Compact, SPAN, RealPLKSR, OmniSR, RGT, ATD, DRCT, ...

Beside :mod:`swinir_app.onnx_runtime`, below the zoo, which falls back to :func:`load_spandrel` for a file
whose tensors are not those of a SwinIR, Swin2SR, HAT or DAT (those keep the native networks). The file is
read only by :func:`swinir_app.checkpoint.read_file` (``torch.load(weights_only=True)`` behind the archive
checks, or safetensors), never by spandrel's own ``load_from_file``; spandrel gets the tensors, detects the
architecture and builds the network. Only the main ``spandrel`` package's registry is asked: the
non-commercial ``spandrel_extra_arches`` are used only if the user's own code installed them into it.

Nothing here imports spandrel until a file needs it, so ``import swinir_app`` stays fast.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import ModelLoadError, StateDict, check_finite, read_file, unwrap_tensors
from .network.capabilities import Capabilities

# What spandrel calls the purpose of a model: these restore an image; FaceSR and Inpainting do not.
PURPOSES = ("SR", "Restoration")
# The architectures the zoo runs with its own networks; spandrel's ports of them are never used.
NATIVE = ("SwinIR", "Swin2SR", "HAT", "DAT")
NATIVE_KEYS = "conv_first.weight with layers.N.residual_group, or DAT's before_RG"
_TILING = {"SUPPORTED": "supported", "DISCOURAGED": "discouraged", "INTERNAL": "internal"}

# The licence of each architecture's code in spandrel's main package (SPDX), read from the LICENSE file in
# its __arch/ folder of the spandrel repository (github.com/chaiNNer-org/spandrel, at b0c3eb2); the wheel
# ships none. Restrictive ones live in spandrel_extra_arches. No licence is known of a model's weights.
CODE_LICENCES = {
    "ATD": "Apache-2.0", "AuraSR": "CC-BY-SA-4.0", "CRAFT": "Apache-2.0", "Compact": "BSD-3-Clause",
    "DAT": "Apache-2.0", "DCTLSA": "Apache-2.0", "DITN": "Apache-2.0", "DRCT": "MIT", "DRUNet": "MIT",
    "DnCNN": "MIT", "ESRGAN": "Apache-2.0", "FBCNN": "Apache-2.0", "FDAT": "MIT", "FFTformer": "MIT",
    "GFPGAN": "Apache-2.0", "GRL": "MIT", "HAT": "MIT", "HVICIDNet": "MIT", "IPT": "Apache-2.0", "KBNet": "MIT",
    "LaMa": "Apache-2.0", "MMRealSR": "BSD-3-Clause", "MixDehazeNet": "MIT", "MoESR": "MIT", "MoSR": "MIT",
    "NAFNet": "MIT", "OmniSR": "Apache-2.0", "PLKSR": "MIT", "RCAN": "MIT", "RGT": "Apache-2.0",
    "RealCUGAN": "MIT", "RestoreFormer": "Apache-2.0", "RetinexFormer": "MIT", "SAFMN": "Apache-2.0",
    "SAFMNBCIE": "Apache-2.0", "SCUNet": "Apache-2.0", "SPAN": "Apache-2.0", "SeemoRe": "Apache-2.0",
    "SwiftSRGAN": "public domain", "Swin2SR": "Apache-2.0", "SwinIR": "Apache-2.0", "Uformer": "MIT",
}
UNKNOWN_LICENCE = "unknown (an architecture added to spandrel's registry by other code)"

# Peak activation memory of an fp32 forward per input pixel, in floats per feature channel (the first conv's
# output channels): at the input's resolution (more where the network has attention and MLPs: linear layers),
# and per output pixel per scale step. Fitted above the peak RSS measured at 128x128 with spandrel's default
# configs (bytes a pixel, measured / estimated): ESRGAN x4 12.3K / 18.4K, Compact x4 1.0K / 18.4K, SPAN x4
# 5.8K / 13.8K, RealPLKSR x4 1.4K / 18.4K, SAFMN x4 2.1K / 10.4K, DnCNN 1.5K / 6.9K, SCUNet 5.3K / 21K,
# RGT x2 19.3K / 66K, ATD 22.5K / 30K.
_FLOATS_CNN, _FLOATS_ATTENTION, _FLOATS_OUTPUT = 24, 80, 3


class SpandrelModel(nn.Module):
    """A network that spandrel detected and built, usable wherever a native network is (the engine, every
    front end): ``model(x)`` maps (B, in_chans, H, W) float in [0, 1], any H and W, to (B, out_chans,
    H*scale, W*scale), unclamped like the native networks.

    ``forward`` pads the input to the model's size requirements (at least ``minimum``, a multiple of
    ``multiple_of``, square where asked) as spandrel does (reflected, then replicated where the image is
    too small to reflect), and crops the output back.

    Attributes:
        net: the architecture's own module (``descriptor.model``).
        descriptor: spandrel's ``ImageModelDescriptor``.
        architecture: spandrel's name of the architecture ("ESRGAN", "RealPLKSR", ...).
        info: what a front end shows: architecture, scale, task, parameters, channels, tags, purpose;
            ``licence`` (of the weights) is None: spandrel does not know it; ``code_licence`` says
            what spandrel says of its architectures' code.
        config: None: there is no SwinIR config (front ends that need one must check).
        path: the file it came from, if any.
    """

    config = None

    def __init__(self, descriptor: Any, path: Optional[Path] = None):
        super().__init__()
        self.net = descriptor.model
        self.descriptor = descriptor
        self.path = path
        self._call = getattr(descriptor, "_call_fn", None) or (lambda model, image: model(image))
        req = descriptor.size_requirements
        self.minimum, self.multiple_of, self.square = int(req.minimum), int(req.multiple_of), bool(req.square)
        self.architecture: str = display_name(descriptor)
        self.upscale: int = int(descriptor.scale)
        self._capabilities = _capabilities(descriptor, self.net)
        caps = self._capabilities
        self.info: Dict[str, Any] = {
            "architecture": self.architecture, "scale": caps.scale, "task": caps.task,
            "parameters": sum(p.numel() for p in self.net.parameters()), "in_chans": caps.in_chans,
            "out_chans": caps.out_chans, "tags": list(descriptor.tags), "purpose": descriptor.purpose,
            "licence": None, "code_licence": CODE_LICENCES.get(descriptor.architecture.id, UNKNOWN_LICENCE),
            "loader": "spandrel"}
        self.eval()

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def capabilities(self) -> Capabilities:
        """What spandrel's descriptor declares, in the engine's words (see :func:`_capabilities`)."""
        return self._capabilities

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self._capabilities.in_chans:
            raise ValueError(f"expected (B, {self._capabilities.in_chans}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = pad(x, self.minimum, self.multiple_of, self.square)
        y = self._call(self.net, x)
        s = self.upscale
        return y[..., :h * s, :w * s]

    def extra_repr(self) -> str:
        return f"{self.architecture}, x{self.upscale}, {self._capabilities.task}"


def pad(x: Tensor, minimum: int = 0, multiple_of: int = 1, square: bool = False) -> Tensor:
    """``x`` padded at the bottom and right to spandrel's size requirements, as spandrel pads: reflected as far
    as the image allows (one pixel short of its size), replicated beyond."""
    h, w = x.shape[-2:]
    H, W = max(minimum, h), max(minimum, w)
    H, W = -(-H // multiple_of) * multiple_of, -(-W // multiple_of) * multiple_of
    if square:
        H = W = max(H, W)
    ph, pw = H - h, W - w
    if not (ph or pw):
        return x
    rh, rw = min(ph, h - 1), min(pw, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), "reflect")
    if ph - rh or pw - rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), "replicate")
    return x


def display_name(descriptor: Any) -> str:
    """Spandrel's name of the architecture, as the community names it: RealPLKSR for PLKSR's Real variant."""
    name = descriptor.architecture.name
    return "RealPLKSR" if name == "PLKSR" and "Real" in descriptor.tags else name


def _task(descriptor: Any) -> str:
    if descriptor.scale > 1:
        return "sr"
    words = " ".join([str(descriptor.architecture.id), *map(str, descriptor.tags)]).lower()
    return "jpeg" if "jpeg" in words or "fbcnn" in words else "denoise"


def _capabilities(descriptor: Any, net: nn.Module) -> Capabilities:
    precisions = ("fp32",) + (("bf16",) if descriptor.supports_bfloat16 else ()) + (
        ("fp16",) if descriptor.supports_half else ())
    scale, out_chans = int(descriptor.scale), int(descriptor.output_channels)
    return Capabilities(
        arch=display_name(descriptor), task=_task(descriptor), scale=scale,
        in_chans=int(descriptor.input_channels), out_chans=out_chans,
        bytes_per_pixel=activation_bytes(net, scale),
        size_multiple=int(descriptor.size_requirements.multiple_of), precisions=precisions,
        tiling=_TILING.get(getattr(descriptor.tiling, "name", ""), "supported"),
        stages=tuple(f"net.{name}" for name in stages(net)))


def activation_bytes(net: nn.Module, scale: int) -> int:
    """A conservative guess of the peak activation memory of an fp32 forward per input pixel, from the
    feature width (the first conv's output channels), whether the network has linear layers (attention,
    MLPs: several times the activations of a CNN of that width) and the scale."""
    width = next((m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)), 64)
    per_channel = _FLOATS_ATTENTION if any(isinstance(m, nn.Linear) for m in net.modules()) else _FLOATS_CNN
    return int(4 * max(width, 16) * (per_channel + _FLOATS_OUTPUT * scale * scale))


def stages(net: nn.Module) -> Tuple[str, ...]:
    """The names of the blocks that do the network's work in turn, for progress: in the ModuleList or
    Sequential whose children of one class (at least two, each with parameters) hold the most parameters,
    those children (ESRGAN's RRDBs, the residual groups of a transformer), if they hold at least a third of
    the network's parameters; else ()."""
    total = sum(p.numel() for p in net.parameters()) or 1
    best, best_params = (), 0
    for name, module in net.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        by_class: Dict[type, list] = {}
        for n, child in module.named_children():
            by_class.setdefault(type(child), []).append((n, sum(p.numel() for p in child.parameters())))
        for children in by_class.values():
            size = sum(k for _, k in children)
            if len(children) >= 2 and min(k for _, k in children) > 0 and size > best_params:
                best, best_params = tuple(f"{name}.{n}" if name else n for n, _ in children), size
    return best if best_params * 3 >= total else ()


def _registry():
    import spandrel  # deferred: only a file that is not a native checkpoint pays for it
    return spandrel.MAIN_REGISTRY


def detect(state: StateDict) -> Optional[str]:
    """The id of the architecture that spandrel's registry detects in ``state`` (canonicalised), without
    building it; None if none. A detector that fails on odd tensors counts as not detecting."""
    import spandrel
    state = spandrel.canonicalize_state_dict(dict(state))
    for support in _registry().architectures("detection"):
        try:
            if support.detect(state):
                return str(support.architecture.id)
        except Exception:  # noqa: BLE001 - a detector reading tensors of other shapes than it expects
            continue
    return None


def looked_for() -> str:
    """What the loaders looked for, in words, for the message of a file that neither knows."""
    try:
        ids = [str(s.architecture.id) for s in _registry().architectures("detection")]
    except ImportError:
        return (f"no SwinIR/Swin2SR/HAT/DAT keys ({NATIVE_KEYS}), and spandrel, which detects the other "
                f"architectures, is not installed (pip install spandrel)")
    return (f"no SwinIR/Swin2SR/HAT/DAT keys ({NATIVE_KEYS}), and spandrel recognised no architecture "
            f"(it looked for {', '.join(ids)})")


def identify(path_or_raw: Union[str, os.PathLike, Any], label: Optional[str] = None, *,
             native_error: Optional[ModelLoadError] = None) -> Tuple[StateDict, str]:
    """The tensors of a file (or of what :func:`~swinir_app.checkpoint.read_file` returned for it) and the
    architecture that spandrel's main registry detects in them, one that is not native. A path is read with
    ``read_file`` (weights only, archive checks) and nothing else. Raises :class:`ModelLoadError` as
    :func:`load_spandrel` does, before anything is built."""
    if isinstance(path_or_raw, (str, os.PathLike)):
        source = label or str(path_or_raw)
        raw, _ = read_file(path_or_raw, label=source)
    else:
        source, raw = label or "state dict", path_or_raw
    state, _ = unwrap_tensors(raw, source)
    try:
        arch = detect(state)
    except ImportError:  # spandrel is a dependency; an install without it still says what it looked for
        arch = None
    if arch is None or arch in NATIVE:
        if native_error is not None and (arch in NATIVE or _looks_native(state)):
            raise native_error
        if arch in NATIVE:
            raise ModelLoadError(f"{source}: a {arch} state dict that the native {arch} loader refuses")
        raise ModelLoadError(f"{source} is not a model this app knows: {looked_for()}")
    return state, arch


def load_spandrel(path_or_raw: Union[str, os.PathLike, Any], label: Optional[str] = None, *,
                  native_error: Optional[ModelLoadError] = None, path: Optional[Path] = None) -> SpandrelModel:
    """The model in a file (or in what :func:`~swinir_app.checkpoint.read_file` returned for the file
    ``path``) that spandrel's main registry recognises, as a :class:`SpandrelModel` in eval mode on the CPU.

    A path is read with :func:`~swinir_app.checkpoint.read_file` (weights only, archive checks) and nothing
    else; spandrel sees only the tensors. ``native_error``: why the native loader refused the file; it is
    what is raised when spandrel finds one of the native architectures in it (a damaged or unusual native
    file), or nothing and the tensors look native.

    Raises:
        ModelLoadError: one line naming the file: unreadable, unknown to both loaders, not an image
            restoration model (face restoration, inpainting), or tensors spandrel cannot build.
    """
    if isinstance(path_or_raw, (str, os.PathLike)):
        path = Path(path_or_raw)
    source = label or (str(path) if path is not None else "state dict")
    state, arch = identify(path_or_raw, source, native_error=native_error)
    check_finite(state, source)
    import spandrel
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except Exception as e:  # noqa: BLE001 - spandrel's loaders raise KeyError, RuntimeError, AssertionError...
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelLoadError(f"{source}: spandrel detected {arch} but cannot build it from these tensors "
                             f"({type(e).__name__}{': ' + text[:200] if text else ''})") from None
    purpose = getattr(descriptor, "purpose", None)
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or purpose not in PURPOSES:
        what = {"FaceSR": "a face restoration model", "Inpainting": "an inpainting model"}.get(
            purpose, f"a {purpose} model")
        raise ModelLoadError(f"{source} is {what} ({descriptor.architecture.name}); this app runs image "
                             f"restoration models only (super-resolution, denoising, JPEG repair)")
    return SpandrelModel(descriptor, path)


def _looks_native(state: StateDict) -> bool:
    """Tensors named as a SwinIR-family network's (however damaged): the native loader's error says more."""
    return any(k.endswith("conv_first.weight") for k in state) and any(
        ".residual_group." in k or k.endswith("before_RG.1.weight") for k in state)


__all__: Sequence[str] = ("CODE_LICENCES", "NATIVE", "PURPOSES", "SpandrelModel", "activation_bytes", "detect",
                          "identify", "load_spandrel", "looked_for", "pad", "stages")
