"""Window multi-head self-attention with relative position bias (Swin / SwinIR)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import relative_position_index


class WindowAttention(nn.Module):
    """W-MSA over windows of ``window_size**2`` tokens.

    The relative position bias and the optional shift mask are one additive mask handed to
    ``scaled_dot_product_attention``; callers build and cache it (see ``attention_mask``).
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

    def relative_position_bias(self) -> Tensor:
        """(num_heads, N, N) bias gathered from the table."""
        N = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(N, N, -1).permute(2, 0, 1)

    def attention_mask(self, region_mask: Optional[Tensor]) -> Tensor:
        """Bias merged with the (num_windows, N, N) shift mask: (1 or num_windows, heads, N, N)."""
        bias = self.relative_position_bias().unsqueeze(0)
        return bias if region_mask is None else bias + region_mask.unsqueeze(1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B * nW, N, C); mask: (1 or nW, heads, N, N) from :meth:`attention_mask`."""
        B_, N, C = x.shape
        nW = mask.shape[0]
        qkv = self.qkv(x).view(B_ // nW, nW, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, nW, heads, N, d)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.to(q.dtype), dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale)
        x = x.transpose(2, 3).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"
