"""Swin2SR (Conde et al., ECCV-W 2022): SwinIR on Swin Transformer V2 blocks.

What differs from SwinIR, as in the official ``network_swin2sr.py`` (mv-lab/swin2sr), whose parameter
names are kept so that official state dicts load with ``strict=True``:

- res-post-norm blocks: ``x = x + drop_path(norm1(attn(x)))``, then ``x = x + drop_path(norm2(mlp(x)))``;
- scaled cosine attention: ``normalize(q) @ normalize(k)^T * exp(min(logit_scale, log 100))``;
- a continuous relative position bias: log-spaced offsets through ``cpb_mlp``, as ``16 * sigmoid``;
- ``q_bias`` and ``v_bias`` instead of a qkv bias (k has none);
- a 1x1 ``patch_embed.proj`` at the top and at the end of every residual group (see :class:`RSTB`);
- the ``pixelshuffle_aux`` head (see :meth:`SwinIR.forward`).

Everything else (windows, shifts, masks, padding, heads, the speed work) is SwinIR's.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import explicit_attention
from .layers import fusable, linear, linear_parts, relative_position_index, tracing
from .swinir import SwinIR, SwinTransformerBlock

LOGIT_SCALE_MAX = math.log(100.0)  # the official clamp: log(1 / 0.01)


def relative_coords_table(window_size: int) -> Tensor:
    """(1, 2*ws-1, 2*ws-1, 2) relative offsets in [-8, 8], log-spaced: sign(t) * log2(|t| + 1) / 3."""
    r = torch.arange(-(window_size - 1), window_size, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(r, r, indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
    table = table / max(window_size - 1, 1) * 8  # the official code divides by ws - 1 (0 for a 1-pixel window)
    if window_size == 1:
        table = table * 0
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


class CosineWindowAttention(nn.Module):
    """SwinV2 window attention: scaled cosine similarity plus a continuous relative position bias.

    The per-head scale is folded into the normalised queries, so that inference runs
    ``scaled_dot_product_attention`` with scale 1 and the bias as its additive mask, like SwinIR's.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if qk_scale is not None:
            raise ValueError("cosine attention has no qk_scale")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.register_buffer("relative_coords_table", relative_coords_table(window_size))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Both buffers are derived from window_size: take ours, so dicts without them load strictly.
        state_dict[prefix + "relative_position_index"] = self.relative_position_index
        state_dict[prefix + "relative_coords_table"] = self.relative_coords_table
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def bias_parameters(self) -> list:
        return list(self.cpb_mlp.parameters())

    def relative_position_bias(self) -> Tensor:
        """(1, num_heads, N, N): ``16 * sigmoid(cpb_mlp(coords))`` gathered for every pair of positions."""
        N = self.window_size ** 2
        with torch.autocast(self.relative_coords_table.device.type, enabled=False):  # fp32: it is computed once
            table = self.cpb_mlp(self.relative_coords_table.to(self.cpb_mlp[0].weight.dtype)).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        return (16 * torch.sigmoid(bias)).unsqueeze(0)

    def forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """x: (B_, N, C) windows; ``bias`` and ``masked`` as for SwinIR's :class:`WindowAttention`."""
        B_, N, C = x.shape
        fused = fusable(self, x)
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qk, v = linear_parts(x, self.qkv, fused, (2 * C, C), bias=qkv_bias)
        half = v.dtype
        # Cosine logits reach exp(logit_scale), up to 100: in bf16 they would be off by ~0.4, so attention
        # runs in fp32 under autocast (the linears around it stay in half precision).
        with torch.autocast(x.device.type, enabled=False):
            qk = qk.float().view(B_, N, 2, self.num_heads, C // self.num_heads)
            out = self._attend(qk, v.float().view(B_, N, self.num_heads, -1).transpose(1, 2), bias.float(), masked)
        x = out.transpose(1, 2).reshape(B_, N, C).to(half)
        if fused is not None or self.proj_drop.p == 0:
            return linear(x, self.proj, fused)
        return self.proj_drop(self.proj(x))

    def _attend(self, qk: Tensor, v: Tensor, bias: Tensor, masked) -> Tensor:
        """softmax(cos(q, k) * scale + bias) v in fp32, for qk (B_, N, 2, heads, d) and v (B_, heads, N, d);
        returns (B_, heads, N, d).

        q and k are normalised in one pass, with the per-head scale folded into q's factor: one norm and
        one multiply over them, instead of a norm and a division each and a multiply."""
        scale = torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp().float().view(1, 1, 1, -1, 1)
        factor = torch.cat([scale, torch.ones_like(scale)], dim=2) / qk.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        q, k = (qk * factor).permute(2, 0, 3, 1, 4).unbind(0)  # each (B_, heads, N, d)
        p = self.attn_drop if self.training else 0.0
        if torch.is_grad_enabled() or tracing():
            return explicit_attention(q, k, v, bias, 1.0, p)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p, scale=1.0)
        if masked is not None:
            idx, mask = masked
            sub = F.scaled_dot_product_attention(q[idx], k[idx], v[idx], attn_mask=mask.float(), dropout_p=p,
                                                 scale=1.0)
            out = out.index_copy_(0, idx, sub)
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class Swin2Block(SwinTransformerBlock):
    """(S)W-MSA -> LN -> residual -> MLP -> LN -> residual (res-post-norm)."""

    attention = CosineWindowAttention

    def stochastic_depth_forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        B, L, C = x.shape
        x = x + self.drop_path(self.norm1(self.attn(x.view(-1, self.window_size ** 2, C), bias, masked).view(B, L, C)))
        return x + self.drop_path(self.norm2(self.mlp(x)))

    def windows_forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        x = x + self.norm1(self.attn(x, bias, masked))
        return x + self.norm2(self.mlp(x))


class Swin2SR(SwinIR):
    """Swin2SR for super-resolution (classical, lightweight, real-world, compressed) and JPEG repair.

    Built like :class:`SwinIR`: from a config with ``arch="swin2sr"`` or from the official keyword
    arguments (``Swin2SR(upscale=4, in_chans=3, img_size=48, window_size=8, ..., upsampler="pixelshuffle_aux")``).
    Same input, output and padding as SwinIR; ``forward(x, aux=True)`` also returns the auxiliary image
    of the ``pixelshuffle_aux`` head.
    """

    arch = "swin2sr"
    block = Swin2Block
