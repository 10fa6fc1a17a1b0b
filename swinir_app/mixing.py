"""Mixing the weights of two models of one architecture and config: (1 - w) x A + w x B, once, at load.

Real-ESRGAN's ``-dn`` and chaiNNer's "Interpolate Models" do the same: between a model that keeps detail
(and noise) and one that cleans, a weight ``w`` picks any strength in between at no cost per image.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .checkpoint import ModelLoadError
from .errors import SettingError

__all__ = ["check_weight", "mismatch", "mix_into", "mixed"]


def check_weight(w: object, setting: str = "mix") -> float:
    """``w`` as a float from 0 to 1, else :class:`SettingError` in one line."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= 1:
        raise SettingError(setting, w, "the weight must be a number from 0 (the model itself) to 1 (the other "
                                       "model)")
    return float(w)


def _shapes(model: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in _net(model).state_dict().items()}


def _net(model: nn.Module) -> nn.Module:
    """The module whose tensors are the weights: a spandrel model's own network, else the model."""
    return getattr(model, "net", model) if getattr(model, "config", None) is None else model


def _arch(model: nn.Module) -> str:
    caps = getattr(type(model), "capabilities", None) and model.capabilities
    return caps.arch if caps else type(model).__name__


def _some(items: List[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def mismatch(a: nn.Module, b: nn.Module) -> str:
    """What makes ``a`` and ``b`` impossible to mix, in a few words ("upscale (4 vs 1)"); "" if nothing.

    Native networks (``model.config``) must have equal configs; others (a spandrel model, config None) the
    same architecture and every state-dict key and shape."""
    if not any(True for _ in a.parameters()) or not any(True for _ in b.parameters()):
        return f"architecture ({_arch(a)} vs {_arch(b)}): a model without weights (an ONNX graph) cannot be mixed"
    ca, cb = getattr(a, "config", None), getattr(b, "config", None)
    if _arch(a) != _arch(b) or (ca is None) != (cb is None) or type(a) is not type(b):
        return f"architecture ({_arch(a)} vs {_arch(b)})"
    if ca is not None:
        diffs = [f"{f.name} ({getattr(ca, f.name)!r} vs {getattr(cb, f.name)!r})" for f in dataclasses.fields(ca)
                 if getattr(ca, f.name) != getattr(cb, f.name)]
        if diffs:
            return _some(diffs)
    sa, sb = _shapes(a), _shapes(b)
    only = [f"{k} (only in the {which})" for which, x, y in (("first", sa, sb), ("second", sb, sa))
            for k in x if k not in y]
    shapes = [f"the shape of {k} ({list(sa[k])} vs {list(sb[k])})" for k in sa if k in sb and sa[k] != sb[k]]
    return _some(only + shapes)


def _mixable(t: Tensor, u: Tensor, parameter: bool) -> bool:
    # Parameters always; buffers (a batch norm's running statistics) only where they differ: the derived ones
    # (attention masks, position indices and tables) are equal in two models of one config, and kept as built.
    return t.is_floating_point() and (parameter or not torch.equal(t, u))


@torch.no_grad()
def mix_into(a: nn.Module, b: nn.Module, w: float, labels: Tuple[str, str] = ("the model", "the mix model")
             ) -> nn.Module:
    """Make ``a``'s weights (1 - w) x a + w x b, in place, and return ``a``. ``w`` = 0 leaves ``a`` as it
    is; ``w`` = 1 copies ``b``'s weights exactly.

    Raises:
        SettingError: ``w`` outside [0, 1].
        ModelLoadError: one line naming what differs (``labels`` name the two models).
    """
    w = check_weight(w)
    why = mismatch(a, b)
    if why:
        raise ModelLoadError(f"{labels[0]} and {labels[1]} cannot be mixed: they differ in {why}")
    if w == 0:
        return a
    na, nb = _net(a), _net(b)
    params = {k for k, _ in na.named_parameters()}
    other = nb.state_dict()
    for key, t in na.state_dict().items():
        u = other[key].to(t.device, t.dtype)
        if _mixable(t, u, key in params):
            t.copy_(u if w == 1 else t * (1 - w) + u * w)
    return a


def mixed(a: nn.Module, b: nn.Module, w: float, labels: Tuple[str, str] = ("the model", "the mix model")
          ) -> nn.Module:
    """A copy of ``a`` whose weights are (1 - w) x a + w x b; ``a`` and ``b`` are left as they are."""
    check_weight(w)
    why = mismatch(a, b)
    if why:
        raise ModelLoadError(f"{labels[0]} and {labels[1]} cannot be mixed: they differ in {why}")
    return mix_into(copy.deepcopy(a), b, w, labels)
