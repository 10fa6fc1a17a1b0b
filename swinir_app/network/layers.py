"""Small single-purpose layers: windows, shift masks, padding, MLP, stochastic depth."""
from __future__ import annotations

import functools
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, window_size**2, C), windows in raster order."""
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)


def window_reverse(windows: Tensor, window_size: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * num_windows, window_size**2, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size, W // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def relative_position_index(window_size: int) -> Tensor:
    """(N, N) index into the (2*ws-1)**2 bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)  # 2, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # N, N, 2
    rel = rel + (window_size - 1)
    return rel[:, :, 0] * (2 * window_size - 1) + rel[:, :, 1]


@functools.lru_cache(maxsize=32)
def shift_mask(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tensor:
    """(num_windows, N, N) additive mask, -100 between pixels that the cyclic shift made neighbours.

    Cached per size and device: computed once, never per block or per forward.
    """
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


@functools.lru_cache(maxsize=32)
def masked_windows(H: int, W: int, window_size: int, shift_size: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """The windows whose shift mask is not all zero (last row and column), and their (n, N, N) masks."""
    mask = shift_mask(H, W, window_size, shift_size, device)
    idx = mask.ne(0).flatten(1).any(1).nonzero().flatten()
    return idx, mask[idx]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad the bottom/right of (B, C, H, W) to a multiple, with reflection as the official forward does.

    Reflection cannot add more than size-1 pixels, so tiny inputs are reflected repeatedly and a
    1-pixel side is replicated.
    """
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

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C): the official PatchEmbed with patch_size 1."""
    return x.flatten(2).transpose(1, 2)


def to_image(x: Tensor, x_size: Tuple[int, int]) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W): the official PatchUnEmbed."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x_size[0], x_size[1])
