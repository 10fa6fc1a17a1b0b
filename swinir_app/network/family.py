"""The network family as a whole: what depends on every architecture, above the networks.

:class:`~.swinir.SwinIR` is the base class that :class:`~.swin2sr.Swin2SR` and :class:`~.hat.HAT` extend, so the
helpers that dispatch on ``config.arch`` (building a network, its derived buffers, its state shapes) live here,
not in the base network's module, which then never imports its subclasses. :class:`~.dat.DAT` has SwinIR's public
surface (config, forward, layers) but none of its classes.
"""
from __future__ import annotations

import torch
from torch import nn

from .capabilities import Capabilities
from .config import SwinIRConfig
from .dat import DAT, dat_derived_buffers
from .hat import HAT, relative_position_index_oca
from .layers import relative_position_index, shift_mask
from .swin2sr import Swin2SR, relative_coords_table
from .swinir import SwinIR

NETWORKS = {"swinir": SwinIR, "swin2sr": Swin2SR, "hat": HAT, "dat": DAT}


def build_network(config: SwinIRConfig) -> nn.Module:
    """The network of ``config`` (by ``config.arch``): a :class:`SwinIR`, :class:`Swin2SR`, :class:`HAT` or
    :class:`DAT` (which is no SwinIR subclass but has its public surface)."""
    return NETWORKS[config.arch](config)


def derived_buffers(config: SwinIRConfig) -> dict:
    """The state-dict entries computed from the config alone (shift masks, position indices and, for
    Swin2SR, the log-spaced coordinate tables), by key.

    Files may leave them out; adding them back gives a dict the official code loads strictly.
    """
    if config.arch == "dat":
        return dat_derived_buffers(config)
    if config.arch == "hat":
        return {"relative_position_index_SA": relative_position_index(config.window_size),
                "relative_position_index_OCA": relative_position_index_oca(config.window_size, config.overlap_ratio)}
    res = config.img_size // config.patch_size
    ws = min(res, config.window_size)
    index = relative_position_index(ws)
    mask = shift_mask(res, res, ws, ws // 2, torch.device("cpu")) if res > config.window_size else None
    coords = relative_coords_table(ws) if config.arch == "swin2sr" else None
    out = {}
    for i, depth in enumerate(config.depths):
        for j in range(depth):
            prefix = f"layers.{i}.residual_group.blocks.{j}."
            out[prefix + "attn.relative_position_index"] = index
            if coords is not None:
                out[prefix + "attn.relative_coords_table"] = coords
            if j % 2 and mask is not None:
                out[prefix + "attn_mask"] = mask
    return out


def state_shapes(config: SwinIRConfig) -> dict:
    """The shape of every state-dict entry of the network of ``config``, by key, built on the meta
    device.

    Nothing is allocated, so a checkpoint can be checked against its config before any memory is
    spent on it.
    """
    with torch.device("meta"):
        model = build_network(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def capabilities_of(config: SwinIRConfig) -> Capabilities:
    """What the network of ``config`` declares (see :class:`~.capabilities.Capabilities`), built on the meta
    device: nothing allocated, so a zoo entry is described before it is downloaded."""
    with torch.device("meta"):
        return build_network(config).capabilities
