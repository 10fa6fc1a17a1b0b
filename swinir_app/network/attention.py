"""Window multi-head self-attention with relative position bias (Swin / SwinIR)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import fusable, linear, linear_parts, relative_position_index, tracing


class WindowAttention(nn.Module):
    """W-MSA over windows of ``window_size**2`` tokens.

    The relative position bias, merged with the shift mask where there is one, is the additive
    mask of ``scaled_dot_product_attention``; blocks build and cache it per feature-map size.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The index is derived from window_size: take ours, so dicts without it load strictly.
        state_dict[prefix + "relative_position_index"] = self.relative_position_index
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def bias_parameters(self) -> list:
        """The parameters the relative position bias is computed from (blocks cache it until they change)."""
        return [self.relative_position_bias_table]

    def relative_position_bias(self) -> Tensor:
        """(1, num_heads, N, N) bias gathered from the table."""
        N = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(N, N, -1).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]] = None,
                residual: Optional[Tensor] = None) -> Tensor:
        """x: (B_, N, C) windows; ``residual`` (same shape as x) is added to the output.

        With gradients (training), ``bias`` is (1 or num_windows, heads, N, N), bias and shift mask
        merged, and attention is spelled out as in the official code: CPU SDPA has no gradient for
        its mask and falls back to a math path about 3x slower, and its flash backward is slower still.

        Without gradients, ``bias`` is (1, heads, N, N) and SDPA runs over all windows with it;
        ``masked`` = (window indices, their (len, heads, N, N) bias + shift masks). The shift mask is
        zero except in the last row and column of windows, so only those few are redone with their
        own masks: no (windows, heads, N, N) tensor is ever built.
        """
        B_, N, C = x.shape
        fused = fusable(self, x)
        q, k, v = (t.view(B_, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # each (B_, heads, N, d)
                   for t in linear_parts(x, self.qkv, fused, (C, C, C)))
        p = self.attn_drop if self.training else 0.0
        if torch.is_grad_enabled() or tracing():
            out = explicit_attention(q, k, v, bias, self.scale, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p, scale=self.scale)
            if masked is not None:
                idx, mask = masked
                sub = F.scaled_dot_product_attention(q[idx], k[idx], v[idx], attn_mask=mask.to(q.dtype),
                                                     dropout_p=p, scale=self.scale)
                out = out.index_copy_(0, idx, sub)
        x = out.transpose(1, 2).reshape(B_, N, C)  # free for SDPA's output layout; a copy when explicit
        if fused is not None or self.proj_drop.p == 0:
            return linear(x, self.proj, fused, residual=residual)
        x = self.proj_drop(self.proj(x))
        return x if residual is None else residual + x

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float, dropout_p: float) -> Tensor:
    """softmax(q k^T * scale + bias) v for (B_, heads, N, d) windows; ``bias`` (nb, heads, N, N)
    repeats every nb windows. Softmax runs in q's dtype (bf16 under autocast); the official code adds
    an fp32 bias, which promotes its softmax to fp32. Gradients stay close to fp32 (test)."""
    B_, heads, N, _ = q.shape
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = (attn.view(-1, bias.shape[0], heads, N, N) + bias.to(attn.dtype)).view(B_, heads, N, N)
    attn = F.dropout(attn.softmax(-1), dropout_p, training=dropout_p > 0)
    return attn @ v
