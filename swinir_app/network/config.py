"""Typed hyperparameters of the SwinIR family (SwinIR, Swin2SR, HAT, DAT), and the presets of their official models."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

ARCHS = ("swinir", "swin2sr", "hat", "dat")
DAT_FIELDS = {"split_size": (2, 4), "expansion_factor": 4.0}  # official defaults
# SwinIR's arguments that DAT has not (it has no patch embedding, and expansion_factor is its mlp_ratio), at
# the values DAT's structure amounts to.
NOT_DAT_FIELDS = {"mlp_ratio": 4.0, "ape": False, "patch_norm": True, "patch_size": 1}
HAT_FIELDS = {"compress_ratio": 3, "squeeze_factor": 30, "conv_scale": 0.01, "overlap_ratio": 0.5}  # official defaults
UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "", "pixelshuffle_aux")  # the last: Swin2SR only
RESI_CONNECTIONS = ("1conv", "3conv")

# Bounds: about 4x over the largest published model in every dimension (see SwinIRConfig.__post_init__).
_INT_BOUNDS = (("upscale", 1, 8), ("in_chans", 1, 16), ("img_size", 1, 1024), ("window_size", 1, 32),
               ("embed_dim", 1, 1024), ("patch_size", 1, 16), ("num_feat", 1, 1024))
_FLOAT_BOUNDS = (("img_range", 1e-3, 1e4), ("mlp_ratio", 0.01, 16.0), ("drop_rate", 0.0, 0.999),
                 ("attn_drop_rate", 0.0, 0.999), ("drop_path_rate", 0.0, 0.999))
_MAX_DEPTH, _MAX_HEADS, _MAX_GROUPS = 64, 64, 32
_MAX_BLOCKS = 256  # in all groups; HAT-L has 72, SwinIR-L 54
_MAX_IMG_X_WINDOW = 4096  # shift masks take 4 * (img_size * window_size)**2 bytes: 64 MB at most
_MAX_BODY_PARAMS = 200e6  # SwinIR-L has 25M in its transformer


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (integral floats from YAML included), else a one-line ValueError."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and math.isfinite(value) and value == int(value):
        value, ok = int(value), True
    if not ok or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite number in [lo, hi], else a one-line ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SwinIRConfig:
    """Every hyperparameter of a network of the SwinIR family.

    Field names and defaults are those of the official ``SwinIR.__init__`` so
    that ``SwinIRConfig(**official_kwargs)`` just works; Swin2SR's official
    arguments are the same, less ``qk_scale``. ``num_feat`` and ``out_chans``
    are hard-coded (64, in_chans) in the official code; they are fields here so
    that checkpoints that changed them still load. ``arch`` names the network:
    ``"swinir"`` (Liang et al. 2021) or ``"swin2sr"`` (Conde et al. 2022, SwinV2
    blocks; build it with :func:`swinir_app.network.build_network`).
    """

    upscale: int = 2
    in_chans: int = 3
    img_size: int = 64
    window_size: int = 7
    img_range: float = 1.0
    depths: Tuple[int, ...] = (6, 6, 6, 6)
    embed_dim: int = 96
    num_heads: Tuple[int, ...] = (6, 6, 6, 6)
    mlp_ratio: float = 4.0
    upsampler: str = ""
    resi_connection: str = "1conv"
    patch_size: int = 1
    qkv_bias: bool = True
    qk_scale: Optional[float] = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    ape: bool = False
    patch_norm: bool = True
    use_checkpoint: bool = False
    num_feat: int = 64
    out_chans: Optional[int] = None
    arch: str = "swinir"
    # HAT only (Chen et al. 2023): the channel-attention block and the overlapping cross-attention.
    compress_ratio: int = 3
    squeeze_factor: int = 30
    conv_scale: float = 0.01
    overlap_ratio: float = 0.5
    # DAT only (Chen et al. 2023): the (height, width) of the spatial windows (the second branch of each block
    # uses them transposed) and the SGFN's width over embed_dim. For DAT, window_size is derived: the
    # multiple of max(split_size) that its spatial blocks pad to.
    split_size: Tuple[int, ...] = (2, 4)
    expansion_factor: float = 4.0

    def __post_init__(self):
        """Normalise and check every field; a bad value is a one-line ValueError naming it.

        Besides the official constraints, sizes are bounded with a wide margin over every published
        model (SwinIR-L: embed 240, 9 groups of 6; HAT-L: 12 groups; windows 7 to 16), so that a
        tiny file claiming a huge network is refused before anything is allocated.
        """
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        if isinstance(self.img_size, (tuple, list)) and len(self.img_size) > 0:
            set_("img_size", self.img_size[0])
        if self.arch == "dat":
            self._check_dat(set_)
        for name, lo, hi in _INT_BOUNDS:
            set_(name, _integer(name, getattr(self, name), lo, hi))
        for name in ("depths", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ValueError(f"{name} must be a list of whole numbers, got {value!r}")
            # Accept lists (YAML, official scripts) but store tuples: the config is hashable.
            set_(name, tuple(_integer(f"{name}[{i}]", v, 1, _MAX_DEPTH if name == "depths" else _MAX_HEADS)
                             for i, v in enumerate(value)))
        if not 1 <= len(self.depths) <= _MAX_GROUPS:
            raise ValueError(f"depths must list 1 to {_MAX_GROUPS} residual groups, got {len(self.depths)}")
        if sum(self.depths) > _MAX_BLOCKS:
            raise ValueError(f"depths {list(self.depths)} hold {sum(self.depths)} blocks, over the limit of "
                             f"{_MAX_BLOCKS}")
        set_("out_chans", self.in_chans if self.out_chans is None else _integer("out_chans", self.out_chans, 1, 16))
        for name, lo, hi in _FLOAT_BOUNDS:
            set_(name, _real(name, getattr(self, name), lo, hi))
        if self.qk_scale is not None:
            set_("qk_scale", _real("qk_scale", self.qk_scale, 1e-6, 1e3))
        for name in ("qkv_bias", "ape", "patch_norm", "use_checkpoint"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {list(self.depths)} and num_heads {list(self.num_heads)} differ in length")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.upsampler not in UPSAMPLERS or (self.upsampler == "pixelshuffle_aux" and self.arch != "swin2sr"):
            allowed = UPSAMPLERS if self.arch == "swin2sr" else UPSAMPLERS[:-1]
            raise ValueError(f"upsampler must be one of {allowed} for {self.arch}, got {self.upsampler!r}")
        if self.arch != "dat":
            given = [k for k, v in DAT_FIELDS.items() if getattr(self, k) != v]
            if given:
                raise ValueError(f"{', '.join(given)}: DAT arguments, and this is {self.arch}")
        if self.arch != "hat":
            given = [k for k, v in HAT_FIELDS.items() if getattr(self, k) != v]
            if given:
                raise ValueError(f"{', '.join(given)}: HAT arguments, and this is {self.arch}")
        else:
            set_("compress_ratio", _integer("compress_ratio", self.compress_ratio, 1, self.embed_dim))
            set_("squeeze_factor", _integer("squeeze_factor", self.squeeze_factor, 1, self.embed_dim))
            set_("conv_scale", _real("conv_scale", self.conv_scale, 0.0, 10.0))
            set_("overlap_ratio", _real("overlap_ratio", self.overlap_ratio, 0.0, 1.0))
            if self.upsampler != "pixelshuffle":
                raise ValueError(f"HAT's released models use the pixelshuffle head, got {self.upsampler!r}")
            if self.resi_connection != "1conv":
                raise ValueError(f"HAT's released models use resi_connection 1conv, got {self.resi_connection!r}")
            if int(self.window_size * self.overlap_ratio) % 2:
                raise ValueError(f"window_size {self.window_size} x overlap_ratio {self.overlap_ratio:g} must give an "
                                 f"even overlap: OCAB pads its windows by half of it on each side")
        if self.arch == "dat":
            self._check_dat_structure()
        if self.arch == "swin2sr" and self.qk_scale is not None:
            raise ValueError("qk_scale must be None for swin2sr: its cosine attention learns its own scale")
        if self.upsampler == "pixelshuffle_aux" and self.out_chans != 3:
            raise ValueError("pixelshuffle_aux needs 3 output channels, as in the official code (conv_after_aux)")
        if self.resi_connection not in RESI_CONNECTIONS:
            raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {self.resi_connection!r}")
        if any(self.embed_dim % h for h in self.num_heads):
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {list(self.num_heads)}")
        if self.resi_connection == "3conv" and self.embed_dim < 4:
            raise ValueError(f"resi_connection 3conv needs embed_dim >= 4, got {self.embed_dim}")
        if self.patch_size != 1:
            raise ValueError(f"patch_size must be 1, as in every published SwinIR, got {self.patch_size}")
        if self.img_size > self.window_size and self.img_size % self.window_size:
            raise ValueError(f"img_size {self.img_size} must be a multiple of window_size {self.window_size} (or at "
                             f"most one window): the network's shift masks are built for it")
        if self.img_size * self.window_size > _MAX_IMG_X_WINDOW:
            mb = 4 * (self.img_size * self.window_size) ** 2 / 2 ** 20
            raise ValueError(f"img_size {self.img_size} x window_size {self.window_size} exceeds {_MAX_IMG_X_WINDOW}: "
                             f"its shift masks would take {mb:.0f} MB")
        ratio = self.expansion_factor if self.arch == "dat" else self.mlp_ratio
        body = sum(self.depths) * self.embed_dim ** 2 * (4 + 2 * ratio)  # ~ transformer parameters
        if body > _MAX_BODY_PARAMS:
            raise ValueError(f"a network of {body / 1e6:.0f}M transformer parameters (depths {list(self.depths)}, "
                             f"embed_dim {self.embed_dim}, mlp_ratio {self.mlp_ratio:g}) is over the limit of "
                             f"{_MAX_BODY_PARAMS / 1e6:.0f}M")
        if self.upsampler == "":
            set_("upscale", 1)
        elif self.upsampler in ("pixelshuffle", "pixelshuffle_aux") and self.upscale not in (2, 3, 4, 8):
            raise ValueError(f"{self.upsampler} supports x2/x3/x4/x8, got x{self.upscale}")
        elif self.upsampler == "nearest+conv" and self.upscale not in (2, 4, 8):
            raise ValueError(f"nearest+conv supports x2/x4/x8, got x{self.upscale}")
        elif self.upsampler == "pixelshuffledirect" and self.upscale not in (2, 3, 4, 8):
            raise ValueError(f"pixelshuffledirect supports x2/x3/x4/x8, got x{self.upscale}")

    def _check_dat(self, set_) -> None:
        """DAT's own fields, before the common checks: split_size, expansion_factor, and window_size derived."""
        value = self.split_size
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or len(tuple(value)) != 2:
            raise ValueError(f"split_size must be two whole numbers (window height, width), got {value!r}")
        split = tuple(_integer(f"split_size[{i}]", v, 1, 32) for i, v in enumerate(value))
        if max(split) % min(split):
            raise ValueError(f"split_size {list(split)}: the larger must be a multiple of the smaller (both branches "
                             f"pad to the larger)")
        set_("split_size", split)
        set_("expansion_factor", _real("expansion_factor", self.expansion_factor, 0.01, 16.0))
        given = [k for k, v in {**HAT_FIELDS, **NOT_DAT_FIELDS}.items() if getattr(self, k) != v]
        if given:
            raise ValueError(f"{', '.join(given)}: not DAT arguments (DAT's MLP width is expansion_factor)")
        set_("window_size", max(split))  # what the spatial attention pads to; not a free choice

    def _check_dat_structure(self) -> None:
        """The shapes DAT's modules need: even heads (two branches), and the widths its convs divide."""
        if self.upsampler not in ("pixelshuffle", "pixelshuffledirect"):
            raise ValueError(f"DAT's heads are pixelshuffle and pixelshuffledirect, got {self.upsampler!r}")
        if self.embed_dim < 32 or self.embed_dim % 2:
            raise ValueError(f"DAT needs an even embed_dim of at least 32 (its convs take embed_dim // 16 and its "
                             f"position MLP embed_dim // 32 channels), got {self.embed_dim}")
        for h in self.num_heads:
            if h % 2 or (self.embed_dim // 2) % (h // 2):
                raise ValueError(f"DAT needs even num_heads that split embed_dim / 2 (half the heads per window "
                                 f"branch), got {list(self.num_heads)} for embed_dim {self.embed_dim}")
        hidden = int(self.embed_dim * self.expansion_factor)
        if hidden < 2 or hidden % 2:
            raise ValueError(f"embed_dim {self.embed_dim} x expansion_factor {self.expansion_factor:g} = {hidden}: "
                             f"the spatial gate splits it in two halves, so it must be even")
        if self.img_size % self.split_size[0] or self.img_size % self.split_size[1]:
            raise ValueError(f"img_size {self.img_size} must be a multiple of split_size {list(self.split_size)}: "
                             f"the stored shift masks are built for it")

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def name(self) -> str:
        """The network's name: 'SwinIR' or 'Swin2SR' (BasicSR's ``network_g: type``)."""
        return ARCH_NAMES[self.arch]

    @property
    def task(self) -> str:
        """'sr' for upsampling networks, 'jpeg' for window-7/range-255 restoration, else 'denoise'."""
        if self.upsampler:
            return "sr"
        return "jpeg" if self.window_size == 7 and self.img_range == 255 else "denoise"

    def replace(self, **changes: Any) -> "SwinIRConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain values; ``arch`` is left out for SwinIR, so files and options written
        before Swin2SR existed read the same."""
        d = dataclasses.asdict(self)
        d["depths"], d["num_heads"] = list(self.depths), list(self.num_heads)
        if self.arch == "swinir":
            del d["arch"]
        if self.arch != "hat":
            for k in HAT_FIELDS:
                del d[k]
        if self.arch != "dat":
            for k in DAT_FIELDS:
                del d[k]
        else:
            d["split_size"] = list(self.split_size)
            for k in NOT_DAT_FIELDS:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SwinIRConfig":
        """A config from the official keyword arguments (a BasicSR ``network_g`` without ``type``).

        Raises TypeError naming unknown keys, and ValueError (one line) for a bad or out-of-bounds value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        if d.get("arch") == "dat":  # the official DAT's names for two of SwinIR's arguments
            d = dict(d)
            for official, ours in (("depth", "depths"), ("use_chk", "use_checkpoint")):
                if official in d and ours not in d:
                    d[ours] = d.pop(official)
            d.setdefault("upsampler", "pixelshuffle")  # the official DAT's default
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown SwinIR argument(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SwinIRConfig":
        """One of :data:`PRESETS` ('classical-x4', 'lightweight-x2', 'color-dn', ...), with ``overrides``.

        Raises KeyError for an unknown name (listing the known ones).
        """
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


ARCH_NAMES = {"swinir": "SwinIR", "swin2sr": "Swin2SR", "hat": "HAT", "dat": "DAT"}


_M = dict(depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2.0, window_size=8, img_range=1.0)
_S = dict(depths=[6] * 4, embed_dim=60, num_heads=[6] * 4, mlp_ratio=2.0, window_size=8, img_range=1.0)
_L = dict(depths=[6] * 9, embed_dim=240, num_heads=[8] * 9, mlp_ratio=2.0, window_size=8, img_range=1.0)

# The official release's settings (main_test_swinir.py), by task.
PRESETS: dict[str, dict] = {}
for _k in (2, 3, 4, 8):
    PRESETS[f"classical-x{_k}"] = dict(_M, upscale=_k, in_chans=3, img_size=64, upsampler="pixelshuffle")
for _k in (2, 3, 4):
    PRESETS[f"lightweight-x{_k}"] = dict(_S, upscale=_k, in_chans=3, img_size=64, upsampler="pixelshuffledirect")
PRESETS["real-x2"] = dict(_M, upscale=2, in_chans=3, img_size=64, upsampler="nearest+conv")
PRESETS["real-x4"] = dict(_M, upscale=4, in_chans=3, img_size=64, upsampler="nearest+conv")
PRESETS["real-x4-large"] = dict(_L, upscale=4, in_chans=3, img_size=64, upsampler="nearest+conv",
                                resi_connection="3conv")
PRESETS["gray-dn"] = dict(_M, upscale=1, in_chans=1, img_size=128, upsampler="")
PRESETS["color-dn"] = dict(_M, upscale=1, in_chans=3, img_size=128, upsampler="")
PRESETS["gray-jpeg"] = dict(_M, upscale=1, in_chans=1, img_size=126, upsampler="", window_size=7, img_range=255.0)
PRESETS["color-jpeg"] = dict(_M, upscale=1, in_chans=3, img_size=126, upsampler="", window_size=7, img_range=255.0)

# Swin2SR's official models (main_test_swin2sr.py): SwinIR's sizes on SwinV2 blocks.
_V2 = dict(arch="swin2sr")
PRESETS["swin2sr-classical-x2"] = dict(_M, **_V2, upscale=2, in_chans=3, img_size=64, upsampler="pixelshuffle")
PRESETS["swin2sr-classical-x4"] = dict(_M, **_V2, upscale=4, in_chans=3, img_size=64, upsampler="pixelshuffle")
PRESETS["swin2sr-lightweight-x2"] = dict(_S, **_V2, upscale=2, in_chans=3, img_size=64, upsampler="pixelshuffledirect")
PRESETS["swin2sr-compressed-x4"] = dict(_M, **_V2, upscale=4, in_chans=3, img_size=48, upsampler="pixelshuffle_aux")
PRESETS["swin2sr-real-x4"] = dict(_M, **_V2, upscale=4, in_chans=3, img_size=64, upsampler="nearest+conv")
PRESETS["swin2sr-gray-jpeg"] = dict(_M, **_V2, upscale=1, in_chans=1, img_size=126, upsampler="", window_size=7,
                                    img_range=255.0)

# HAT's released models (XPixelGroup/HAT options/test): window 16, SwinIR's head, channel attention in every block.
_HAT = dict(arch="hat", window_size=16, img_size=64, mlp_ratio=2.0, img_range=1.0, upsampler="pixelshuffle", in_chans=3)
for _k in (2, 3, 4):
    PRESETS[f"hat-s-x{_k}"] = dict(_HAT, upscale=_k, embed_dim=144, depths=[6] * 6, num_heads=[6] * 6,
                                   compress_ratio=24, squeeze_factor=24)
    PRESETS[f"hat-x{_k}"] = dict(_HAT, upscale=_k, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6)
    PRESETS[f"hat-l-x{_k}"] = dict(_HAT, upscale=_k, embed_dim=180, depths=[6] * 12, num_heads=[6] * 12)
PRESETS["real-hat-gan-x4"] = dict(_HAT, upscale=4, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6)

# DAT's released models (zhengchen1999/DAT options/Test): DAT, DAT-S and DAT-2 on SwinIR-M's body sizes, DAT-light
# one group of 18 with the lightweight head. window_size is derived from split_size.
_DAT = dict(arch="dat", img_size=64, img_range=1.0, in_chans=3, embed_dim=180, depths=[6] * 6, num_heads=[6] * 6,
            upsampler="pixelshuffle", resi_connection="1conv")
for _k in (2, 3, 4):
    PRESETS[f"dat-x{_k}"] = dict(_DAT, upscale=_k, split_size=[8, 32], expansion_factor=4.0)
    PRESETS[f"dat-s-x{_k}"] = dict(_DAT, upscale=_k, split_size=[8, 16], expansion_factor=2.0)
    PRESETS[f"dat-2-x{_k}"] = dict(_DAT, upscale=_k, split_size=[8, 32], expansion_factor=2.0)
    PRESETS[f"dat-light-x{_k}"] = dict(_DAT, upscale=_k, embed_dim=60, depths=[18], num_heads=[6],
                                       split_size=[8, 32], expansion_factor=2.0, upsampler="pixelshuffledirect",
                                       resi_connection="3conv")
