"""SwinIR (Liang et al., ICCV-W 2021): shallow conv -> RSTBs -> reconstruction.

Module and parameter names follow the official implementation exactly, so official state
dicts load with ``strict=True``.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import Tensor, nn

from . import winograd
from .attention import WindowAttention
from .capabilities import FamilyNetwork
from .config import SwinIRConfig
from .layers import (DropPath, Mlp, cpu_inference, gather_tokens, masked_windows, pad_to_multiple,
                     reorder_index, shift_mask, to_image, to_tokens, tracing, weights_key)


# CPU inference runs each block over chunks of about this many tokens (whole windows), so that a chunk's
# intermediates (~6 MB for SwinIR-M) stay in cache. On the whole model 4096 beat 2048, whose oneDNN calls
# cost more per token, and one pass over all windows (AVX2, AVX-512 and AMX bf16; see the README).
CHUNK_TOKENS = 4096

# Computed from the config (HAT keeps its two indices at the top of the network).
DERIVED_SUFFIXES = ("attn_mask", "relative_position_index", "relative_coords_table", "relative_position_index_SA",
                    "relative_position_index_OCA")


class SwinTransformerBlock(nn.Module):
    """LN -> (S)W-MSA -> residual -> LN -> MLP -> residual."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], num_heads: int, window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.dim, self.input_resolution, self.num_heads = dim, input_resolution, num_heads
        self.window_size, self.shift_size, self.mlp_ratio = window_size, shift_size, mlp_ratio
        if min(input_resolution) <= window_size:
            # As the official code: a feature map no larger than a window is one unshifted window.
            self.shift_size, self.window_size = 0, min(input_resolution)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = self.attention(dim, self.window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        # Kept only so that state dicts match the official ones; forward uses the per-size cache. One
        # tensor shared by every shifted block (and model) of this size: it is never written to.
        attn_mask = shift_mask(*input_resolution, self.window_size, self.shift_size, torch.device("cpu")) \
            if self.shift_size else None
        self.register_buffer("attn_mask", attn_mask)
        self._mask_cache: Optional[tuple] = None
        self._chunk_cache: Optional[tuple] = None

    attention = WindowAttention  # the attention of this family member (Swin2SR's is cosine attention)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # attn_mask is derived from img_size: take ours, so dicts without it (or with another
        # img_size) load strictly.
        if self.attn_mask is not None:
            state_dict[prefix + "attn_mask"] = self.attn_mask
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def attention_masks(self, H: int, W: int, batch: int, like: Tensor):
        """(bias, masked) for :class:`WindowAttention` on an H x W map.

        With gradients: the bias with the shift mask merged in, (1 or windows, heads, N, N).
        Without: the bias and (for shifted blocks) the masked windows, cached for the last size
        while the bias table cannot change, so that no mask or bias-index work runs per forward.
        """
        if tracing():  # in the graph, for the traced size: bias and shift mask merged, every window
            return self._build_masks(H, W, batch, like, explicit=True)
        params = self.attn.bias_parameters()
        explicit = torch.is_grad_enabled()
        weights = weights_key(*params)  # None: weights made under inference_mode, nothing is cached
        key = (H, W, batch, like.device, explicit, weights)
        grad = explicit and any(p.requires_grad for p in params)
        frozen = not grad and weights is not None
        if frozen and self._mask_cache is not None and self._mask_cache[0] == key:
            return self._mask_cache[1]
        # Normal tensors even under inference_mode: such a cache could not join a graph later.
        with torch.inference_mode(False), torch.set_grad_enabled(grad):
            masks = self._build_masks(H, W, batch, like, explicit)
        self._mask_cache = (key, masks) if frozen else None
        return masks

    def _build_masks(self, H, W, batch, like, explicit):
        bias = self.attn.relative_position_bias()
        if not self.shift_size:
            return bias, None
        if explicit:
            return bias + shift_mask(H, W, self.window_size, self.shift_size, like.device).unsqueeze(1), None
        idx, region = masked_windows(H, W, self.window_size, self.shift_size, like.device)
        nW = (H // self.window_size) * (W // self.window_size)
        idx = (torch.arange(batch, device=like.device)[:, None] * nW + idx).flatten()
        return bias, (idx, (bias + region.unsqueeze(1)).repeat(batch, 1, 1, 1))

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        """x: (B, H*W, C) tokens already in this block's (shifted) window order; see BasicLayer.

        Window order makes W-MSA a plain reshape; LayerNorm, MLP and residuals don't care about order.
        """
        H, W = x_size
        B, L, C = x.shape
        N = self.window_size ** 2
        bias, masked = self.attention_masks(H, W, B, x)
        if self.training and self.drop_path.drop_prob > 0:
            return self.stochastic_depth_forward(x, bias, masked)
        return self.by_window_chunks(x.view(-1, N, C), bias, masked).view(B, L, C)

    def stochastic_depth_forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        """The block while training with stochastic depth: each image of x (B, L, C) drops the branches."""
        B, L, C = x.shape
        x = x + self.drop_path(self.attn(self.norm1(x).view(-1, self.window_size ** 2, C), bias, masked).view(B, L, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def windows_forward(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        """The block on whole windows, x: (windows, N, C); ``masked`` indexes these windows."""
        x = self.attn(self.norm1(x), bias, masked, residual=x)
        return self.mlp(self.norm2(x), residual=x)

    def by_window_chunks(self, x: Tensor, bias: Tensor, masked: Optional[Tuple[Tensor, Tensor]]) -> Tensor:
        """:meth:`windows_forward` over all windows of x (windows, N, C).

        In CPU inference, over chunks of about ``CHUNK_TOKENS`` tokens: every intermediate of a chunk
        (q, k, v, the MLP's hidden layer) then stays in cache, which made a block 13% faster on AVX2
        and AVX-512 alike (SwinIR-M, 128x128, 2048 tokens: 92 -> 81 ms and 60 -> 53 ms).
        """
        total, N, _ = x.shape
        step = max(1, CHUNK_TOKENS // N)
        if not cpu_inference(x) or total <= step:
            return self.windows_forward(x, bias, masked)
        out = torch.empty_like(x)
        for start, masked_chunk in self._chunks(total, step, masked):
            out[start:start + step] = self.windows_forward(x[start:start + step], bias, masked_chunk)
        return out

    def _chunks(self, total: int, step: int, masked: Optional[Tuple[Tensor, Tensor]]) -> list:
        """[(first window, its chunk's masked windows renumbered from there, or None)], cached with ``masked``."""
        cache = self._chunk_cache
        if cache is not None and cache[0] is masked and cache[1] == (total, step):
            return cache[2]
        chunks = []
        for start in range(0, total, step):
            part = None
            if masked is not None:
                idx, mask = masked
                sel = ((idx >= start) & (idx < start + step)).nonzero().flatten()
                part = (idx[sel] - start, mask[sel]) if len(sel) else None
            chunks.append((start, part))
        self._chunk_cache = (masked, (total, step), chunks)
        return chunks


class BasicLayer(nn.Module):
    """A stage of blocks alternating W-MSA and SW-MSA."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: Sequence[float] = (), use_checkpoint: bool = False,
                 block: type = SwinTransformerBlock):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            block(dim, input_resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio,
                  qkv_bias, qk_scale, drop, attn_drop, drop_path[i] if drop_path else 0.0)
            for i in range(depth)])

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        """x: (B, H*W, C) in raster order, in and out. Inside, tokens stay in window order and are
        regrouped once per change of shift (one gather, instead of rolls and partitions)."""
        H, W = x_size
        order = None  # raster
        for blk in self.blocks:
            if blk.shift_size != order:
                x = gather_tokens(x, reorder_index(H, W, blk.window_size, order, blk.shift_size, x.device))
                order = blk.shift_size
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint.checkpoint(blk, x, x_size, use_reentrant=False)
            else:
                x = blk(x, x_size)
        if order is not None:
            x = gather_tokens(x, reorder_index(H, W, self.blocks[-1].window_size, order, None, x.device))
        return x


def conv_block(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing a residual group: one 3x3, or the cheaper 3x3-1x1-3x3 bottleneck."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1))


class RSTB(nn.Module):
    """Residual Swin Transformer Block: blocks -> conv (-> Swin2SR's 1x1 ``patch_embed.proj``) -> long skip."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: Sequence[float] = (), use_checkpoint: bool = False, resi_connection: str = "1conv",
                 block: type = SwinTransformerBlock, embed: bool = False):
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                                         qkv_bias, qk_scale, drop, attn_drop, drop_path, use_checkpoint, block)
        self.conv = conv_block(dim, resi_connection)
        if embed:
            self.patch_embed = PatchEmbed(dim, False, proj=True)

    def forward(self, x: Tensor, x_size: Tuple[int, int]) -> Tensor:
        y = winograd.conv(to_image(self.residual_group(x, x_size), x_size), self.conv)
        if hasattr(self, "patch_embed"):
            y = self.patch_embed.proj(y)
        return to_tokens(y) + x


class PatchEmbed(nn.Module):
    """Image -> tokens: Swin2SR's 1x1 ``proj`` conv if ``proj``, then the optional LayerNorm of the
    official models (``patch_embed.norm``)."""

    def __init__(self, embed_dim: int, patch_norm: bool, proj: bool = False):
        super().__init__()
        if proj:
            self.proj = nn.Conv2d(embed_dim, embed_dim, 1)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        x = to_tokens(self.proj(x) if hasattr(self, "proj") else x)
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    """Conv + PixelShuffle steps: x2 per step for powers of two, one x3 step for 3."""

    def __init__(self, scale: int, num_feat: int):
        layers: List[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported; use 2^n or 3")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """The lightweight upsampler: one conv straight to scale**2 * out channels, one PixelShuffle."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int):
        super().__init__(nn.Conv2d(num_feat, scale ** 2 * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


def pixelshuffle_head(net: nn.Module, c: SwinIRConfig) -> None:
    """The classical reconstruction (``upsampler="pixelshuffle"``), official names: a conv to ``num_feat``
    with LeakyReLU, pixel-shuffle steps, a last conv."""
    net.conv_before_upsample = nn.Sequential(nn.Conv2d(c.embed_dim, c.num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
    net.upsample = Upsample(c.upscale, c.num_feat)
    net.conv_last = nn.Conv2d(c.num_feat, c.out_chans, 3, 1, 1)


class SwinIR(FamilyNetwork):
    """SwinIR for super-resolution, denoising and JPEG artifact removal.

    Build it from a :class:`SwinIRConfig` or from the official keyword arguments::

        SwinIR(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=[6] * 6,
               embed_dim=180, num_heads=[6] * 6, mlp_ratio=2, upsampler="pixelshuffle")

    Input: (B, in_chans, H, W) in [0, 1], any H, W >= 1. Output: (B, out_chans, H*upscale, W*upscale).
    """

    arch = "swinir"
    block = SwinTransformerBlock

    def __init__(self, config: Optional[SwinIRConfig] = None, **kwargs):
        super().__init__()
        # Normal tensors even when built under inference_mode: the fast paths cache what they derive from
        # the weights, keyed on version counters that inference tensors lack (see layers.weights_key).
        with torch.inference_mode(False):
            self._build(config, kwargs)

    def _build(self, config: Optional[SwinIRConfig], kwargs: dict) -> None:
        c = self._setup(config, kwargs)

        # 1. shallow feature extraction
        self.conv_first = nn.Conv2d(c.in_chans, c.embed_dim, 3, 1, 1)

        # 2. deep feature extraction
        resolution = (c.img_size // c.patch_size,) * 2
        v2 = c.arch == "swin2sr"  # Swin2SR: a 1x1 projection at the top and at the end of every group
        self.patch_embed = PatchEmbed(c.embed_dim, c.patch_norm, proj=v2)
        if c.ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], c.embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(c.drop_rate)
        dpr = torch.linspace(0, c.drop_path_rate, sum(c.depths), device="cpu").tolist()  # stochastic depth decay rule
        self.layers = nn.ModuleList([self.group(c, i, resolution, dpr[sum(c.depths[:i]):sum(c.depths[:i + 1])])
                                     for i in range(len(c.depths))])
        self.norm = nn.LayerNorm(c.embed_dim)
        self.conv_after_body = conv_block(c.embed_dim, c.resi_connection)

        # 3. reconstruction
        if c.upsampler == "pixelshuffle":
            pixelshuffle_head(self, c)
        elif c.upsampler == "pixelshuffle_aux":  # Swin2SR's compressed SR: an LR auxiliary image, plus bicubic
            self.conv_bicubic = nn.Conv2d(c.in_chans, c.num_feat, 3, 1, 1)
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c.embed_dim, c.num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_aux = nn.Conv2d(c.num_feat, c.out_chans, 3, 1, 1)
            self.conv_after_aux = nn.Sequential(nn.Conv2d(c.out_chans, c.num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(c.upscale, c.num_feat)
            self.conv_last = nn.Conv2d(c.num_feat, c.out_chans, 3, 1, 1)
        elif c.upsampler == "pixelshuffledirect":
            self.upsample = UpsampleOneStep(c.upscale, c.embed_dim, c.out_chans)
        elif c.upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(c.embed_dim, c.num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
            if c.upscale >= 4:
                self.conv_up2 = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
            if c.upscale == 8:  # not in the official release; the natural third x2 step
                self.conv_up3 = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(c.num_feat, c.out_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(c.embed_dim, c.out_chans, 3, 1, 1)
        self.apply(self._init_weights)

    def group(self, c: SwinIRConfig, i: int, resolution: Tuple[int, int], drop_path: List[float]) -> nn.Module:
        """Residual group ``i`` of the body (an RSTB; HAT builds its RHAG)."""
        return RSTB(c.embed_dim, resolution, c.depths[i], c.num_heads[i], c.window_size, c.mlp_ratio, c.qkv_bias,
                    c.qk_scale, c.drop_rate, c.attn_drop_rate, drop_path, c.use_checkpoint, c.resi_connection,
                    self.block, embed=c.arch == "swin2sr")

    def forward_features(self, x: Tensor) -> Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        if self.config.ape:
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return to_image(self.norm(x), x_size)

    def forward(self, x: Tensor, aux: bool = False):
        """Restore a batch of images.

        Args:
            x: (B, in_chans, H, W) float, values in [0, 1] (the model's mean and ``img_range`` are applied
                here); any H, W >= 1: reflect-padded to a window multiple and cropped back.
            aux: ``pixelshuffle_aux`` (Swin2SR) only: also return its auxiliary LR image, for training.

        Returns:
            (B, out_chans, H * upscale, W * upscale) float32, nominally in [0, 1] but not clamped, in the
            default (contiguous) layout; with ``aux``, a tuple of it and the (B, out_chans, H, W)
            auxiliary image. Under ``torch.autocast`` only the transformer body runs in half precision;
            the output is float32 either way. A network cast with ``.half()`` or ``.to(torch.bfloat16)``
            runs wholly in that dtype and returns it (the input is cast to it).

        Raises:
            ValueError: ``aux`` for a network without the auxiliary head.
        """
        if aux and self.upsampler != "pixelshuffle_aux":
            raise ValueError(f"aux=True needs the pixelshuffle_aux head; this network has {self.upsampler!r}")
        H, W = x.shape[2:]
        dtype = self.conv_first.weight.dtype  # float32, or the network's own after .half() / .to(bfloat16)
        x = pad_to_multiple(x.to(dtype), self.window_size)
        # channels_last throughout: tokens and feature maps share one memory layout (see to_image),
        # and oneDNN's NHWC convolutions are as fast or faster (the 3-channel conv_last 2x).
        x = ((x - self.mean) * self.img_range).contiguous(memory_format=torch.channels_last)
        # Under autocast only the transformer body runs in half precision: the shallow conv, the
        # long residual and the reconstruction stay in fp32, where small errors would show.
        with torch.autocast(x.device.type, enabled=False):
            feat = self.conv_first(x)
        body = self.forward_features(feat)
        with torch.autocast(x.device.type, enabled=False):
            feat = winograd.conv(body.to(dtype), self.conv_after_body) + feat
            if self.upsampler == "pixelshuffle_aux":
                x, lr = self._reconstruct_aux(x, feat, H, W)
            else:
                x = self._reconstruct(x, feat)
        x = x / self.img_range + self.mean
        out = x[:, :, :H * self.upscale, :W * self.upscale].contiguous()
        return (out, (lr / self.img_range + self.mean)[:, :, :H, :W].contiguous()) if aux else out

    def _reconstruct_aux(self, x: Tensor, feat: Tensor, H: int, W: int) -> Tuple[Tensor, Tensor]:
        """Swin2SR's ``pixelshuffle_aux``: (output, auxiliary LR image), both in model range. As the official
        code, the bicubic branch resizes the *padded* input to the unpadded output size."""
        s = self.upscale
        bicubic = self.conv_bicubic(F.interpolate(x, size=(H * s, W * s), mode="bicubic", align_corners=False))
        lr = self.conv_aux(self.conv_before_upsample(feat))
        y = self.upsample(self.conv_after_aux(lr))[:, :, :H * s, :W * s] + bicubic
        return self.conv_last(y), lr

    def _reconstruct(self, x: Tensor, feat: Tensor) -> Tensor:
        """Deep features (+ the input, for the global residual) -> output in model range."""
        if self.upsampler == "":  # denoising / JPEG: global residual to the input
            return x + self.conv_last(feat)
        conv = winograd.conv
        if self.upsampler == "pixelshuffle":
            return self.conv_last(conv(conv(feat, self.conv_before_upsample), self.upsample))
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(feat)
        x = conv(feat, self.conv_before_upsample)  # nearest+conv: x2 steps of nearest + conv
        for name in ("conv_up1", "conv_up2", "conv_up3")[:int(math.log2(self.upscale))]:
            x = self.lrelu(conv(F.interpolate(x, scale_factor=2, mode="nearest"), getattr(self, name)))
        return self.conv_last(self.lrelu(conv(x, self.conv_hr)))
