"""int8 linears for CPU inference: int8 weights per output channel, activations quantised per call.

:func:`quantize_linears` turns a network's transformer linears (``qkv``, ``proj``, ``fc1`` and ``fc2`` in
SwinIR, Swin2SR, HAT and DAT) into :class:`Int8Linear`. In CPU inference each runs oneDNN's int8 linear
(``onednn::qlinear_pointwise``, the kernel PyTorch's x86 inductor backend uses), with plain int8 and uint8
tensors and its weights prepacked once:

- weights: symmetric int8, one scale per output channel (``|w|.max / 127``; ``/ 63`` without VNNI, see
  below), quantised once and cached until the fp32 weight changes;
- activations: asymmetric uint8, one scale and zero point per call from the input's min and max (dynamic);
  q, k and v share one quantised input;
- bias and the residual add run inside the oneDNN call in fp32; the output is fp32. Attention, LayerNorm,
  GELU, convolutions and residual sums stay fp32.

Without VNNI (AVX2, AVX-512 before Cascade Lake) oneDNN sums pairs of u8 x s8 products in 16 bits, which
saturate at 32767 for full 8-bit values (errors of 0.6 on a 180 -> 180 linear of unit inputs instead of
0.03); there the weights keep 7 bits (``hardware.cpu().vnni``, probed by running the kernel).

Training, tracing (ONNX export) and other devices run the plain fp32 ``nn.Linear`` underneath: the fp32
weights stay the parameters, so ``state_dict`` is unchanged.
"""
from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import hardware
from .layers import KernelLinear, WeightCache, cpu_inference

__all__ = ["INT8_LINEARS", "Int8Linear", "quantize_activation", "quantize_linears", "quantize_weight"]

INT8_LINEARS = ("qkv", "proj", "fc1", "fc2")  # attribute names of the linears that become int8

_PACKED = WeightCache()


def quantize_activation(x: Tensor) -> Tuple[Tensor, float, int]:
    """(M, K) fp32 -> (uint8 of the same shape, scale, zero point), ``x ≈ scale * (q - zero_point)``, with
    the range [min(x, 0), max(x, 0)] mapped onto 0..255 (zero exact, as oneDNN's zero point needs).

    Rounded to nearest (ties to even) by adding 1.5 * 2**23, where a float's spacing is 1, so that the
    integer is the low byte of the float's bits: one multiply-add, a clamp and an int32 -> uint8 cast, about
    twice as fast as ATen's float -> uint8 cast alone (0.19 ms for 4096 x 180, not vectorised).
    """
    lo, hi = torch.aminmax(x)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255 or 1.0
    zero_point = min(255, max(0, round(-lo / scale)))
    t = torch.add(_MAGIC[zero_point], x, alpha=1.0 / scale).clamp_(_ROUNDER, _ROUNDER + 255)
    return t.view(torch.int32).to(torch.uint8), scale, zero_point


_ROUNDER = 1.5 * 2 ** 23  # floats in [2**23, 2**24) are the integers; its bits end in a zero byte
_MAGIC = [torch.tensor(_ROUNDER + zp) for zp in range(256)]


def quantize_weight(w: Tensor, qmax: int = 127) -> Tuple[Tensor, Tensor]:
    """(N, K) weight -> (int8 (N, K), fp32 scales (N,)), ``w ≈ scales[:, None] * q``: symmetric, one scale per
    output channel, ``|q| <= qmax`` (127: 8 bits; 63, 7 bits, where oneDNN would saturate without VNNI)."""
    w = w.float()
    scale = w.abs().amax(1).clamp(min=1e-12) / qmax
    return (w / scale[:, None]).round_().clamp_(-qmax, qmax).to(torch.int8), scale


class Int8Linear(KernelLinear):
    """An ``nn.Linear`` that runs as an int8 oneDNN linear in CPU inference (see the module's notes).

    Built by :func:`quantize_linears` from an ``nn.Linear`` (same parameters); the packed int8 weights are
    derived from the fp32 ones on first use and rebuilt when those change. Input (..., in_features) fp32,
    output (..., out_features) fp32.
    """

    def _packed(self, sizes: Tuple[int, ...], bias: Optional[Tensor]) -> List[tuple]:
        """[(prepacked int8 weight, per-channel scales, zero points, fp32 bias)] for row blocks ``sizes``."""
        vnni = hardware.cpu().vnni

        def pack():
            with torch.inference_mode(False), torch.no_grad():
                w8, scale = quantize_weight(self.weight.detach(), 127 if vnni else 63)
                b = self.bias.detach().float() if bias is None and self.bias is not None else None
                parts = []
                for rows, s, bb in zip(w8.split(sizes), scale.split(sizes),
                                       b.split(sizes) if b is not None else (None,) * len(sizes)):
                    parts.append((torch.ops.onednn.qlinear_prepack(rows.contiguous(), None), s.contiguous(),
                                  torch.zeros(rows.shape[0], dtype=torch.long),
                                  bb.contiguous() if bb is not None else None))
                return parts
        params = (self.weight,) if self.bias is None else (self.weight, self.bias)
        return _PACKED.get(self, params, pack, (sizes, vnni, bias is None))

    def run(self, x: Tensor, gelu: bool = False, residual: Optional[Tensor] = None,
            bias: Optional[Tensor] = None) -> Tensor:
        """``x @ W.T + b``, then GELU (in place) or ``+ residual``, in int8 (``bias`` replaces the layer's)."""
        ((w, ws, wz, b),) = self._packed((self.out_features,), bias)
        if bias is not None:
            b = bias.detach().float()
        shape = x.shape[:-1] + (self.out_features,)
        q, s, zp = quantize_activation(x.reshape(-1, x.shape[-1]).float())
        if residual is not None:
            y = torch.ops.onednn.qlinear_pointwise.binary(
                q, s, zp, w, ws, wz, residual.reshape(q.shape[0], -1).float(), b, 1.0, 0, torch.float32,
                1.0, 0, "add", 1.0, "none", [], "")
            return y.view(shape)
        y = torch.ops.onednn.qlinear_pointwise(q, s, zp, w, ws, wz, b, 1.0, 0, torch.float32, "none", [], "")
        y = y.view(shape)
        return torch.ops.aten.gelu_(y) if gelu else y

    def run_parts(self, x: Tensor, sizes: Tuple[int, ...], bias: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """``run(x, bias=bias).split(sizes, -1)`` as one int8 call per part over one quantised input."""
        parts = self._packed(tuple(sizes), bias)
        bs = bias.detach().float().split(sizes) if bias is not None else [p[3] for p in parts]
        lead = x.shape[:-1]
        q, s, zp = quantize_activation(x.reshape(-1, x.shape[-1]).float())
        return tuple(torch.ops.onednn.qlinear_pointwise(q, s, zp, w, ws, wz, b, 1.0, 0, torch.float32, "none",
                                                        [], "").view(lead + (n,))
                     for (w, ws, wz, _), b, n in zip(parts, bs, sizes))

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x) if cpu_inference(x) and x.dtype == torch.float32 else super().forward(x)


def quantize_linears(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The network with every ``nn.Linear`` named in :data:`INT8_LINEARS` made an :class:`Int8Linear`.

    ``model``: a network of the family on the CPU, in fp32. Returns a converted deep copy (``inplace=False``)
    or ``model`` itself, in eval mode. The position-bias MLPs (Swin2SR's ``cpb_mlp``, DAT's ``pos*``: run once
    per input size) and everything that is not an ``nn.Linear`` stay fp32.

    A network already converted (every one of those linears an :class:`Int8Linear`) is returned as it is,
    not copied: its packed weights are kept (the web app converts a model once and reuses it).

    Raises RuntimeError where this machine has no int8 oneDNN linear (``hardware.cpu().int8`` is False: not
    x86-64 with AVX2, or a torch built without oneDNN) and ValueError for a model with parameters off the CPU
    or not in fp32, or with none of those linears.
    """
    caps = hardware.cpu()
    if not caps.int8:
        raise RuntimeError(f"int8 linears need oneDNN's int8 kernels on an x86-64 CPU with AVX2 or newer; "
                           f"this CPU is {caps.describe()}")
    for p in model.parameters():
        if p.device.type != "cpu" or p.dtype != torch.float32:
            raise ValueError(f"int8 conversion needs an fp32 model on the CPU, not {p.dtype} on {p.device}")
    named = [getattr(m, name) for m in model.modules() for name in INT8_LINEARS
             if isinstance(getattr(m, name, None), nn.Linear)]
    if named and all(type(layer) is Int8Linear for layer in named):
        return model.eval()
    if not inplace:
        model = copy.deepcopy(model)
    count = 0
    for module in list(model.modules()):
        for name in INT8_LINEARS:
            layer = getattr(module, name, None)
            if type(layer) is nn.Linear:
                layer.__class__ = Int8Linear
                count += 1
    if not count:
        raise ValueError(f"{type(model).__name__} has no linear layers named {', '.join(INT8_LINEARS)}")
    return model.eval()
