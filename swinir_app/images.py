"""Reading and writing images for every front end: any depth, mode and orientation, written atomically.

The one image reader and writer of the package; files are written atomically through
:mod:`swinir_app.files` (whose names are re-exported here for older callers). Importing it changes nothing
in the process: front ends that raise Pillow's decompression-bomb limit call :func:`configure_pillow`.
"""
from __future__ import annotations

import functools
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError
from .metadata import Metadata, finish_encoded, read_metadata, read_tifffile_metadata, save_options

from .files import (STALE_PART_AGE, FileReadError, atomic_file, atomic_write,  # noqa: F401 (re-exported)
                    read_regular_file, remove_stale_parts)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif", ".avif", ".jxl")
WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
            ".gif": "GIF", ".avif": "AVIF", ".jxl": "JXL"}  # the extensions written, and their Pillow formats
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif", "gif": ".gif", "avif": ".avif",
                  "jxl": ".jxl"}  # --ext choices (.jxl needs the optional pillow-jxl-plugin: jxl_problem())
QUALITY_FORMATS = ("JPEG", "WEBP", "AVIF", "JXL")  # the formats that --quality sets
JXL_PACKAGE = "pillow-jxl-plugin"  # optional (GPL-3.0-or-later, so not a requirement): .jxl in and out
_EXIF_ORIENTATION = 0x0112
_TIFF_PHOTOMETRIC = 262  # 0: MinIsWhite, 1: MinIsBlack, 2: RGB


def configure_pillow(max_pixels: int) -> None:
    """Align Pillow's decompression-bomb check with a front end's ``--max-pixels``.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89M by default) and refuses above twice that; a
    front end that allows more, or says it better, sets it here once at startup. :func:`read_image`
    refuses images over its ``max_pixels`` with a one-line reason either way.
    """
    import warnings

    Image.MAX_IMAGE_PIXELS = max(int(max_pixels), 1)
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def declared_size(data: bytes) -> Optional[Tuple[int, int]]:
    """The (width, height) that ``data``'s header declares, found as ``Image.open`` finds the format, for a
    file that Pillow refused as a decompression bomb (its error names neither the size nor our limit);
    None if no reader takes it."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            ok = accept is None or accept(data[:16])
            if not ok or isinstance(ok, str):  # a str is Pillow's "this format, but unsupported"
                continue
            if isinstance(factory, type):
                # Readers check too (a GIF sizes its first frame's disposal area while opening): the object
                # is made first, so the size its header set is still read when its __init__ refuses.
                img = factory.__new__(factory)
                try:
                    img.__init__(io.BytesIO(data), None)
                except Image.DecompressionBombError:
                    pass
            else:
                img = factory(io.BytesIO(data), None)
            if img.size[0] * img.size[1] > 0:
                return img.size
        except Exception:  # noqa: BLE001 - not this format
            continue
    return None


def limit_reason(pixels: int, max_pixels: Optional[int]) -> str:
    """The limit that ``pixels`` exceeds: ``max_pixels`` (--max-pixels), or else Pillow's own refusal at twice
    ``Image.MAX_IMAGE_PIXELS`` (a library caller that passed a larger limit than Pillow's or none)."""
    if max_pixels is not None and pixels > max_pixels:
        return f"the limit of {max_pixels:,} (--max-pixels)"
    return f"Pillow's limit of {2 * (Image.MAX_IMAGE_PIXELS or 0):,} (PIL.Image.MAX_IMAGE_PIXELS)"


def too_many_pixels(name, data: bytes, max_pixels: Optional[int]) -> "ImageReadError":
    """The one line for a file that ``Image.open`` refused as a decompression bomb (over twice
    ``Image.MAX_IMAGE_PIXELS``, which :func:`configure_pillow` sets to --max-pixels): its size and the
    user's limit, as for any image over it, not Pillow's message with twice the limit."""
    size = declared_size(data)
    if size is None:  # e.g. a GIF whose first frame is larger than its screen: Pillow refuses inside the reader
        pillow = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        return ImageReadError(name, f"more than {pillow:,} pixels exceed {limit_reason(pillow + 1, max_pixels)}")
    w, h = size
    return ImageReadError(name, f"{w}x{h} = {w * h:,} pixels exceeds {limit_reason(w * h, max_pixels)}")


class ImageReadError(UserError):
    """A file that cannot be restored; ``str()`` is one line naming the file and the reason."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class LoadedImage:
    """Pixels as HxW (gray) or HxWxC (RGB / RGBA / gray+alpha), uint8 or uint16, upright."""

    array: np.ndarray
    icc_profile: Optional[bytes] = None
    format: Optional[str] = None  # the source's format, e.g. "PNG", "JPEG"
    metadata: Optional[Metadata] = None  # the source's EXIF, XMP and IPTC (raw); None where it had none

    @property
    def exif(self) -> Optional[bytes]:
        return self.metadata.exif if self.metadata else None

    @property
    def xmp(self) -> Optional[bytes]:
        return self.metadata.xmp if self.metadata else None

    @property
    def iptc(self) -> Optional[bytes]:
        return self.metadata.iptc if self.metadata else None

    @property
    def pixels(self) -> int:
        return self.array.shape[0] * self.array.shape[1]


def image_bytes(source, max_pixels: Optional[int] = None, name: Optional[str] = None,
                max_bytes: Optional[int] = None) -> Tuple[str, bytes]:
    """The name and bytes of an image given as a path or bytes, read with the readers' limits: a regular
    file (see :func:`swinir_app.files.read_regular_file`) of at most ``max_bytes`` (default, with
    ``max_pixels``: what such an image takes uncompressed, 16-bit RGBA, plus 64 MB). Raises
    :class:`ImageReadError`."""
    name = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "<upload>")
    if max_bytes is None and max_pixels is not None:
        max_bytes = max_pixels * 8 + (64 << 20)
    if isinstance(source, (bytes, bytearray)):
        return name, bytes(source)
    try:
        return name, read_regular_file(Path(source), name, max_bytes, limit_for="an image")
    except FileReadError as e:
        raise ImageReadError(e.path, e.reason) from None


def read_image(source, max_pixels: Optional[int] = None, name: Optional[str] = None,
               max_bytes: Optional[int] = None) -> LoadedImage:
    """Decode a path or bytes. Raises :class:`ImageReadError` with a one-line reason.

    Only regular files are read: a device (/dev/zero), a pipe or a socket is refused without being
    opened for reading, so it can neither fill memory nor block. Files over ``max_bytes`` (default,
    with ``max_pixels``: what such an image takes uncompressed, 16-bit RGBA, plus 64 MB) are refused.
    """
    name, data = image_bytes(source, max_pixels, name, max_bytes)
    if not data:
        raise ImageReadError(name, "empty file (0 bytes)")
    try:
        img = _open(data, name)
    except UnidentifiedImageError:
        if data[:4] in (b"II*\0", b"MM\0*"):  # a TIFF layout Pillow lacks, such as 16-bit gray+alpha
            return _read_tiff(data, name, max_pixels)
        raise ImageReadError(name, "not an image (unrecognised format)") from None
    except Image.DecompressionBombError:
        raise too_many_pixels(name, data, max_pixels) from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds on garbage
        raise ImageReadError(name, f"cannot decode: {e}") from None
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageReadError(name, f"{w}x{h} = {w * h:,} pixels exceeds {limit_reason(w * h, max_pixels)}")
    icc = img.info.get("icc_profile")
    fmt = img.format
    metadata = read_metadata(img)
    white_is_zero = fmt == "TIFF" and img.tag_v2.get(_TIFF_PHOTOMETRIC) == 0
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if _is_deep_cmyk(img):  # Pillow's CMYK is 8-bit: 16-bit CMYK TIFFs are converted here, at 16 bits
            array, icc = _read_cmyk16(data, name), None
        else:
            array = _decode_16bit(data, img) if _is_deep_color(img, data) else None
        if array is not None:
            array = _apply_orientation(array, orientation)
        else:
            img = ImageOps.exif_transpose(img)
            if img.mode == "CMYK" and icc and icc_color_space(icc) == "CMYK":
                try:
                    img, icc = _cmyk_to_srgb(img, icc), srgb_profile()
                except ValueError:  # a broken profile: the plain conversion below, untagged, rather than
                    icc = None  # no image at all
            array = _pil_to_array(img, name)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(name, f"truncated or corrupt ({e})") from None
    if white_is_zero and array.dtype == np.uint16:  # Pillow inverts 1- and 8-bit MinIsWhite only
        array = _white_is_zero(array)
    if icc and not icc_fits(icc, array):
        icc = None  # a profile of another color space (a CMYK profile on converted pixels) cannot describe them
    return LoadedImage(array=array, icc_profile=icc, format=fmt, metadata=metadata)


def is_jxl(data: bytes) -> bool:
    """Whether ``data`` starts as a JPEG XL file does (a bare codestream or the ISO box container)."""
    return data[:2] == b"\xff\x0a" or data[:12] == b"\0\0\0\x0cJXL \r\n\x87\n"


def jxl_problem() -> Optional[str]:
    """None where JPEG XL can be read and written (the optional pillow-jxl-plugin is installed; importing it
    registers it with Pillow), else the one line that says what to install."""
    try:
        import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow
    except ImportError:
        return f"JPEG XL needs the optional package {JXL_PACKAGE} (pip install {JXL_PACKAGE}; GPL-3.0-or-later)"
    return None


def _open(data: bytes, name: str) -> Image.Image:
    """``Image.open`` on ``data``; a JPEG XL file loads the optional plugin first, or is refused in one line."""
    if is_jxl(data):
        problem = jxl_problem()
        if problem:
            raise ImageReadError(name, problem)
    return Image.open(io.BytesIO(data))


def _white_is_zero(a: np.ndarray) -> np.ndarray:
    """Gray stored as TIFF's MinIsWhite (0 = white) made MinIsBlack; an alpha channel is kept."""
    a = a.copy()
    top = np.iinfo(a.dtype).max
    if a.ndim == 2:
        return top - a
    a[:, :, 0] = top - a[:, :, 0]
    return a


def _read_tiff(data: bytes, name: str, max_pixels: Optional[int]) -> LoadedImage:
    """The first page of a TIFF through tifffile: 8/16-bit gray, gray+alpha, RGB or RGBA."""
    import tifffile
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            h, w = page.imagelength, page.imagewidth
            if max_pixels is not None and w * h > max_pixels:
                raise ImageReadError(name, f"{w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
                                           f"(--max-pixels)")
            channels = page.samplesperpixel
            if int(page.photometric) == 5 and page.dtype == np.uint16:  # CMYK + alpha, which Pillow cannot open
                orientation = page.tags["Orientation"].value if "Orientation" in page.tags else 1
                return LoadedImage(_apply_orientation(_read_cmyk16(data, name), int(orientation)), format="TIFF",
                                   metadata=read_tifffile_metadata(page))
            if page.dtype not in (np.uint8, np.uint16) or channels > 4 or page.planarconfig != 1:
                raise ImageReadError(name, f"unsupported TIFF ({page.dtype}, {channels} samples per pixel)")
            photometric = int(page.photometric)
            if photometric not in ((0, 1) if channels <= 2 else (2,)):
                raise ImageReadError(name, f"unsupported TIFF (photometric {page.photometric.name} with {channels} "
                                           f"samples per pixel)")
            array = page.asarray().reshape(h, w, channels)
            icc = page.tags["InterColorProfile"].value if "InterColorProfile" in page.tags else None
            orientation = page.tags["Orientation"].value if "Orientation" in page.tags else 1
            metadata = read_tifffile_metadata(page)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile raises many kinds on garbage
        raise ImageReadError(name, f"truncated or corrupt TIFF ({e})") from None
    array = _apply_orientation(array[:, :, 0] if channels == 1 else array, int(orientation))
    if photometric == 0:
        array = _white_is_zero(array)
    icc = bytes(icc) if icc and icc_fits(bytes(icc), array) else None
    return LoadedImage(array=np.ascontiguousarray(array), icc_profile=icc, format="TIFF", metadata=metadata)


def icc_color_space(icc: bytes) -> str:
    """The data color space an ICC profile describes ('RGB', 'GRAY', 'CMYK', ...; '' if unreadable)."""
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else ""


def icc_fits(icc: bytes, array: np.ndarray) -> bool:
    """Whether an ICC profile's color space can describe ``array``'s pixels (GRAY for gray or gray+alpha,
    RGB for RGB or RGBA)."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    return icc_color_space(icc) == ("GRAY" if channels in (1, 2) else "RGB")


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The bytes of an sRGB ICC profile (LittleCMS's built-in one)."""
    from PIL import ImageCms
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cmyk_to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """CMYK pixels through their own ICC profile to sRGB (LittleCMS), with the rendering intent the
    profile declares, not Pillow's naive formula."""
    from PIL import ImageCms
    declared = int.from_bytes(icc[64:68], "big") if len(icc) >= 68 else 0
    intent = ImageCms.Intent(declared if declared in (0, 1, 2, 3) else 0)  # the profile's own, as viewers use
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.profileToProfile(img, source, srgb, outputMode="RGB", renderingIntent=intent)
    except (ImageCms.PyCMSError, OSError) as e:
        raise ValueError(f"unusable CMYK profile: {e}") from None


def _is_deep_color(img: Image.Image, data: bytes) -> bool:
    # Pillow has no 16-bit RGB (or gray+alpha) mode and silently reduces such PNG/TIFF files to 8 bits.
    if img.mode not in ("RGB", "RGBA"):
        return False
    if img.format == "PNG":
        return len(data) > 24 and data[24] == 16  # IHDR bit depth
    if img.format == "TIFF":
        bps = img.tag_v2.get(258, (8,))
        return max(bps if isinstance(bps, tuple) else (bps,)) == 16
    return False


def _is_deep_cmyk(img: Image.Image) -> bool:
    if img.format != "TIFF" or img.mode != "CMYK":
        return False
    bps = img.tag_v2.get(258, (8,))
    return max(bps if isinstance(bps, tuple) else (bps,)) == 16


def _read_cmyk16(data: bytes, name: str) -> np.ndarray:
    """A 16-bit CMYK(A) TIFF's first page as 16-bit RGB(A), with Pillow's own (naive) formula at 16 bits:
    R = (1 - C)(1 - K), G = (1 - M)(1 - K), B = (1 - Y)(1 - K). An ICC profile is not applied: LittleCMS
    through Pillow converts 8-bit CMYK only, and 16 bits are kept rather than the profile's colours."""
    import tifffile
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        channels = page.samplesperpixel
        if page.dtype != np.uint16 or channels not in (4, 5):
            raise ImageReadError(name, f"unsupported 16-bit CMYK TIFF ({page.dtype}, {channels} samples per pixel)")
        h, w = page.imagelength, page.imagewidth
        a = page.asarray()
        a = a.reshape(h, w, channels) if page.planarconfig == 1 else a.reshape(channels, h, w).transpose(1, 2, 0)
    ink = 65535 - a[:, :, :4].astype(np.uint32)  # what each ink leaves of the paper
    rgb = (ink[:, :, :3] * ink[:, :, 3:4] + 32767) // 65535  # rounded, as Pillow's MULDIV255 at 8 bits
    out = rgb.astype(np.uint16)
    return np.ascontiguousarray(np.dstack([out, a[:, :, 4]]) if channels == 5 else out)


def _decode_16bit(data: bytes, img: Image.Image) -> Optional[np.ndarray]:
    """16-bit pixels, exactly, in their own layout: gray+alpha stays gray+alpha, tRNS becomes alpha."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    png_type = data[25] if img.format == "PNG" and len(data) > 25 else None
    if png_type == 4 and arr.ndim == 3 and arr.shape[2] == 4:  # gray + alpha, which OpenCV expands to BGRA
        return np.ascontiguousarray(arr[:, :, [0, 3]])
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    key = img.info.get("transparency")
    if png_type == 2 and isinstance(key, tuple) and arr.ndim == 3 and arr.shape[2] == 3:  # RGB + tRNS colour
        alpha = np.where((arr == np.array(key, np.uint16)).all(axis=2), 0, 65535).astype(np.uint16)
        arr = np.dstack([arr, alpha])
    return arr


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientations 2-8 as flips and rotations (same as ImageOps.exif_transpose).
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1), 6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
           7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1], 8: lambda x: np.swapaxes(x, 0, 1)[::-1]}
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def _pil_to_array(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    key = img.info.get("transparency")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(img, dtype=np.uint16).copy()
        if isinstance(key, int):  # 16-bit gray + tRNS value: gray + alpha
            return np.dstack([gray, np.where(gray == key, 0, 65535).astype(np.uint16)])
        return gray
    if mode == "I":
        a = np.asarray(img)
        if a.min() < 0 or a.max() > 65535:
            raise ImageReadError(name, "unsupported mode 'I' (32-bit integer values outside 0-65535)")
        return a.astype(np.uint16)
    if mode == "1":
        img = img.convert("L")
    elif mode in ("L", "RGB") and key is not None:  # a transparent gray value or colour (tRNS)
        img = img.convert("LA" if mode == "L" else "RGBA")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(name, f"unsupported image mode {mode!r}")
    return np.asarray(img).copy()


def encode_image(array: np.ndarray, ext: str, quality: int = 95, icc_profile: Optional[bytes] = None,
                 metadata: Optional[Metadata] = None) -> bytes:
    """Encode HxW / HxWxC (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) uint8 or uint16 pixels for ``ext``.

    16-bit is kept for PNG and TIFF, in the image's own layout, with its ICC profile; JPEG, WebP, AVIF,
    JPEG XL and GIF get 8 bits (GIF a 256-colour palette). A profile whose color space is not the image's
    (a CMYK or RGB profile on gray pixels) is never embedded. JPEG drops alpha (the CLI says so).
    ``metadata`` (EXIF, XMP, IPTC: a :class:`LoadedImage`'s ``.metadata``) goes where the format holds it,
    with the orientation reset to 1 (the pixels are upright) and the pixel dimensions set to ``array``'s
    size, and an EXIF thumbnail, where the source had one, made anew from ``array`` (see
    :mod:`swinir_app.metadata`); None writes pixels and the ICC profile only (``--strip-metadata``).
    Raises KeyError for an unknown extension, ValueError for .jxl without its plugin (:func:`jxl_problem`).
    """
    ext = ext.lower()
    if WRITABLE[ext] == "JXL":
        problem = jxl_problem()
        if problem:
            raise ValueError(problem)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if icc_profile and not icc_fits(icc_profile, array):
        icc_profile = None
    size = (array.shape[1], array.shape[0])
    if array.dtype == np.uint16 and ext in (".png", ".tif", ".tiff"):
        return finish_encoded(_encode_16bit(array, ext, icc_profile, metadata, size), "PNG" if ext == ".png"
                              else "TIFF", metadata, size, deep=True, pixels=array)
    if array.dtype == np.uint16:  # JPEG/WebP are 8-bit formats
        array = np.round(array / 257.0).astype(np.uint8)
    img = gif_frame(array) if ext == ".gif" else Image.fromarray(array)
    if ext in (".jpg", ".jpeg") and img.mode in ("RGBA", "LA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")  # JPEG has no alpha
    fmt = WRITABLE[ext]
    kwargs = {"icc_profile": icc_profile} if icc_profile and fmt != "GIF" else {}
    if "transparency" in img.info:
        kwargs["transparency"] = img.info["transparency"]
    if fmt in QUALITY_FORMATS:
        kwargs["quality"] = quality
    if fmt == "PNG":
        kwargs["compress_level"] = 3  # big outputs: speed over a few percent of size
    if fmt == "AVIF":
        kwargs["speed"] = 8  # libavif's 0 (slowest) to 10: big outputs, little loss in size at 8
    if fmt == "JXL":
        kwargs["effort"] = 4
    kwargs.update(save_options(metadata, fmt, size, pixels=array))
    out = io.BytesIO()
    try:
        img.save(out, format=fmt, **kwargs)
    except ValueError as e:  # EXIF or XMP over a JPEG segment's 64 KB: the pixels rather than nothing
        if "too long" not in str(e):
            raise
        out = io.BytesIO()
        img.save(out, format=fmt, **{**kwargs, **save_options(metadata, fmt, size, small=True)})
    return finish_encoded(out.getvalue(), fmt, metadata, size)


def gif_frame(array: np.ndarray) -> Image.Image:
    """An HxW or HxWxC uint8 image as GIF holds it: a palette image of 255 colours (median cut, with
    Floyd-Steinberg dithering) and, where there is alpha, index 255 for the pixels under half opacity
    (``info["transparency"]``): GIF's transparency is one bit, and Pillow's own conversion of many
    colours and soft alpha can drop it."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        color, alpha = a[:, :, :-1], a[:, :, -1]
    else:
        color, alpha = a, None
    if color.ndim == 3 and color.shape[2] == 1:
        color = color[:, :, 0]
    rgb = Image.fromarray(np.ascontiguousarray(color)).convert("RGB")
    quantized = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    if alpha is None:
        return quantized
    index = np.asarray(quantized).copy()
    index[alpha < 128] = 255
    frame = Image.fromarray(index, "P")
    palette = quantized.getpalette()[:3 * 255]
    frame.putpalette(palette + [0] * (3 * 256 - len(palette)))
    frame.info["transparency"] = 255
    return frame


def _encode_16bit(a: np.ndarray, ext: str, icc: Optional[bytes], metadata: Optional[Metadata] = None,
                  size: Tuple[int, int] = (0, 0)) -> bytes:
    """16-bit PNG (OpenCV; pypng for gray+alpha and for the iCCP chunk) or TIFF (tifffile, with ICC; the
    metadata's IFD0 tags, XMP and IPTC as extra tags)."""
    channels = 1 if a.ndim == 2 else a.shape[2]
    if ext in (".tif", ".tiff"):
        import tifffile

        from .metadata import tifffile_tags
        out = io.BytesIO()
        tifffile.imwrite(out, a, photometric="minisblack" if channels <= 2 else "rgb", compression="zlib",
                         extrasamples=("unassalpha",) if channels in (2, 4) else None, iccprofile=icc,
                         extratags=tifffile_tags(metadata, size))
        return out.getvalue()
    import png  # pypng: PNG chunks, and 16-bit gray+alpha, which OpenCV cannot write
    if channels == 2:
        out = io.BytesIO()
        png.Writer(a.shape[1], a.shape[0], greyscale=True, alpha=True, bitdepth=16).write(
            out, a.reshape(a.shape[0], -1))
        data = out.getvalue()
    else:
        bgr = a if channels == 1 else cv2.cvtColor(a, cv2.COLOR_RGBA2BGRA if channels == 4 else cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".png", bgr)
        if not ok:
            raise ValueError("cannot encode .png")
        data = buf.tobytes()
    if not icc:
        return data
    chunks = list(png.Reader(bytes=data).chunks())
    iccp = b"ICC profile\0\0" + zlib.compress(icc)  # name, separator, compression method 0 (zlib)
    out = io.BytesIO()
    png.write_chunks(out, [chunks[0], (b"iCCP", iccp), *chunks[1:]])  # right after IHDR, before IDAT
    return out.getvalue()


def write_image(path: Union[str, os.PathLike], array: np.ndarray, quality: int = 95,
                icc_profile: Optional[bytes] = None, overwrite: bool = True,
                metadata: Optional[Metadata] = None) -> None:
    """Encode ``array`` for ``path``'s extension and write it atomically.

    Args:
        array: HxW or HxWxC (C = 1 to 4) uint8 or uint16 pixels, RGB(A) order. 16-bit stays 16-bit in
            PNG and TIFF; JPEG and WebP get it rounded to 8 bits.
        quality: JPEG/WebP/AVIF/JPEG XL quality, 1-100.
        icc_profile: embedded where the format allows.
        metadata: the source's EXIF, XMP and IPTC (``LoadedImage.metadata``), written where the format
            holds them, orientation 1 and dimensions updated (see :func:`encode_image`); None: none.
        overwrite: False raises FileExistsError if ``path`` exists, without replacing it.

    Raises:
        KeyError: an extension other than .png, .jpg/.jpeg, .webp, .tif/.tiff, .gif, .avif, .jxl.
        ValueError: .jxl without the optional pillow-jxl-plugin.
        OSError: the folder cannot be written.
    """
    path = Path(path)
    atomic_write(path, encode_image(array, path.suffix, quality, icc_profile, metadata), overwrite=overwrite)
