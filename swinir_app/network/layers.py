"""Small single-purpose layers: windows, shift masks, padding, MLP, stochastic depth."""
from __future__ import annotations

import functools
import weakref
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import hardware


def tracing() -> bool:
    """True while the network is traced into a graph (ONNX export, ``torch.export``, ``jit.trace``).

    Sizes are then symbolic: per-size indices and masks are computed inside the graph from the input's
    shape instead of cached as constants (a cached one would bake the example's size into the graph), and
    only portable operators run (no oneDNN fusions, no data-dependent window selection).
    """
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.6
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or bool(exporting and exporting())


def cached(fn):
    """lru_cache for per-size index and mask tensors, always built as normal CPU-built tensors: one
    built under inference_mode could not be used later in a graph (training after validation), and
    one built under a ``torch.device("meta")`` context (shape checks) would have no data."""
    @functools.lru_cache(maxsize=64)
    @functools.wraps(fn)
    def build(*args):
        with torch.inference_mode(False), torch.no_grad(), torch.device("cpu"):
            return fn(*args)
    return build


def weights_key(*tensors: Tensor) -> Optional[tuple]:
    """A key that changes whenever one of ``tensors`` is replaced or written in place (data pointer and
    version counter), for values derived from weights (see :class:`WeightCache`).

    None for inference tensors (made under ``torch.inference_mode``, e.g. by ``model.half()`` there): they
    keep no version counter, so an in-place write could not be seen, and nothing derived from them is
    cached. The networks build their parameters as normal tensors even under inference_mode.
    """
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


class WeightCache:
    """Values derived from a module's weights (packed linears, Winograd filters, attention biases), rebuilt
    when :func:`weights_key` of those weights (or ``extra``) changes and never kept for inference tensors.

    Kept beside the modules, not on them: a copied or pickled network leaves them behind (oneDNN's packed
    weights cannot be deep-copied or pickled at all).
    """

    def __init__(self):
        self._store: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()

    def get(self, module: nn.Module, weights: Tuple[Tensor, ...], build, extra=None):
        """``build()``, or its value from the last call for ``module`` with the same weights and ``extra``."""
        key = weights_key(*weights)
        hit = self._store.get(module)
        if key is not None and hit is not None and hit[0] == (extra, key):
            return hit[1]
        value = build()
        if key is not None:
            self._store[module] = ((extra, key), value)
        return value


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, window_size**2, C), windows in raster order."""
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)


def relative_position_index(window_size: int) -> Tensor:
    """(N, N) index into the (2*ws-1)**2 bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # N, N, 2
    rel = rel + (window_size - 1)
    return rel[:, :, 0] * (2 * window_size - 1) + rel[:, :, 1]


def shift_mask(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    """(num_windows, N, N) additive mask, -100 between pixels that the cyclic shift made neighbours.

    Cached per size and device: computed once, never per block or per forward. While tracing, computed
    in the graph from the (symbolic) size.
    """
    if tracing():
        return _shift_mask_traced(H, W, window_size, shift_size, device)
    return _shift_mask(H, W, window_size, shift_size, device)


def _regions(size, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    """Per row (or column): 0, 1 or 2, the three bands that the cyclic shift brings together."""
    i = torch.arange(size, device=device)
    return (i >= size - window_size).long() + (i >= size - shift_size).long()


def _shift_mask_traced(H, W, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    label = (_regions(H, window_size, shift_size, device)[:, None] * 3
             + _regions(W, window_size, shift_size, device)[None, :])
    windows = window_partition(label.view(1, H, W, 1).float(), window_size).squeeze(-1)  # nW, N
    return (windows.unsqueeze(1) != windows.unsqueeze(2)).float() * -100.0


@cached
def _shift_mask(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    img_mask = torch.zeros(1, H, W, 1)
    spans = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    region = 0
    for h in spans:
        for w in spans:
            img_mask[:, h, w, :] = region
            region += 1
    mask_windows = window_partition(img_mask, window_size).squeeze(-1)  # nW, N
    mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
    return mask.to(device)


@cached
def masked_windows(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """The windows whose shift mask is not all zero (last row and column), and their (n, N, N) masks."""
    mask = _shift_mask(H, W, window_size, shift_size, device)
    idx = mask.ne(0).flatten(1).any(1).nonzero().flatten()
    return idx, mask[idx]


def token_order(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    """Raster indices of the tokens in (shifted) window order: roll by -shift, then partition."""
    idx = torch.arange(H * W, device=device).view(1, H, W, 1)
    if shift_size:
        idx = torch.roll(idx, shifts=(-shift_size, -shift_size), dims=(1, 2))
    return window_partition(idx, window_size).flatten()


def reorder_index(H: int, W: int, window_size: int, src: Optional[int], dst: Optional[int],
                  device: torch.device) -> Tensor:
    """Index with ``x_dst = x_src[:, index]`` between token orders: None is raster order, an int is the
    window order for that shift. One gather replaces partition + reverse + two rolls per block.

    Cached per size; computed in the graph while tracing.
    """
    if tracing():
        return _reorder_index(H, W, window_size, src, dst, device)
    return _reorder_index_cached(H, W, window_size, src, dst, device)


def _reorder_index(H: int, W: int, window_size: int, src: Optional[int], dst: Optional[int],
                   device: torch.device) -> Tensor:
    dst_raster = token_order(H, W, window_size, dst, device) if dst is not None else torch.arange(H * W, device=device)
    if src is None:
        return dst_raster
    src_raster = token_order(H, W, window_size, src, device)
    # The inverse permutation by a scatter, not an argsort: the same result, and a plain graph operator.
    position_in_src = torch.empty_like(src_raster).scatter_(0, src_raster, torch.arange(H * W, device=device))
    return position_in_src[dst_raster]


_reorder_index_cached = cached(_reorder_index)


def cpu_inference(x: Tensor) -> bool:
    """x is on the CPU, without gradients and not being traced: where the CPU-only inference paths run
    (fused oneDNN linears, window chunks, row gathers, Winograd convs)."""
    return x.device.type == "cpu" and not torch.is_grad_enabled() and not tracing()


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """``x[:, index]`` for tokens x (B, L, C) and an index (L,), e.g. of :func:`reorder_index`.

    In CPU inference a row gather (``F.embedding`` over the B*L rows), about 2x faster than
    ``index_select`` on dim 1 (0.7 vs 1.3-2.0 ms for 16384 x 180, AVX2 and AVX-512); elsewhere
    ``index_select``, whose backward and exported graph are the plain ones.
    """
    if not cpu_inference(x):
        return x.index_select(1, index)
    B, L, C = x.shape
    if B > 1:
        index = (torch.arange(B)[:, None] * L + index).flatten()
    return F.embedding(index, x.reshape(-1, C)).view(B, L, C)


def fusable(module: nn.Module, x: Tensor) -> Optional[torch.dtype]:
    """The dtype for oneDNN linears with the bias, GELU or residual add fused in, or None.

    Inference on CPU only: fp32, or bf16 under autocast where the CPU has native bf16 (oneDNN has
    no bf16 kernel for it elsewhere). Several times faster than addmm plus separate elementwise
    passes over memory. Elsewhere the plain path runs, with the same numerics. Residual sums stay
    in fp32.
    """
    if module.training or not cpu_inference(x):
        return None
    caps = hardware.cpu()
    if not caps.fused_linear:
        return None
    if torch.is_autocast_enabled("cpu"):
        return torch.bfloat16 if torch.get_autocast_dtype("cpu") == torch.bfloat16 and caps.bf16 else None
    return torch.float32 if x.dtype == torch.float32 else None


def _weights(layer: nn.Linear, dtype: torch.dtype, sizes: Optional[Tuple[int, ...]] = None
             ) -> List[Tuple[Tensor, Optional[Tensor]]]:
    """The layer's weight in ``dtype``, split into row blocks of ``sizes`` (default: whole), each
    reordered once into oneDNN's blocked layout, with its bias.

    Cached until the weight or bias changes (:class:`WeightCache`): autocast would cast on every
    call, and a plain weight is reordered by every oneDNN call.
    """
    sizes = sizes or (layer.out_features,)

    def pack():
        with torch.no_grad():
            ws = layer.weight.detach().to(dtype).split(sizes)
            bs = layer.bias.detach().to(dtype).split(sizes) if layer.bias is not None else (None,) * len(sizes)
            return [(torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), None), b) for w, b in zip(ws, bs)]
    params = (layer.weight,) if layer.bias is None else (layer.weight, layer.bias)
    return _PACKED.get(layer, params, pack, (dtype, sizes))


_PACKED = WeightCache()


class KernelLinear(nn.Linear):
    """An ``nn.Linear`` with its own CPU inference kernel (the int8 linears of :mod:`.int8`): :func:`linear`
    and :func:`linear_parts` hand it the whole call, GELU, residual add and split included, in CPU
    inference; elsewhere (training, tracing, GPUs) it is a plain ``nn.Linear``."""

    def run(self, x: Tensor, gelu: bool = False, residual: Optional[Tensor] = None,
            bias: Optional[Tensor] = None) -> Tensor:
        raise NotImplementedError

    def run_parts(self, x: Tensor, sizes: Tuple[int, ...], bias: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        raise NotImplementedError


def linear(x: Tensor, layer: nn.Linear, fused: Optional[torch.dtype], gelu: bool = False,
           residual: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``layer(x)``, then GELU or ``+ residual``; one oneDNN call with the residual add fused in when
    ``fused`` is a dtype.

    GELU runs after the call, in place: oneDNN's fused GELU is slower than the matmul plus ATen's
    (20 vs 17 ms for 16384 x 180 -> 360 on AVX2, equal on AVX-512). ``bias`` replaces the layer's
    own (Swin2SR's qkv, whose bias is assembled from q_bias and v_bias). A :class:`KernelLinear` runs
    its own kernel in CPU inference.
    """
    if isinstance(layer, KernelLinear) and cpu_inference(x):
        return layer.run(x, gelu=gelu, residual=residual, bias=bias)
    if fused is None:
        y = layer(x) if bias is None else F.linear(x, layer.weight, bias)
        y = F.gelu(y) if gelu else y
        return y if residual is None else residual + y
    ((w, b),) = _weights(layer, fused)
    y = _fused(x, w, b if bias is None else bias.detach().to(fused), residual)
    return torch.ops.aten.gelu_(y) if gelu else y


def linear_parts(x: Tensor, layer: nn.Linear, fused: Optional[torch.dtype], sizes: Tuple[int, ...],
                 bias: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
    """``layer(x).split(sizes, -1)`` (q, k and v from qkv), each part its own oneDNN call when ``fused``.

    A 16384 x 180 -> 540 matmul runs at 2/3 the speed of three 180 -> 180 ones, on AVX2 and AVX-512
    alike (25 vs 33 ms, 12 vs 21 ms); the parts are also contiguous, which SDPA prefers.
    """
    if isinstance(layer, KernelLinear) and cpu_inference(x):
        return layer.run_parts(x, tuple(sizes), bias=bias)
    if fused is None:
        return linear(x, layer, None, bias=bias).split(sizes, -1)
    bs = bias.detach().to(fused).split(sizes) if bias is not None else None
    return tuple(_fused(x, w, b if bs is None else bs[i], None)
                 for i, (w, b) in enumerate(_weights(layer, fused, tuple(sizes))))


def _fused(x: Tensor, w: Tensor, b: Optional[Tensor], residual: Optional[Tensor]) -> Tensor:
    """x @ w.T + b (+ residual) by oneDNN, for a packed weight ``w`` of ``_weights``."""
    shape = x.shape[:-1] + (-1,)
    x2 = x.reshape(-1, x.shape[-1]).to(w.dtype)
    if residual is not None and residual.dtype == w.dtype:
        y = torch.ops.mkldnn._linear_pointwise.binary(x2, residual.reshape(x2.shape[0], -1), w, b, "add")
        return y.view(shape)
    y = torch.ops.mkldnn._linear_pointwise(x2, w, b, "none", [], "").view(shape)
    return y if residual is None else residual + y  # fp32 residual, half-precision branch


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad the bottom/right of (B, C, H, W) to a multiple, with reflection as the official forward does.

    Reflection cannot add more than size-1 pixels, so tiny inputs are reflected repeatedly and a
    1-pixel side is replicated. While tracing, the same pixels are gathered by an index computed in the graph.
    """
    if tracing():
        return _mirror_pad_traced(x, multiple)
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    while ph or pw:
        h, w = x.shape[-2:]
        if (ph and h == 1) or (pw and w == 1):
            eh, ew = (ph if h == 1 else 0), (pw if w == 1 else 0)
            x = F.pad(x, (0, ew, 0, eh), mode="replicate")
            ph, pw = ph - eh, pw - ew
            continue
        sh, sw = min(ph, h - 1), min(pw, w - 1)
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x


def mirror_index(size, length, device: torch.device) -> Tensor:
    """Indices 0..size-1 extended to ``length`` by reflecting as often as needed (period 2*(size-1)); all 0 for
    a size of 1. Repeated reflection about the last pixel (:func:`pad_to_multiple`) gives exactly this
    sequence. ``size`` and ``length`` may be traced sizes (ONNX export) or ints."""
    i = torch.arange(length, device=device)
    period = torch.clamp(2 * (i[:1] * 0 + size - 1), min=1)  # a tensor, from the (traced) size
    j = torch.remainder(i, period)
    return torch.minimum(j, period - j).clamp(max=size - 1)


def _mirror_index(size, multiple: int, device: torch.device) -> Tensor:
    """:func:`mirror_index` up to ``size`` rounded up to a multiple."""
    return mirror_index(size, (size + multiple - 1) // multiple * multiple, device)


def _mirror_pad_traced(x: Tensor, multiple: int) -> Tensor:
    H, W = x.shape[-2:]
    x = x.index_select(-2, _mirror_index(H, multiple, x.device))
    return x.index_select(-1, _mirror_index(W, multiple, x.device))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """fc2(GELU(fc1(x))), plus ``residual`` if given (fused at inference)."""
        fused = fusable(self, x)
        if fused is not None or self.drop.p == 0:
            h = linear(x, self.fc1, fused, gelu=True)
            return linear(h, self.fc2, fused, residual=residual)
        y = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return y if residual is None else residual + y


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C): the official PatchEmbed with patch_size 1.

    A view, no copy, when ``x`` is channels_last, as every feature map of the network is.
    """
    return x.flatten(2).transpose(1, 2)


def to_image(x: Tensor, x_size: Tuple[int, int]) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W): the official PatchUnEmbed.

    A channels_last view of the tokens, no copy. Its strides are channels_last's even for B = 1, so
    that convolutions run in NHWC and hand back NHWC maps that :func:`to_tokens` views again; a
    channels-first conv would copy the map on the way in and the tokens on the way out.
    """
    return x.view(x.shape[0], x_size[0], x_size[1], x.shape[2]).permute(0, 3, 1, 2)
