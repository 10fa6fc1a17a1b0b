"""Tiles: the one tile parser (:func:`parse_tile`), where equal tiles start (:func:`tile_starts`), how their
overlaps blend (:func:`blend_ramp`), and the plan :class:`~swinir_app.engine.Restorer` makes of them
(:class:`TilePlan`, :class:`PlanNote`; the policy itself is ``Restorer.plan``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from .errors import SettingError

__all__ = ["PlanNote", "TilePlan", "blend_ramp", "parse_tile", "tile_starts"]


def parse_tile(value: Union[None, int, str]) -> Union[None, int, str]:
    """A tile setting as users write it -> :class:`Restorer`'s ``tile``: 'auto' (from free memory),
    'none' / 'off' / 'whole' / 0 (the whole image at once), or a size in input pixels.

    The one parser of the CLI flags and the web page. Raises :class:`SettingError`.
    """
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        if value is not None and value < 0:
            raise SettingError("tile", value, "must be 'auto', 'none' or a number of pixels")
        return value or None
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("none", "off", "whole", "whole image", "0", ""):
        return None
    if not text.isdecimal() or int(text) <= 0:  # whole pixels: "12.5" is not a tile size
        raise SettingError("tile", value, "must be 'auto', 'none' or a number of pixels")
    return int(text)


def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of equal tiles covering [0, size); the last one is flush with the end."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> Tensor:
    """1-D tile weight: 1 inside, a raised-cosine fade across the overlap, 0 at the very edge.

    Edges of the image get no fade. The fade leaves the outer quarter of the overlap at ~0, so
    the pixels a tile sees least context for barely count; opposite fades sum to one.
    """
    w = torch.ones(length)
    margin = overlap // 4
    ramp_len = max(overlap - 2 * margin, 1)
    t = (torch.arange(overlap, dtype=torch.float32) - margin + 0.5) / ramp_len
    fade = 0.5 - 0.5 * torch.cos(math.pi * t.clamp(0, 1))
    fade = fade.clamp_min(1e-6)  # strictly positive: a pixel is never left without weight
    n = min(overlap, length)
    if overlap and not at_start:
        w[:n] = torch.minimum(w[:n], fade[:n])
    if overlap and not at_end:
        w[-n:] = torch.minimum(w[-n:], fade[:n].flip(0))
    return w


@dataclass(frozen=True)
class PlanNote:
    """Something a front end should tell the user about the tile plan, in the words of its own options.

    ``template`` names settings as ``{tile}`` and ``{tile_overlap}``: :meth:`flag` spells them as CLI flags
    (``--tile-overlap``), ``str()`` in words (``tile overlap``).
    """

    template: str

    def flag(self) -> str:
        return self.template.format(tile="--tile", tile_overlap="--tile-overlap")

    def __str__(self) -> str:
        return self.template.format(tile="tile", tile_overlap="tile overlap")


@dataclass(frozen=True)
class TilePlan:
    """How :class:`Restorer` will cut an image (see :meth:`Restorer.plan`).

    Attributes:
        tile: tile side in input pixels, or None for the whole image at once.
        overlap: overlap between tiles in input pixels (at most half a tile).
        count: model passes, self-ensemble included.
        work: pixels the passes compute over the pixels of the image (1 without tiles).
        memory: rough peak activation bytes of one pass (fp32).
        from_memory: the tile size comes from free memory (``tile="auto"``, or a run the memory limit
            re-planned), so a pass that runs out of memory is retried with smaller tiles.
        notes: what the user should know (an overlap cut to half the tile, tiles that compute far more
            pixels than the image has, tiles chosen because the request would not fit in memory).
    """

    tile: Optional[int]
    overlap: int
    count: int
    work: float
    memory: int
    from_memory: bool
    notes: Tuple[PlanNote, ...] = ()
