"""HAT (Chen et al., CVPR 2023, *Activating More Pixels in Image Super-Resolution Transformer*).

SwinIR's body with two additions, as in the official ``hat/archs/hat_arch.py`` (XPixelGroup/HAT), whose
parameter names are kept so that official state dicts load with ``strict=True``:

- **HAB**: window self-attention (shifted every second block, as Swin) plus a parallel channel-attention
  block, ``x = x + attn(norm1(x)) + conv_scale * CAB(norm1(x))``, then the MLP. CAB is conv -> GELU ->
  conv -> channel attention (squeeze and excite).
- **OCAB** at the end of every residual group (RHAG): queries from the windows, keys and values from
  overlapping windows of ``window_size * (1 + overlap_ratio)`` (24 for 16 and 0.5) cut with ``unfold``.
- The relative position indices are top-level buffers (``relative_position_index_SA`` and ``_OCA``),
  recomputed from the config, so dicts without them load too. The official network does not pad; ours
  reflect-pads to a window multiple, as the official test wrapper does, and crops back.

Windows, shift masks, the attention bias cache and the heads are SwinIR's.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import Tensor, nn

from .attention import WindowAttention
from .config import SwinIRConfig
from .layers import (Mlp, gather_tokens, relative_position_index, reorder_index, to_image, to_tokens, tracing,
                     WeightCache, window_partition)
from .swinir import SwinIR, SwinTransformerBlock, conv_block


def overlap_window_size(window_size: int, overlap_ratio: float) -> int:
    """The side of OCAB's key/value windows: ``int(window_size * overlap_ratio) + window_size``."""
    return int(window_size * overlap_ratio) + window_size


def relative_position_index_oca(window_size: int, overlap_ratio: float) -> Tensor:
    """(ws*ws, ows*ows) index into OCAB's ((ws + ows - 1)**2, heads) bias table."""
    ows = overlap_window_size(window_size, overlap_ratio)
    inner = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(1)
    outer = torch.stack(torch.meshgrid(torch.arange(ows), torch.arange(ows), indexing="ij")).flatten(1)
    rel = (outer[:, None, :] - inner[:, :, None]).permute(1, 2, 0)  # ws*ws, ows*ows, 2
    rel = rel + (window_size - ows + 1)
    return rel[:, :, 0] * (window_size + ows - 1) + rel[:, :, 1]


class ChannelAttention(nn.Module):
    """Squeeze and excitation: ``x * sigmoid(conv(relu(conv(mean(x)))))``."""

    def __init__(self, num_feat: int, squeeze_factor: int):
        super().__init__()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
                                       nn.ReLU(inplace=True), nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
                                       nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel attention block: conv -> GELU -> conv -> channel attention."""

    def __init__(self, num_feat: int, compress_ratio: int, squeeze_factor: int):
        super().__init__()
        self.cab = nn.Sequential(nn.Conv2d(num_feat, num_feat // compress_ratio, 3, 1, 1), nn.GELU(),
                                 nn.Conv2d(num_feat // compress_ratio, num_feat, 3, 1, 1),
                                 ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class HATWindowAttention(WindowAttention):
    """SwinIR's window attention; HAT keeps the position index at the top of the network, not here."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._non_persistent_buffers_set.add("relative_position_index")

    def _load_from_state_dict(self, *args, **kwargs):
        nn.Module._load_from_state_dict(self, *args, **kwargs)


class HAB(SwinTransformerBlock):
    """Hybrid attention block: (S)W-MSA and channel attention side by side, then the MLP.

    Works on tokens in raster order (the channel attention convolves the image): the windows are
    gathered and scattered back with one index each.
    """

    attention = HATWindowAttention

    def __init__(self, dim: int, input_resolution: Tuple[int, int], num_heads: int, window_size: int,
                 shift_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale, drop: float, attn_drop: float,
                 drop_path: float, compress_ratio: int, squeeze_factor: int, conv_scale: float):
        super().__init__(dim, input_resolution, num_heads, window_size, shift_size, mlp_ratio, qkv_bias, qk_scale,
                         drop, attn_drop, drop_path)
        self.register_buffer("attn_mask", None)  # HAT computes its masks per input size; none is stored
        self.conv_scale = conv_scale
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        """x: (B, H*W, C) in raster order, in and out."""
        H, W = x_size
        B, L, C = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x)
        conv_x = to_tokens(self.conv_block(to_image(y, x_size)))
        bias, masked = self.attention_masks(H, W, B, x)
        windows = gather_tokens(y, reorder_index(H, W, ws, None, shift, x.device)).view(-1, ws * ws, C)
        a = self.attn(windows, bias, masked).view(B, L, C)
        a = gather_tokens(a, reorder_index(H, W, ws, shift, None, x.device))
        x = x + self.drop_path(a) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


_BIASES = WeightCache()  # OCAB's gathered bias, per dtype


class OCAB(nn.Module):
    """Overlapping cross-attention: window queries against keys and values of larger, overlapping windows."""

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int, qkv_bias: bool,
                 qk_scale, mlp_ratio: float):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.overlap_win_size = ows = overlap_window_size(window_size, overlap_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((window_size + ows - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index_oca(window_size, overlap_ratio),
                             persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def relative_position_bias(self) -> Tensor:
        """(1, heads, ws*ws, ows*ows) bias gathered from the table."""
        n_q, n_kv = self.window_size ** 2, self.overlap_win_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n_q, n_kv, -1).permute(2, 0, 1).unsqueeze(0)

    def inference_bias(self, dtype: torch.dtype) -> Tensor:
        """:meth:`relative_position_bias` in ``dtype``, gathered once while the table does not change
        (it depends on no input size), as a normal tensor even under inference_mode."""
        def build():
            with torch.inference_mode(False), torch.no_grad():
                return self.relative_position_bias().to(dtype).contiguous()
        return _BIASES.get(self, (self.relative_position_bias_table,), build, dtype)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        """x: (B, H*W, C) in raster order, in and out; H and W are window multiples."""
        H, W = x_size
        B, L, C = x.shape
        ws, ows, heads, d = self.window_size, self.overlap_win_size, self.num_heads, C // self.num_heads
        qkv = self.qkv(self.norm1(x))
        q = window_partition(qkv[..., :C].reshape(B, H, W, C), ws)  # B*nW, ws*ws, C
        kv = to_image(qkv[..., C:], x_size)  # B, 2C, H, W
        # Keys and values: the overlapping windows, zero-padded at the borders (as nn.Unfold in the official code).
        kv = F.unfold(kv, kernel_size=ows, stride=ws, padding=(ows - ws) // 2)  # B, 2C*ows*ows, nW
        nW = kv.shape[-1]
        # Contiguous channels: SDPA's flash kernel needs them, and falls back to a math path that builds the
        # whole (windows, heads, ws², ows²) attention matrix otherwise.
        kv = kv.view(B, 2, C, ows * ows, nW).permute(1, 0, 4, 3, 2).reshape(2, B * nW, ows * ows, C).contiguous()
        q = q.view(B * nW, ws * ws, heads, d).transpose(1, 2)
        k, v = (t.view(B * nW, ows * ows, heads, d).transpose(1, 2) for t in kv.unbind(0))
        if torch.is_grad_enabled() or tracing():  # spelled out: CPU SDPA has no mask gradient (see WindowAttention)
            out = (((q * self.scale) @ k.transpose(-2, -1)) + self.relative_position_bias().to(q.dtype)).softmax(-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.inference_bias(q.dtype), scale=self.scale)
        out = out.transpose(1, 2).reshape(B * nW, ws * ws, C)
        out = out.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, L, C)
        x = self.proj(out) + x
        return self.mlp(self.norm2(x), residual=x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, overlap_win_size={self.overlap_win_size}"


class AttenBlocks(nn.Module):
    """The blocks of one residual group, then its OCAB (``residual_group`` of an RHAG)."""

    def __init__(self, c: SwinIRConfig, i: int, resolution: Tuple[int, int], drop_path: List[float]):
        super().__init__()
        self.use_checkpoint = c.use_checkpoint
        self.blocks = nn.ModuleList([
            HAB(c.embed_dim, resolution, c.num_heads[i], c.window_size, 0 if j % 2 == 0 else c.window_size // 2,
                c.mlp_ratio, c.qkv_bias, c.qk_scale, c.drop_rate, c.attn_drop_rate, drop_path[j] if drop_path else 0.0,
                c.compress_ratio, c.squeeze_factor, c.conv_scale)
            for j in range(c.depths[i])])
        self.overlap_attn = OCAB(c.embed_dim, c.window_size, c.overlap_ratio, c.num_heads[i], c.qkv_bias, c.qk_scale,
                                 c.mlp_ratio)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint.checkpoint(blk, x, x_size, use_reentrant=False)
            else:
                x = blk(x, x_size)
        return self.overlap_attn(x, x_size)


class RHAG(nn.Module):
    """Residual hybrid attention group: blocks and OCAB -> conv -> long skip."""

    def __init__(self, c: SwinIRConfig, i: int, resolution: Tuple[int, int], drop_path: List[float]):
        super().__init__()
        self.residual_group = AttenBlocks(c, i, resolution, drop_path)
        self.conv = conv_block(c.embed_dim, c.resi_connection)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        return to_tokens(self.conv(to_image(self.residual_group(x, x_size), x_size))) + x


class HAT(SwinIR):
    """HAT for super-resolution (HAT-S, HAT, HAT-L, Real-HAT-GAN), built like :class:`SwinIR`: from a config
    with ``arch="hat"`` or from the official keyword arguments (``HAT(upscale=4, window_size=16, ...,
    compress_ratio=3, squeeze_factor=30, conv_scale=0.01, overlap_ratio=0.5)``). Same input, output and
    padding as SwinIR."""

    arch = "hat"

    def __init__(self, config=None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.register_buffer("relative_position_index_SA", relative_position_index(c.window_size))
        self.register_buffer("relative_position_index_OCA",
                             relative_position_index_oca(c.window_size, c.overlap_ratio))

    def group(self, c: SwinIRConfig, i: int, resolution: Tuple[int, int], drop_path: List[float]) -> nn.Module:
        return RHAG(c, i, resolution, drop_path)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Both indices are derived from the config: take ours, so dicts without them load strictly.
        state_dict[prefix + "relative_position_index_SA"] = self.relative_position_index_SA
        state_dict[prefix + "relative_position_index_OCA"] = self.relative_position_index_OCA
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
