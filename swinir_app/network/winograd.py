"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray, CVPR 2016), for CPU inference.

Each 4x4 output tile costs 36 channel matmuls instead of 144 multiply-adds per channel pair: 4x fewer
FLOPs for SwinIR's 180 -> 180 convolutions, whose direct oneDNN kernels already run at the CPU's matmul
ceiling. The transforms are small matmuls over a few tile rows at a time, so that they stay in cache.

The transform matrices come from the interpolation points by the Toom-Cook construction. The points
below were chosen by measuring against float64 (after Barabasz et al., "Error analysis and improving
the accuracy of Winograd convolution for DNNs", ACM TOMS 2020): their rounding error is 2-9x that of a
direct fp32 conv, about 1e-5 of the output's scale, and 4x less than with the usual 0, +-1, +-2. That
is far below what an 8- or 16-bit image can show, and within the 1e-4 the network is tested to.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import WeightCache, cpu_inference

POINTS = (0.0, 2 / 3, 3 / 2, -3 / 4, -3 / 2)  # and infinity


def transforms(points=POINTS, m: int = 4, r: int = 3):
    """(A^T (m, n), G (n, r), B^T (n, n)) of F(m, r) for n - 1 = m + r - 2 finite points, in float64:
    for 1-D tiles d (n) and filters g (r), ``A^T ((G g) * (B^T d))`` is the correlation of d with g."""
    a = torch.tensor(points, dtype=torch.float64)
    n = m + r - 1
    at, g = torch.zeros(m, n, dtype=torch.float64), torch.zeros(n, r, dtype=torch.float64)
    for j in range(n - 1):
        at[:, j] = a[j] ** torch.arange(m)
        g[j] = a[j] ** torch.arange(r) / torch.prod(torch.stack([a[j] - a[i] for i in range(n - 1) if i != j]))
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    # B^T solves A^T diag(G e_k) B^T = the correlation by the k-th unit filter, for every k.
    lhs = torch.cat([at @ torch.diag(g[:, k]) for k in range(r)])
    rhs = torch.cat([torch.eye(n, dtype=torch.float64)[k:k + m] for k in range(r)])
    bt = torch.linalg.lstsq(lhs, rhs).solution
    assert torch.allclose(lhs @ bt, rhs, atol=1e-9), "the points must be distinct"
    return at, g, bt


AT, G, BT = transforms()

TILE_ROWS_TOKENS = 4096  # output pixels per step of the transforms: their ~3 MB of intermediates stay in L2
# Both sides at least this wide. Measured on SwinIR-M x4 at 128x128 (direct / Winograd, ms, AVX2 | AVX-512):
# 180 -> 180: 58 / 32 | 33 / 19; 64 -> 256 at 256x256: 134 / 88 | 76 / 70; 180 -> 64: 21 / 14 | 11 / 10;
# 64 -> 256 at 128x128: 29 / 27 | 19 / 21. Narrower convs (60 channels, 3) gain nothing.
MIN_CHANNELS = 64


def applies(layer: nn.Conv2d, x: Tensor) -> bool:
    """layer is a 3x3, stride-1, padding-1, ungrouped conv with >= MIN_CHANNELS in and out, and x an fp32
    CPU tensor in eager inference (no gradients: the transforms are not differentiated; not while
    exporting a graph: it would hold the tile loop unrolled for one size)."""
    return (layer.kernel_size == (3, 3) and layer.stride == (1, 1) and layer.padding == (1, 1)
            and layer.dilation == (1, 1) and layer.groups == 1 and layer.padding_mode == "zeros"
            and min(layer.in_channels, layer.out_channels) >= MIN_CHANNELS
            and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and cpu_inference(x) and not torch.is_autocast_enabled("cpu"))


def filter_transform(weight: Tensor) -> Tensor:
    """(K, C, 3, 3) weights -> (36, C, K): G w G^T per channel pair, computed in float64."""
    w = weight.detach().double()
    u = torch.einsum("ij,kcjl,ml->imck", G.to(w.device), w, G.to(w.device))
    return u.reshape(36, w.shape[1], w.shape[0]).float().contiguous()


def _filters(layer: nn.Conv2d) -> Tensor:
    """The transformed weight, cached until the weight changes."""
    return _FILTERS.get(layer, (layer.weight,), lambda: filter_transform(layer.weight))


_FILTERS = WeightCache()


def conv(x: Tensor, module: nn.Module) -> Tensor:
    """``module(x)``, each conv it holds (itself, or the layers of an ``nn.Sequential``) by :func:`conv3x3`."""
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = conv(x, layer)
        return x
    return conv3x3(x, module) if isinstance(module, nn.Conv2d) else module(x)


def conv3x3(x: Tensor, layer: nn.Conv2d) -> Tensor:
    """``layer(x)`` for x (B, C, H, W), by F(4x4, 3x3) when :func:`applies`, else by the layer itself.

    Returns (B, K, H, W) float32 in channels_last memory (a view of an NHWC buffer), like oneDNN's conv
    on a channels_last input.
    """
    if not applies(layer, x):
        return layer(x)
    B, C, H, W = x.shape
    K = layer.out_channels
    th, tw = -(-H // 4), -(-W // 4)
    u = _filters(layer)
    bt, at = BT.float(), AT.float()
    # NHWC, zero-padded by 1 (the conv's padding) and up to whole tiles.
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1 + 4 * tw - W, 1, 1 + 4 * th - H)).contiguous()
    sb, sh, sw, _ = xp.stride()
    out = torch.empty(B, 4 * th, 4 * tw, K)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros(K)
    rows = max(1, TILE_ROWS_TOKENS // (16 * tw * B))
    for r in range(0, th, rows):
        n = min(rows, th - r)
        # (6, 6, B, n, tw, C): the overlapping 6x6 input tiles, gathered once into a contiguous buffer
        d = xp.as_strided((6, 6, B, n, tw, C), (sh, sw, sb, 4 * sh, 4 * sw, 1), 4 * r * sh).contiguous()
        v = torch.matmul(bt, torch.matmul(bt, d.view(6, -1)).view(6, 6, -1))  # B^T d B
        m = torch.bmm(v.view(36, -1, C), u)  # (36, tiles, K)
        y = torch.matmul(at, torch.matmul(at, m.view(6, -1)).view(4, 6, -1))  # A^T m A: (4, 4, tiles * K)
        y = y.view(4, 4, B, n, tw, K).permute(2, 3, 0, 4, 1, 5)  # (B, n, 4, tw, 4, K)
        torch.add(y, bias, out=out[:, 4 * r:4 * (r + n)].view(B, n, 4, tw, 4, K))
    return out[:, :H, :W].permute(0, 3, 1, 2)
