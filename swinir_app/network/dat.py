"""DAT (Chen et al., ICCV 2023, *Dual Aggregation Transformer for Image Super-Resolution*).

SwinIR's layout (shallow conv -> residual groups -> conv -> reconstruction) with blocks that alternate:

- **DSTB** (even blocks): spatial window attention in two branches over the two halves of the channels,
  windows of ``split_size`` (h x w) and of its transpose, shifted in some blocks; relative position biases
  from a small MLP (``DynamicPosBias``). Beside it a depthwise conv of v, and the Adaptive Interaction Module
  (AIM) crossing a channel map and a spatial map between the two.
- **DCTB** (odd blocks): channel attention (XCiT: softmax over channel pairs of L2-normalised q and k,
  times a learnt temperature per head), with the same conv branch and AIM.
- Both end with the **SGFN**: fc1 -> GELU -> half of it gated by a LayerNorm + depthwise conv of the other
  half -> fc2.

Module and buffer names are those of the official ``basicsr/archs/dat_arch.py`` (zhengchen1999/DAT, as
ported by spandrel), so official state dicts load with ``strict=True``; the shift masks, relative position
indices and bias coordinates are recomputed from the config, so dicts without them (or with masks for
another ``img_size``) load too. As the official network, the spatial blocks zero-pad q, k and v to a
multiple of ``max(split_size)`` (``config.window_size``) and crop back; the network takes any H, W.

The inference path (no gradients) differs from the official code only in the order of exact operations:
the position biases and shift masks are built once per input size and cached until the weights change;
attention runs through ``scaled_dot_product_attention`` over all windows with the bias, and only the few
windows that the shift mask touches are redone with it; windows are cut and put back by one index each
(partition, shift and padding crop together); BatchNorm is folded into the convs before it; the
channel attention's output and its per-head matrices are one matmul; the linears are the fused oneDNN ones
of the SwinIR family, with the residual adds fused in. With gradients (training) the attention is spelled
out, as in the official code. While traced (ONNX export) the window orders, the crop and the shift masks are
computed in the graph from the input's size and the attention is spelled out too (:meth:`traced_plan`).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import Tensor, nn

from . import winograd
from .attention import explicit_attention
from .capabilities import FamilyNetwork
from .config import SwinIRConfig
from .layers import DropPath, WeightCache, fusable, linear, to_image, to_tokens, tracing, weights_key
from .swinir import UpsampleOneStep, conv_block, pixelshuffle_head

# ---------------------------------------------------------------------------------------------
# Index and mask helpers (per size, cached by the blocks)


def rpe_biases(h: int, w: int) -> Tensor:
    """((2h-1)(2w-1), 2) float relative coordinates, the input of DynamicPosBias (official ``rpe_biases``)."""
    bh, bw = torch.arange(1 - h, h), torch.arange(1 - w, w)
    return torch.stack(torch.meshgrid(bh, bw, indexing="ij")).flatten(1).transpose(0, 1).contiguous().float()


def relative_position_index(h: int, w: int) -> Tensor:
    """(h*w, h*w) index into the ``rpe_biases`` rows for every pair of positions in an h x w window."""
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def shift_mask(H: int, W: int, wh: int, ww: int, sh: int, sw: int) -> Tensor:
    """(windows, wh*ww, wh*ww) additive mask, -100 between pixels the cyclic shift made neighbours: the
    official ``calculate_mask`` for one branch (windows wh x ww, shift sh, sw), same slices."""
    img = torch.zeros(1, H, W, 1)
    cnt = 0
    for h in (slice(0, -wh), slice(-wh, -sh), slice(-sh, None)):
        for w in (slice(0, -ww), slice(-ww, -sw), slice(-sw, None)):
            img[:, h, w, :] = cnt
            cnt += 1
    win = img.view(1, H // wh, wh, W // ww, ww, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww)
    mask = win.unsqueeze(1) - win.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def window_order(Hp: int, Wp: int, wh: int, ww: int, sh: int, sw: int) -> Tensor:
    """Padded-raster index of the token at each position of the (shifted) window order."""
    idx = torch.arange(Hp * Wp).view(Hp, Wp)
    if sh or sw:
        idx = torch.roll(idx, shifts=(-sh, -sw), dims=(0, 1))
    return idx.view(Hp // wh, wh, Wp // ww, ww).permute(0, 2, 1, 3).flatten()


def is_shifted(rg_idx: int, b_idx: int) -> bool:
    """The official rule for which spatial blocks shift their windows (and store masks)."""
    return (rg_idx % 2 == 0 and b_idx > 0 and (b_idx - 2) % 4 == 0) or (rg_idx % 2 != 0 and b_idx % 4 == 0)


_FOLDED = WeightCache()


def conv_bn(x: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """``bn(conv(x))``; without gradients and with ``bn`` in eval mode, one conv with BN folded in (cached)."""
    if bn.training or torch.is_grad_enabled():
        return bn(conv(x))

    def build():
        with torch.no_grad():
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            return (conv.weight * s.view(-1, 1, 1, 1)).detach(), ((bias - bn.running_mean) * s + bn.bias).detach()
    params = [t for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
              if t is not None]
    w, b = _FOLDED.get(conv, tuple(params), build, x.dtype)
    return F.conv2d(x, w.to(x.dtype), b.to(x.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)


def interaction(seq: nn.Sequential, x: Tensor) -> Tensor:
    """The AIM's channel or spatial interaction (conv, BN, GELU, conv; an average pool first for channels)."""
    if isinstance(seq[0], nn.AdaptiveAvgPool2d):
        x = seq[0](x)
        seq = seq[1:]
    return seq[3](seq[2](conv_bn(x, seq[0], seq[1])))


# ---------------------------------------------------------------------------------------------
# Modules, by their official names


class DynamicPosBias(nn.Module):
    """The relative position bias as an MLP of the relative coordinates (CrossFormer), without residuals."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.pos_dim = num_heads, dim // 4
        self.pos_proj = nn.Linear(2, self.pos_dim)
        self.pos1 = nn.Sequential(nn.LayerNorm(self.pos_dim), nn.ReLU(), nn.Linear(self.pos_dim, self.pos_dim))
        self.pos2 = nn.Sequential(nn.LayerNorm(self.pos_dim), nn.ReLU(), nn.Linear(self.pos_dim, self.pos_dim))
        self.pos3 = nn.Sequential(nn.LayerNorm(self.pos_dim), nn.ReLU(), nn.Linear(self.pos_dim, num_heads))

    def forward(self, biases: Tensor) -> Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(biases))))


class SpatialBranch(nn.Module):
    """One of the two window branches (official ``Spatial_Attention``): its windows and position bias.

    The attention itself runs in :class:`AdaptiveSpatialAttention`, over both branches' windows.
    """

    def __init__(self, dim: int, idx: int, split_size: Tuple[int, int], num_heads: int, qk_scale=None):
        super().__init__()
        self.dim, self.num_heads, self.idx = dim, num_heads, idx
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.H_sp, self.W_sp = (split_size[0], split_size[1]) if idx == 0 else (split_size[1], split_size[0])
        self.pos = DynamicPosBias(dim // 4, num_heads)
        self.register_buffer("rpe_biases", rpe_biases(self.H_sp, self.W_sp))
        self.register_buffer("relative_position_index", relative_position_index(self.H_sp, self.W_sp))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Derived from split_size: take ours, so dicts without them load strictly.
        for name in ("rpe_biases", "relative_position_index"):
            state_dict[prefix + name] = getattr(self, name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def bias(self) -> Tensor:
        """(heads, N, N) relative position bias of a window."""
        N = self.H_sp * self.W_sp
        pos = self.pos(self.rpe_biases)
        return pos[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)


class AdaptiveSpatialAttention(nn.Module):
    """DSTB's attention (official ``Adaptive_Spatial_Attention``): two window branches + conv branch + AIM."""

    def __init__(self, dim: int, num_heads: int, reso: int, split_size: Tuple[int, int], qkv_bias: bool,
                 qk_scale, drop: float, attn_drop: float, rg_idx: int, b_idx: int):
        super().__init__()
        self.dim, self.num_heads, self.split_size = dim, num_heads, tuple(split_size)
        self.shift_size = (split_size[0] // 2, split_size[1] // 2)
        self.shifted = is_shifted(rg_idx, b_idx)
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)
        self.attns = nn.ModuleList([SpatialBranch(dim // 2, i, self.split_size, num_heads // 2, qk_scale)
                                    for i in range(2)])
        masks: List[Optional[Tensor]] = [None, None]
        if self.shifted:
            masks = [self._mask(reso, reso, i) for i in range(2)]
        self.register_buffer("attn_mask_0", masks[0])
        self.register_buffer("attn_mask_1", masks[1])
        self.dwconv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim), nn.GELU())
        self.channel_interaction = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, 1),
                                                 nn.BatchNorm2d(dim // 8), nn.GELU(), nn.Conv2d(dim // 8, dim, 1))
        self.spatial_interaction = nn.Sequential(nn.Conv2d(dim, dim // 16, 1), nn.BatchNorm2d(dim // 16), nn.GELU(),
                                                 nn.Conv2d(dim // 16, 1, 1))
        self._plan: Optional[tuple] = None

    def _geometry(self, i: int) -> Tuple[int, int, int, int]:
        """(window h, window w, shift h, shift w) of branch i (branch 1 has them transposed)."""
        (s0, s1), (h0, h1) = self.split_size, self.shift_size
        return (s0, s1, h0, h1) if i == 0 else (s1, s0, h1, h0)

    def _mask(self, H: int, W: int, i: int) -> Tensor:
        return shift_mask(H, W, *self._geometry(i))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The masks are derived from img_size: take ours, so dicts without them (or another img_size) load.
        for name in ("attn_mask_0", "attn_mask_1"):
            if getattr(self, name) is not None:
                state_dict[prefix + name] = getattr(self, name)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def plan(self, H: int, W: int, B: int, like: Tensor, explicit: bool) -> list:
        """Per branch: (window order, its inverse cropped to H x W, bias, masked windows or the full mask).

        Cached for the last size while the position-bias weights stay the same (not with gradients).
        """
        params = [p for a in self.attns for p in a.pos.parameters()]
        grad = explicit and any(p.requires_grad for p in params)
        key = (H, W, B, like.device, like.dtype, explicit, weights_key(*params))
        if not grad and key[-1] is not None and self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        m = max(self.split_size)
        Hp, Wp = -(-H // m) * m, -(-W // m) * m
        crop = (torch.arange(H)[:, None] * Wp + torch.arange(W)).flatten()
        out = []
        with torch.inference_mode(False), torch.set_grad_enabled(grad):
            for i, attn in enumerate(self.attns):
                wh, ww, sh, sw = self._geometry(i)
                if not self.shifted:
                    sh = sw = 0
                order = window_order(Hp, Wp, wh, ww, sh, sw)
                inv = torch.empty_like(order)
                inv[order] = torch.arange(order.numel())
                bias = attn.bias().to(like.dtype).to(like.device).unsqueeze(0)  # (1, heads, N, N)
                masked = None
                if self.shifted:
                    mask = self._mask(Hp, Wp, i).to(like.device, like.dtype)
                    if explicit:
                        bias = bias + mask.unsqueeze(1)
                    else:
                        idx = mask.ne(0).flatten(1).any(1).nonzero().flatten()
                        nW = mask.shape[0]
                        sub = (bias + mask[idx].unsqueeze(1)).repeat(B, 1, 1, 1)
                        idx = (torch.arange(B, device=idx.device)[:, None] * nW + idx).flatten()
                        masked = (idx.to(like.device), sub) if len(idx) else None
                out.append((order.to(like.device), inv[crop].to(like.device), bias, masked))
        self._plan = (key, out) if not grad and key[-1] is not None else None
        return out

    def traced_plan(self, H, W, like: Tensor) -> list:
        """:meth:`plan` for a graph (ONNX export): window orders and shift masks computed in the graph from the
        input's (symbolic) size, bias and mask merged for every window; nothing of the example's size is kept."""
        m = max(self.split_size)
        Hp, Wp = (H + m - 1) // m * m, (W + m - 1) // m * m
        dev = like.device
        crop = (torch.arange(H, device=dev)[:, None] * Wp + torch.arange(W, device=dev)[None, :]).flatten()
        out = []
        for i, attn in enumerate(self.attns):
            wh, ww, sh, sw = self._geometry(i)
            idx = torch.arange(Hp * Wp, device=dev).view(Hp, Wp)
            if self.shifted:
                idx = torch.roll(idx, shifts=(-sh, -sw), dims=(0, 1))
            order = idx.view(Hp // wh, wh, Wp // ww, ww).permute(0, 2, 1, 3).flatten()
            # The inverse permutation by a scatter (a plain graph operator), cropped to H x W.
            inv = torch.zeros_like(order).scatter_(0, order, torch.arange(Hp * Wp, device=dev))
            with torch.autocast(dev.type, enabled=False):  # fp32 (an fp16 graph's LayerNorm takes one type)
                bias = attn.bias().to(like.dtype).unsqueeze(0)  # (1, heads, N, N)
            if self.shifted:  # the official calculate_mask's three bands per axis, labelled, compared per window
                r, c = torch.arange(Hp, device=dev), torch.arange(Wp, device=dev)
                rows = (r >= Hp - wh).long() + (r >= Hp - sh).long()
                cols = (c >= Wp - ww).long() + (c >= Wp - sw).long()
                label = (rows[:, None] * 3 + cols[None, :]).view(Hp // wh, wh, Wp // ww, ww)
                label = label.permute(0, 2, 1, 3).reshape(-1, wh * ww)
                mask = (label.unsqueeze(1) != label.unsqueeze(2)).to(like.dtype) * -100.0
                bias = bias + mask.unsqueeze(1)  # (windows, heads, N, N)
            out.append((order, inv[crop], bias, None))
        return out

    def forward(self, x: Tensor, H: int, W: int, residual: Optional[Tensor] = None) -> Tensor:
        """x: (B, H*W, C) normalised tokens in raster order; ``residual`` is added to the output."""
        B, L, C = x.shape
        fused = fusable(self, x)
        traced = tracing()
        explicit = torch.is_grad_enabled() or traced
        qkv = linear(x, self.qkv, fused)
        v_img = to_image(qkv[..., 2 * C:].contiguous(), (H, W))  # channels_last, no further copy
        m = max(self.split_size)
        Hp, Wp = (H + m - 1) // m * m, (W + m - 1) // m * m
        padded = qkv
        if traced or (Hp, Wp) != (H, W):  # zeros after the linear, as the official code pads q, k and v
            padded = F.pad(qkv.view(B, H, W, 3 * C), (0, 0, 0, Wp - W, 0, Hp - H)).reshape(B, Hp * Wp, 3 * C)
        parts = padded.view(B, Hp * Wp, 3, 2, C // 2)
        p = self.attn_drop if self.training else 0.0
        halves = []
        plan = self.traced_plan(H, W, x) if traced else self.plan(H, W, B, x, explicit)
        for i, (branch, (order, inv, bias, masked)) in enumerate(zip(self.attns, plan)):
            N, heads = branch.H_sp * branch.W_sp, branch.num_heads
            t = parts[:, :, :, i].index_select(1, order).view(-1, N, 3, heads, C // 2 // heads)
            q, k, v = (t.select(2, j).transpose(1, 2) for j in range(3))  # (B * windows, heads, N, d)
            if explicit:
                out = explicit_attention(q, k, v, bias, branch.scale, p)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=branch.scale)
                if masked is not None:
                    idx, sub = masked
                    out = out.index_copy_(0, idx, F.scaled_dot_product_attention(q[idx], k[idx], v[idx], attn_mask=sub,
                                                                                 scale=branch.scale))
            out = out.transpose(1, 2).reshape(B, Hp * Wp, C // 2)
            halves.append(out.index_select(1, inv))
        att = torch.cat(halves, -1)  # (B, L, C)

        conv_x = self.dwconv[2](conv_bn(v_img, self.dwconv[0], self.dwconv[1]))
        channel_map = interaction(self.channel_interaction, conv_x).view(B, 1, C)
        spatial_map = interaction(self.spatial_interaction, to_image(att, (H, W)))
        if explicit:
            att = att * torch.sigmoid(channel_map)
            y = att + to_tokens(torch.sigmoid(spatial_map) * conv_x)
        else:
            att.mul_(torch.sigmoid_(channel_map))
            y = att.add_(to_tokens(conv_x.mul_(torch.sigmoid_(spatial_map))))
        if fused is not None or self.proj_drop.p == 0:
            return linear(y, self.proj, fused, residual=residual)
        y = self.proj_drop(self.proj(y))
        return y if residual is None else residual + y


class AdaptiveChannelAttention(nn.Module):
    """DCTB's attention (official ``Adaptive_Channel_Attention``): channel attention + conv branch + AIM."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dwconv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim), nn.GELU())
        self.channel_interaction = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, 1),
                                                 nn.BatchNorm2d(dim // 8), nn.GELU(), nn.Conv2d(dim // 8, dim, 1))
        self.spatial_interaction = nn.Sequential(nn.Conv2d(dim, dim // 16, 1), nn.BatchNorm2d(dim // 16), nn.GELU(),
                                                 nn.Conv2d(dim // 16, 1, 1))

    def forward(self, x: Tensor, H: int, W: int, residual: Optional[Tensor] = None) -> Tensor:
        B, N, C = x.shape
        h, d = self.num_heads, C // self.num_heads
        fused = fusable(self, x)
        explicit = torch.is_grad_enabled() or tracing()  # the block-diagonal write below has no ONNX form
        qkv = linear(x, self.qkv, fused)
        q, k, v = (qkv[..., j * C:(j + 1) * C].view(B, N, h, d) for j in range(3))
        if explicit:  # as the official code
            qt, kt = (F.normalize(t.permute(0, 2, 3, 1), dim=-1) for t in (q, k))  # (B, h, d, N)
            attn = self.attn_drop(((qt @ kt.transpose(-2, -1)) * self.temperature).softmax(-1))
            att = (attn @ v.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).reshape(B, N, C)
        else:
            # Normalising after the product: q^T k / (|q| |k|), the same up to rounding, without copies of q, k.
            g = q.permute(0, 2, 3, 1) @ k.transpose(1, 2)  # (B, h, d, d)
            nq, nk = (t.norm(dim=1).clamp_min(1e-12) for t in (q, k))  # (B, h, d)
            attn = (g / (nq.unsqueeze(-1) * nk.unsqueeze(-2)) * self.temperature).softmax(-1)
            # out[n, head e] = sum_f attn[e, f] v[n, head f]: one matmul with the block-diagonal of attn^T
            m = attn.new_zeros(B, h, d, h, d)
            heads = torch.arange(h, device=x.device)
            m[:, heads, :, heads, :] = attn.transpose(-1, -2).transpose(0, 1)
            att = torch.bmm(qkv[..., 2 * C:], m.view(B, C, C))  # (B, N, C)
        v_img = to_image(v.reshape(B, N, C).contiguous(), (H, W))
        conv_x = self.dwconv[2](conv_bn(v_img, self.dwconv[0], self.dwconv[1]))
        channel_map = interaction(self.channel_interaction, to_image(att, (H, W))).view(B, 1, C, 1, 1)
        spatial_map = to_tokens(interaction(self.spatial_interaction, conv_x))  # (B, N, 1)
        if explicit:
            y = att * torch.sigmoid(spatial_map) + to_tokens(conv_x * torch.sigmoid(channel_map.view(B, C, 1, 1)))
        else:
            y = att.mul_(torch.sigmoid_(spatial_map)).add_(
                to_tokens(conv_x.mul_(torch.sigmoid_(channel_map.view(B, C, 1, 1)))))
        if fused is not None or self.proj_drop.p == 0:
            return linear(y, self.proj, fused, residual=residual)
        y = self.proj_drop(self.proj(y))
        return y if residual is None else residual + y


class SpatialGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        """x1 * dwconv(LN(x2)) for the halves x1, x2 of x (B, N, 2C)."""
        x1, x2 = x.chunk(2, dim=-1)
        if tracing() and torch.is_autocast_enabled(x.device.type):
            x2 = x2.float()  # what autocast does to a LayerNorm's input, spelled out for the graph
        x2 = to_tokens(self.conv(to_image(self.norm(x2).contiguous(), (H, W))))
        return x1 * x2


class SGFN(nn.Module):
    """Spatial-gate feed-forward network: fc1 -> GELU -> spatial gate -> fc2."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.sg = SpatialGate(hidden_features // 2)
        self.fc2 = nn.Linear(hidden_features // 2, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor, H: int, W: int, residual: Optional[Tensor] = None) -> Tensor:
        fused = fusable(self, x)
        if fused is not None or self.drop.p == 0 or not self.training:
            h = linear(x, self.fc1, fused, gelu=True)
            return linear(self.sg(h, H, W), self.fc2, fused, residual=residual)
        y = self.drop(self.fc2(self.drop(self.sg(self.drop(self.act(self.fc1(x))), H, W))))
        return y if residual is None else residual + y


class DATB(nn.Module):
    """Dual aggregation Transformer block: LN -> spatial (even b_idx) or channel attention -> LN -> SGFN."""

    def __init__(self, c: SwinIRConfig, dim: int, num_heads: int, drop_path: float, rg_idx: int, b_idx: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if b_idx % 2 == 0:
            self.attn = AdaptiveSpatialAttention(dim, num_heads, c.img_size, c.split_size, c.qkv_bias, c.qk_scale,
                                                 c.drop_rate, c.attn_drop_rate, rg_idx, b_idx)
        else:
            self.attn = AdaptiveChannelAttention(dim, num_heads, c.qkv_bias, c.attn_drop_rate, c.drop_rate)
        self.drop_path = DropPath(drop_path)
        self.ffn = SGFN(dim, int(dim * c.expansion_factor))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        H, W = x_size
        if self.training and self.drop_path.drop_prob > 0:
            x = x + self.drop_path(self.attn(self.norm1(x), H, W))
            return x + self.drop_path(self.ffn(self.norm2(x), H, W))
        x = self.attn(self.norm1(x), H, W, residual=x)
        return self.ffn(self.norm2(x), H, W, residual=x)


class ResidualGroup(nn.Module):
    """DATBs -> conv -> long skip."""

    def __init__(self, c: SwinIRConfig, rg_idx: int, drop_paths: List[float]):
        super().__init__()
        self.use_chk = c.use_checkpoint
        self.blocks = nn.ModuleList([DATB(c, c.embed_dim, c.num_heads[rg_idx], drop_paths[i], rg_idx, i)
                                     for i in range(c.depths[rg_idx])])
        self.conv = conv_block(c.embed_dim, c.resi_connection)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        res = x
        for blk in self.blocks:
            if self.use_chk and torch.is_grad_enabled():
                x = checkpoint.checkpoint(blk, x, x_size, use_reentrant=False)
            else:
                x = blk(x, x_size)
        return to_tokens(winograd.conv(to_image(x, x_size), self.conv)) + res


class _ToTokens(nn.Module):
    """The official ``before_RG.0`` (einops' ``b c h w -> b (h w) c``)."""

    def forward(self, x: Tensor) -> Tensor:
        return to_tokens(x)


class DAT(FamilyNetwork):
    """Dual Aggregation Transformer for super-resolution.

    Build it from a :class:`SwinIRConfig` with ``arch="dat"`` (see the ``dat-*`` presets) or from the official
    keyword arguments (``depth`` for ``depths`` is accepted)::

        DAT(upscale=4, img_size=64, split_size=[8, 16], depth=[6] * 6, embed_dim=180, num_heads=[6] * 6,
            expansion_factor=2, upsampler="pixelshuffle")

    Input: (B, in_chans, H, W) in [0, 1], any H, W >= 1. Output: (B, out_chans, H*upscale, W*upscale).
    """

    arch = "dat"

    def __init__(self, config: Optional[SwinIRConfig] = None, **kwargs):
        super().__init__()
        with torch.inference_mode(False):  # normal tensors: the caches key on version counters
            self._build(config, kwargs)

    def _build(self, config: Optional[SwinIRConfig], kwargs: dict) -> None:
        if kwargs.pop("act_layer", nn.GELU) is not nn.GELU:
            raise ValueError("only nn.GELU is supported as act_layer")
        c = self._setup(config, kwargs)

        self.conv_first = nn.Conv2d(c.in_chans, c.embed_dim, 3, 1, 1)
        self.before_RG = nn.Sequential(_ToTokens(), nn.LayerNorm(c.embed_dim))
        dpr = torch.linspace(0, c.drop_path_rate, sum(c.depths), device="cpu").tolist()
        self.layers = nn.ModuleList([ResidualGroup(c, i, dpr[sum(c.depths[:i]):sum(c.depths[:i + 1])])
                                     for i in range(len(c.depths))])
        self.norm = nn.LayerNorm(c.embed_dim)
        self.conv_after_body = conv_block(c.embed_dim, c.resi_connection)
        if c.upsampler == "pixelshuffle":
            pixelshuffle_head(self, c)
        else:  # pixelshuffledirect
            self.upsample = UpsampleOneStep(c.upscale, c.embed_dim, c.out_chans)
        self.apply(self._init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.before_RG(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return to_image(self.norm(x), x_size)

    def forward(self, x: Tensor) -> Tensor:
        """Restore a batch of images: (B, in_chans, H, W) float in [0, 1], any H, W (the spatial blocks pad
        their windows inside, as the official network) -> (B, out_chans, H * upscale, W * upscale)."""
        dtype = self.conv_first.weight.dtype
        x = ((x.to(dtype) - self.mean.to(dtype)) * self.img_range).contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, enabled=False):
            feat = self.conv_first(x)
        body = self.forward_features(feat)
        with torch.autocast(x.device.type, enabled=False):
            feat = winograd.conv(body.to(dtype), self.conv_after_body) + feat
            if self.upsampler == "pixelshuffle":
                conv = winograd.conv
                x = self.conv_last(conv(conv(feat, self.conv_before_upsample), self.upsample))
            else:
                x = self.upsample(feat)
        return (x / self.img_range + self.mean.to(x.dtype)).contiguous()


def dat_derived_buffers(config: SwinIRConfig) -> dict:
    """The state-dict entries of a DAT computed from its config alone: the position coordinates and indices of
    every spatial branch and the shift masks of the shifted blocks (for ``img_size``)."""
    (s0, s1), (h0, h1) = config.split_size, (config.split_size[0] // 2, config.split_size[1] // 2)
    geometry = ((s0, s1, h0, h1), (s1, s0, h1, h0))
    coords = [rpe_biases(g[0], g[1]) for g in geometry]
    index = [relative_position_index(g[0], g[1]) for g in geometry]
    masks = None
    out = {}
    for i, depth in enumerate(config.depths):
        for j in range(0, depth, 2):
            prefix = f"layers.{i}.blocks.{j}.attn."
            for b in range(2):
                out[f"{prefix}attns.{b}.rpe_biases"] = coords[b]
                out[f"{prefix}attns.{b}.relative_position_index"] = index[b]
            if is_shifted(i, j):
                if masks is None:
                    masks = [shift_mask(config.img_size, config.img_size, *g) for g in geometry]
                out[prefix + "attn_mask_0"], out[prefix + "attn_mask_1"] = masks
    return out

