"""Animated images and multi-page TIFFs: every frame read, restored and written back with its timing.

GIF, APNG and animated WebP are read through Pillow, which composites each frame as a viewer shows
it (disposal and blending applied), so every frame is a whole picture, on one canvas (a GIF frame
that grows the canvas brings the earlier frames to its size). They are written back whole:
APNG with "source" blending and each frame's own disposal; GIF with each frame's own disposal, except
that a frame followed by one with new transparent pixels is restored to the background (else the
old pixels would show through the new frame's holes); WebP with its loop and background. Frame
durations (milliseconds) and the loop count are kept. Multi-page TIFFs are read and written through
tifffile, 8 or 16 bits per sample as the pages are, each page at its own size.

Animations are held in memory, frames and results both, so :func:`read_animation` bounds the sum of
the pixels of all frames by ``max_pixels``. Videos are streamed instead (:mod:`swinir_app.video`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from .files import atomic_write
from .images import ImageReadError, gif_frame, image_bytes, icc_fits, limit_reason, too_many_pixels
from .metadata import Metadata, finish_encoded, read_metadata, save_options

# The containers that hold frames, by output extension; TIFF pages carry no timing.
TIMED = {".gif": "GIF", ".png": "PNG", ".webp": "WEBP"}
PAGED = {".tif": "TIFF", ".tiff": "TIFF"}


@dataclass
class Animation:
    """The frames of an animated image (GIF, APNG, WebP) or the pages of a TIFF.

    Attributes:
        frames: one HxW or HxWxC (C = 2 gray+alpha, 3 RGB, 4 RGBA) array per frame, uint8, or uint16
            for 16-bit TIFF pages. Timed formats have RGB or RGBA frames of one size.
        format: "GIF", "PNG" (APNG), "WEBP" or "TIFF" (pages).
        durations: milliseconds each frame is shown (timed formats; empty for TIFF).
        loop: the loop count (0 = for ever), or None where the file has none (a GIF played once).
        disposal: each frame's disposal method as the format numbers it (GIF, APNG), else empty.
        background: WebP's canvas colour (RGBA), if any.
        icc_profile: embedded again where the format allows.
        metadata: the file's EXIF and XMP (APNG, WebP; the first TIFF page's XMP and IPTC), written again
            where the container holds them (not GIF), dimensions updated and orientation as it was (frames
            are not turned on read); None for none (``--strip-metadata``).
    """

    frames: List[np.ndarray]
    format: str
    durations: List[float] = field(default_factory=list)
    loop: Optional[int] = None
    disposal: List[int] = field(default_factory=list)
    background: Optional[tuple] = None
    icc_profile: Optional[bytes] = None
    metadata: Optional[Metadata] = None

    @property
    def kind(self) -> str:
        return "pages" if self.format == "TIFF" else "frames"

    @property
    def pixels(self) -> int:
        return sum(f.shape[0] * f.shape[1] for f in self.frames)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Animation":
        """The same animation with ``fn`` applied to every frame (timing and metadata kept)."""
        return replace(self, frames=[fn(f) for f in self.frames])


def frame_info(path: Path) -> Tuple[int, str]:
    """How many frames or pages the file at ``path`` holds, and its format ("GIF", "PNG", "WEBP",
    "TIFF", ...): 1 and "" for a file that the header does not describe (its reader says what is
    wrong later). Reads headers only, and only from regular files."""
    import os
    import stat
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return 1, ""
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1)), img.format or ""
    except Exception:  # noqa: BLE001 - 16-bit gray+alpha TIFFs, which Pillow cannot open, and garbage
        pass
    try:
        import tifffile
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages), "TIFF"
    except Exception:  # noqa: BLE001
        return 1, ""


def read_animation(source, max_pixels: Optional[int] = None, name: Optional[str] = None,
                   max_bytes: Optional[int] = None) -> Animation:
    """All frames of an animated GIF/APNG/WebP, or all pages of a TIFF, from a path or bytes.

    Raises:
        ImageReadError: one line naming the file and the reason (not an image, corrupt, more pixels
            over all frames than ``max_pixels``, a page layout that cannot be restored).
    """
    name, data = image_bytes(source, max_pixels, name, max_bytes)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return _read_pages(data, name, max_pixels)
    try:
        img = Image.open(io.BytesIO(data))
        n = int(getattr(img, "n_frames", 1))
        w, h = header = img.size
        if max_pixels is not None and w * h * n > max_pixels:
            raise ImageReadError(name, f"{n} frames of {w}x{h} = {w * h * n:,} pixels exceed the limit of "
                                       f"{max_pixels:,} (--max-pixels)")
        loop = img.info.get("loop")
        background = img.info.get("background") if img.format == "WEBP" else None
        icc = img.info.get("icc_profile")
        metadata = read_metadata(img)
        frames, durations, disposal = [], [], []
        for k in range(n):
            try:
                img.seek(k)
                refused = False
            except Image.DecompressionBombError:  # a grown canvas over twice Pillow's limit; its size is set
                refused = True
            # A GIF frame may grow the canvas beyond the header's size (Pillow follows it), so the limit is
            # checked on every frame as decoded, before its pixels are: every frame is brought to the final
            # canvas (see _on_canvas), so this frame's size counts n times.
            w, h = img.size
            if refused or (max_pixels is not None and w * h * n > max_pixels):
                raise ImageReadError(name, f"frame {k + 1} of {n} enlarges the canvas from {header[0]}x{header[1]} "
                                           f"to {w}x{h}: {n} frames of {w}x{h} = {w * h * n:,} pixels exceed "
                                           f"{limit_reason(w * h * n, max_pixels)}")
            img.load()  # frame info (WebP's duration) is set on load
            durations.append(float(img.info.get("duration") or 0))
            disposal.append(int(getattr(img, "disposal_method", img.info.get("disposal", 0)) or 0))
            frames.append(np.asarray(img.convert("RGBA")))
        fmt = img.format
    except ImageReadError:
        raise
    except Image.DecompressionBombError:  # the header's size, refused by Image.open
        raise too_many_pixels(name, data, max_pixels) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds on garbage
        raise ImageReadError(name, f"truncated or corrupt ({e})") from None
    frames = _on_canvas(frames)
    if all(f[:, :, 3].min() == 255 for f in frames):
        frames = [np.ascontiguousarray(f[:, :, :3]) for f in frames]
    if icc and not icc_fits(icc, frames[0]):
        icc = None
    return Animation(frames=frames, format=fmt, durations=durations, loop=loop,
                     disposal=disposal if fmt in ("GIF", "PNG") else [],
                     background=tuple(background) if isinstance(background, (tuple, list)) else None,
                     icc_profile=icc, metadata=metadata)


def _on_canvas(frames: List[np.ndarray]) -> List[np.ndarray]:
    """Every RGBA frame on the final canvas: the largest that a GIF frame grew it to (Pillow returns each
    frame at the canvas size so far, and canvases only grow, right and down). An earlier frame stays at the
    top-left, where a viewer draws it; the area it does not cover is transparent, as nothing is drawn there
    yet, with its edge's colour under the transparency so that the model sees no dark seam."""
    h, w = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
    out = []
    for f in frames:
        pad = ((0, h - f.shape[0]), (0, w - f.shape[1]))
        if pad[0][1] or pad[1][1]:
            f = np.dstack([np.pad(f[:, :, :3], pad + ((0, 0),), mode="edge"), np.pad(f[:, :, 3], pad)])
        out.append(f)
    return out


def _read_pages(data: bytes, name: str, max_pixels: Optional[int]) -> Animation:
    import tifffile
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = list(tif.pages)
            total = sum(p.imagelength * p.imagewidth for p in pages)
            if max_pixels is not None and total > max_pixels:
                raise ImageReadError(name, f"{len(pages)} pages of {total:,} pixels in all exceed the limit of "
                                           f"{max_pixels:,} (--max-pixels)")
            frames, icc = [], None
            from .metadata import read_tifffile_metadata
            metadata = read_tifffile_metadata(pages[0]) if pages else None
            for k, page in enumerate(pages):
                channels = page.samplesperpixel
                photometric = int(page.photometric)
                if page.dtype not in (np.uint8, np.uint16) or channels > 4 or photometric not in (1, 2) \
                        or page.planarconfig != 1:
                    raise ImageReadError(name, f"page {k + 1}: unsupported TIFF layout ({page.dtype}, "
                                               f"{channels} samples per pixel, photometric {photometric})")
                a = page.asarray().reshape(page.imagelength, page.imagewidth, channels)
                frames.append(np.ascontiguousarray(a[:, :, 0] if channels == 1 else a))
                if k == 0 and "InterColorProfile" in page.tags:
                    icc = bytes(page.tags["InterColorProfile"].value)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile raises many kinds on garbage
        raise ImageReadError(name, f"truncated or corrupt TIFF ({e})") from None
    if icc and not icc_fits(icc, frames[0]):
        icc = None
    return Animation(frames=frames, format="TIFF", icc_profile=icc, metadata=metadata)


def output_problem(anim_format: str, frames: int, ext: str) -> Optional[str]:
    """Why an input of ``anim_format`` with this many frames cannot be written as ``ext`` (None if it
    can): still formats hold one frame, and TIFF pages hold no timing."""
    ext = ext.lower()
    what = "a multi-page TIFF" if anim_format == "TIFF" else f"an animated {_NAMES.get(anim_format, anim_format)}"
    if anim_format == "TIFF":
        if ext in PAGED:
            return None
        return f"{what} ({frames} pages) can only be written as TIFF; --ext tif or auto keeps its pages"
    if ext in TIMED:
        return None
    if ext in PAGED:
        return f"{what} ({frames} frames) cannot be written as TIFF, which keeps no frame timing; --ext auto, " \
               f"gif, png or webp keeps them"
    return f"{what} ({frames} frames) cannot be written as a still {ext.lstrip('.').upper()}; --ext auto, gif, " \
           f"png or webp keeps its frames"


_NAMES = {"PNG": "PNG (APNG)", "WEBP": "WebP", "GIF": "GIF"}


def encode_animation(anim: Animation, ext: str, quality: int = 95) -> bytes:
    """The bytes of ``anim`` in the container of ``ext`` (.gif, .png, .webp: timed; .tif: pages).

    Raises:
        ValueError: a container that cannot hold this animation (see :func:`output_problem`).
    """
    ext = ext.lower()
    problem = output_problem(anim.format, len(anim.frames), ext)
    if problem:
        raise ValueError(problem)
    out = io.BytesIO()
    if ext in PAGED:
        _write_pages(out, anim)
        return out.getvalue()
    frames = [_to_8bit(f) for f in anim.frames]
    fmt = TIMED[ext]
    images = [gif_frame(f) if fmt == "GIF" else Image.fromarray(f) for f in frames]
    kwargs = dict(save_all=True, append_images=images[1:], duration=[int(round(d)) for d in anim.durations])
    if anim.loop is not None:
        kwargs["loop"] = anim.loop
    if anim.icc_profile and fmt != "GIF":
        kwargs["icc_profile"] = anim.icc_profile
    if fmt == "GIF":
        kwargs["disposal"] = _gif_disposal(anim, frames)
    elif fmt == "PNG":
        kwargs["disposal"] = anim.disposal if anim.format == "PNG" and anim.disposal else 0
        kwargs["blend"] = 0  # "source": each whole frame replaces the canvas
        kwargs["compress_level"] = 3
    else:
        kwargs["quality"] = quality
        if anim.background is not None:
            kwargs["background"] = anim.background
    size = (frames[0].shape[1], frames[0].shape[0])
    kwargs.update(save_options(anim.metadata, fmt, size, upright=False))
    images[0].save(out, format=fmt, **kwargs)
    return finish_encoded(out.getvalue(), fmt, anim.metadata, size, upright=False)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    a = np.round(a / 257.0).astype(np.uint8) if a.dtype == np.uint16 else a
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha: Pillow writes these containers in RGBA
        a = np.dstack([a[:, :, 0]] * 3 + [a[:, :, 1]])
    return a


def _gif_disposal(anim: Animation, frames: List[np.ndarray]) -> List[int]:
    """Each frame's own disposal, except "restore to background" (2) before a frame that is
    transparent where this one is not: GIF draws a frame over the canvas, holes included."""
    own = anim.disposal if anim.format == "GIF" and len(anim.disposal) == len(frames) else [1] * len(frames)
    out = list(own)
    for k in range(len(frames) - 1):
        a, b = frames[k], frames[k + 1]
        if b.ndim == 3 and b.shape[2] == 4:
            held = a[:, :, 3] > 0 if a.ndim == 3 and a.shape[2] == 4 else np.ones(a.shape[:2], bool)
            if out[k] in (0, 1) and (held & (b[:, :, 3] == 0)).any():
                out[k] = 2
    return out


def _write_pages(out: io.BytesIO, anim: Animation) -> None:
    import tifffile

    from .metadata import tifffile_tags
    with tifffile.TiffWriter(out) as tif:
        for k, a in enumerate(anim.frames):
            channels = 1 if a.ndim == 2 else a.shape[2]
            tif.write(a, photometric="minisblack" if channels <= 2 else "rgb", compression="zlib",
                      extrasamples=("unassalpha",) if channels in (2, 4) else None,
                      iccprofile=anim.icc_profile if k == 0 and anim.icc_profile else None,
                      extratags=tifffile_tags(anim.metadata, (a.shape[1], a.shape[0])) if k == 0 else ())


def write_animation(path, anim: Animation, quality: int = 95, overwrite: bool = True) -> None:
    """Encode ``anim`` for ``path``'s extension and write it atomically (see :func:`encode_animation`).

    Raises:
        ValueError: the container cannot hold the animation; FileExistsError: ``overwrite`` is False
        and ``path`` exists; OSError: the folder cannot be written.
    """
    path = Path(path)
    atomic_write(path, encode_animation(anim, path.suffix, quality), overwrite=overwrite)
