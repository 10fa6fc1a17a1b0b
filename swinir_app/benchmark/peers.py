"""The networks ours is timed against, holding the same weights: the official one (basicsr's SwinIR, else
spandrel's port) and spandrel's."""
from __future__ import annotations

from typing import Optional

import torch

from ..network import SwinIRConfig

def spandrel_network(config: SwinIRConfig) -> Optional[torch.nn.Module]:
    """spandrel's port of the official SwinIR, Swin2SR, HAT or DAT (it pads and crops itself), or None if not
    installed."""
    try:
        from spandrel.architectures.DAT import DAT as SpandrelDAT
        from spandrel.architectures.HAT import HAT as SpandrelHAT
        from spandrel.architectures.Swin2SR import Swin2SR as SpandrelSwin2SR
        from spandrel.architectures.SwinIR import SwinIR as SpandrelSwinIR
    except ImportError:
        return None
    c = config
    if c.arch == "dat":
        return SpandrelDAT(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, img_range=c.img_range,
                           split_size=list(c.split_size), depth=list(c.depths), embed_dim=c.embed_dim,
                           num_heads=list(c.num_heads), expansion_factor=c.expansion_factor, qkv_bias=c.qkv_bias,
                           qk_scale=c.qk_scale, resi_connection=c.resi_connection, upsampler=c.upsampler,
                           drop_path_rate=0.0)
    if c.arch == "hat":
        return SpandrelHAT(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                           img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim,
                           num_heads=list(c.num_heads), mlp_ratio=c.mlp_ratio, upsampler=c.upsampler,
                           resi_connection=c.resi_connection, qkv_bias=c.qkv_bias, qk_scale=c.qk_scale,
                           compress_ratio=c.compress_ratio, squeeze_factor=c.squeeze_factor,
                           conv_scale=c.conv_scale, overlap_ratio=c.overlap_ratio, drop_path_rate=0.0)
    args = dict(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim, num_heads=list(c.num_heads),
                mlp_ratio=c.mlp_ratio, upsampler=c.upsampler, resi_connection=c.resi_connection, qkv_bias=c.qkv_bias,
                ape=c.ape, patch_norm=c.patch_norm, drop_path_rate=0.0)
    if c.arch == "swin2sr":
        return SpandrelSwin2SR(**args)
    return SpandrelSwinIR(**args, qk_scale=c.qk_scale)


def reference(config: SwinIRConfig, state: dict) -> Optional[torch.nn.Module]:
    """The official network holding ``state``: basicsr's SwinIR with the official pad and crop, or for
    Swin2SR, HAT and DAT (whose official code is not on PyPI) spandrel's port; None if that is not installed."""
    if config.arch != "swinir":
        ref = spandrel_network(config)
        if ref is not None:
            ref.load_state_dict(state, strict=True)
        return ref
    from .._basicsr import OfficialReference

    ref = OfficialReference(config)
    ref.net.load_state_dict(state, strict=True)
    return ref
