"""What a loaded model declares it can do: the one thing the engine reads about a model.

Modelled on spandrel's ``ModelDescriptor``: every model the product runs (the native networks, an exported
ONNX graph, and later any other architecture) states its scale, channels, size needs, precisions, tiling
and where a run may report progress or stop, so the engine never probes a model with ``getattr``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from .config import SwinIRConfig

__all__ = ["ALL_PRECISIONS", "AMX_BF16_MIN_EMBED", "Capabilities", "FamilyNetwork", "TILING", "activation_bytes",
           "of_network"]

ALL_PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # int8: the int8 linears of network/int8.py, CPU only
TILING = ("supported", "discouraged", "internal")  # spandrel's ModelTiling, in words

# bf16 pays on an AMX CPU only when the transformer is wide: measured fp32/bf16 speedups at 128x128 on a
# 2-core AMX Xeon were 1.73x for SwinIR-M (embed 180), 1.15x for SwinIR-S (60), 1.04x for bundled-x4
# (48) and 0.89x for bundled-dn (48). Narrow models stay in fp32, which is then as fast and exact.
AMX_BF16_MIN_EMBED = 96


@dataclass(frozen=True)
class Capabilities:
    """A loaded model's declaration of what it can do (``model.capabilities``).

    Attributes:
        arch: the architecture's display name ("SwinIR", "HAT", "ONNX graph of SwinIR", ...).
        task: "sr", "denoise", "jpeg" or "real_sr"-style tasks as ``SwinIRConfig.task`` names them.
        scale: output pixels per input pixel along each side (1 for denoising and JPEG repair).
        in_chans, out_chans: 1 (gray) or 3 (RGB).
        size_multiple: the model pads its input to a multiple of this inside ``forward`` (the window
            size); tiles are cut in whole multiples of it.
        fixed_size: (height, width) of the largest input the model takes (a fixed-shape graph), or None.
        precisions: the precisions it runs correctly, a subset of ``fp32``, ``bf16``, ``fp16`` and ``int8``
            (the native networks' transformer linears in int8 on a CPU, :mod:`.int8`).
        own_precision: the precision baked into the model (an exported graph): the engine runs no
            autocast around it and refuses another one; None for networks that autocast can run.
        polls_cancel: ``forward(x, cancel=fn)`` calls ``fn`` while it runs (an ONNX graph, every 0.1 s).
        tiling: "supported" (tiles blend seamlessly), "discouraged" (tiles show; run whole where memory
            allows) or "internal" (the model tiles itself; the engine never tiles it).
        stages: names of submodules (``model.get_submodule``) that each do a share of a forward, in order
            (the residual groups): the engine reports progress after each and polls cancel before each.
        cancel_points: further submodule names before which the engine polls cancel (transformer blocks),
            so that an untiled run stops within a second or two.
        bytes_per_pixel: rough peak activation memory of an fp32 forward per input pixel, for tile sizes.
        amx_bf16_faster: bf16 is measured faster than fp32 on an AMX CPU (wide transformers), so
            ``precision="auto"`` picks it there.
    """

    arch: str
    task: str
    scale: int
    in_chans: int
    out_chans: int
    bytes_per_pixel: int
    size_multiple: int = 1
    fixed_size: Optional[Tuple[int, int]] = None
    precisions: Tuple[str, ...] = ALL_PRECISIONS
    own_precision: Optional[str] = None
    polls_cancel: bool = False
    tiling: str = "supported"
    stages: Tuple[str, ...] = ()
    cancel_points: Tuple[str, ...] = ()
    amx_bf16_faster: bool = False

    def __post_init__(self):
        if self.tiling not in TILING:
            raise ValueError(f"tiling must be one of {TILING}, got {self.tiling!r}")
        unknown = set(self.precisions) - set(ALL_PRECISIONS)
        if unknown or not self.precisions:
            raise ValueError(f"precisions must be a non-empty subset of {ALL_PRECISIONS}, got {self.precisions}")
        if self.own_precision is not None and self.precisions != (self.own_precision,):
            raise ValueError(f"a model with its own precision {self.own_precision!r} runs only that one")


def activation_bytes(config) -> int:
    """Rough peak activation memory of a forward per input pixel (bytes, fp32) of the network of a
    ``SwinIRConfig``, so that every architecture's auto tiles stay within one memory budget."""
    c = config
    body = (10 + 2 * (c.expansion_factor if c.arch == "dat" else c.mlp_ratio)) * c.embed_dim * 4
    if c.arch == "hat":  # OCAB's unfolded windows and the CABs: measured 61-62 KB a pixel for HAT and
        body *= 3.7      # HAT-S x4 at 128² against SwinIR-M's 29 KB (docs/architectures.md, HAT)
    elif c.arch == "dat":  # rectangle windows and the gated FFN: peak RSS at 128² x4 was 1.28x SwinIR-M's
        body *= 1.6        # for DAT-S, 2.10x for DAT, 0.76x for DAT-light
    recon = (c.upscale ** 2) * max(c.num_feat, 3 * c.out_chans) * 4 * 3
    return int(1.5 * (body + recon))


def of_network(model) -> Capabilities:
    """The capabilities of a native network of the family (``model.config``, residual groups in
    ``model.layers`` whose transformer blocks have an ``attn``): every precision, seamless tiles in whole
    windows, progress after each residual group and cancel before each block."""
    c = model.config
    return Capabilities(
        arch=c.name, task=c.task, scale=c.upscale, in_chans=c.in_chans, out_chans=c.out_chans,
        bytes_per_pixel=activation_bytes(c), size_multiple=c.window_size,
        stages=tuple(f"layers.{i}" for i in range(len(model.layers))),
        cancel_points=tuple(name for name, m in model.layers.named_modules(prefix="layers") if hasattr(m, "attn")),
        amx_bf16_faster=c.embed_dim >= AMX_BF16_MIN_EMBED)


class FamilyNetwork(nn.Module):
    """What the native networks (SwinIR and its subclasses, DAT) share: ``scale``, their declared
    ``capabilities`` and the official weight initialisation (truncated normal linears, unit norms)."""

    upscale: int
    arch: str  # the config's ``arch`` that builds this class

    def _setup(self, config: Optional[SwinIRConfig], kwargs: dict) -> SwinIRConfig:
        """The config from ``config`` and/or the official keyword arguments, checked to be this class's, and
        what every network keeps of it: ``config``, ``upscale``, ``upsampler``, ``window_size``,
        ``img_range`` and the RGB mean buffer. Returns the config."""
        if kwargs.get("norm_layer", nn.LayerNorm) is not nn.LayerNorm:
            raise ValueError("only nn.LayerNorm is supported as norm_layer")
        kwargs.pop("norm_layer", None)
        if config is None:
            config = SwinIRConfig.from_dict({"arch": self.arch, **kwargs})
        elif kwargs:
            config = config.replace(**kwargs)
        if config.arch != self.arch:
            raise ValueError(f"a {config.name} config builds a {config.name}, not a {type(self).__name__}; "
                             f"use swinir_app.network.build_network(config)")
        self.config = c = config
        self.upscale, self.upsampler = c.upscale, c.upsampler
        self.window_size, self.img_range = c.window_size, c.img_range
        mean = (0.4488, 0.4371, 0.4040) if c.in_chans == 3 else (0.0,) * c.in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        return c

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def capabilities(self) -> Capabilities:
        """What this network can do, for the engine (see :func:`of_network`)."""
        return of_network(self)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
