"""Typed SwinIR hyperparameters and the presets of the official model family."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")
RESI_CONNECTIONS = ("1conv", "3conv")


@dataclass(frozen=True)
class SwinIRConfig:
    """Every hyperparameter of a SwinIR network.

    Field names and defaults are those of the official ``SwinIR.__init__`` so
    that ``SwinIRConfig(**official_kwargs)`` just works. ``num_feat`` and
    ``out_chans`` are hard-coded (64, in_chans) in the official code; they are
    fields here so that checkpoints that changed them still load.
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

    def __post_init__(self):
        # Accept lists (YAML, official scripts) but store tuples: the config is hashable.
        for name in ("depths", "num_heads"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if isinstance(self.img_size, (tuple, list)):
            object.__setattr__(self, "img_size", int(self.img_size[0]))
        if self.out_chans is None:
            object.__setattr__(self, "out_chans", self.in_chans)
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} differ in length")
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {self.upsampler!r}")
        if self.resi_connection not in RESI_CONNECTIONS:
            raise ValueError(f"resi_connection must be one of {RESI_CONNECTIONS}, got {self.resi_connection!r}")
        if any(self.embed_dim % h for h in self.num_heads):
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.upsampler == "":
            object.__setattr__(self, "upscale", 1)
        elif self.upsampler == "pixelshuffle" and self.upscale not in (2, 3, 4, 8):
            raise ValueError(f"pixelshuffle supports x2/x3/x4/x8, got x{self.upscale}")
        elif self.upsampler == "nearest+conv" and self.upscale not in (2, 4, 8):
            raise ValueError(f"nearest+conv supports x2/x4/x8, got x{self.upscale}")

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def task(self) -> str:
        """'sr' for upsampling networks, 'jpeg' for window-7/range-255 restoration, else 'denoise'."""
        if self.upsampler:
            return "sr"
        return "jpeg" if self.window_size == 7 and self.img_range == 255 else "denoise"

    def replace(self, **changes: Any) -> "SwinIRConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["depths"], d["num_heads"] = list(self.depths), list(self.num_heads)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SwinIRConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown SwinIR argument(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "SwinIRConfig":
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


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
