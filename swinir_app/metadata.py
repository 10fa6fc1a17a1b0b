"""A photo's EXIF, XMP and IPTC, read with its pixels and written again with the restored ones.

Kept as raw bytes (:class:`Metadata`) and put back through Pillow's own ``exif=`` and ``xmp=`` save
options where the format holds them: JPEG (APP1; IPTC as a Photoshop APP13 segment), PNG (``eXIf``;
XMP as the ``iTXt`` chunk "XML:com.adobe.xmp"), WebP, AVIF, JPEG XL (boxes/chunks), TIFF (the EXIF
and GPS IFDs, XMP tag 700, IPTC tag 33723). GIF holds none. On the way out the orientation is reset to 1
(the pixels were turned upright when read) and the pixel dimensions are set to the written size, in the
EXIF (ImageWidth/ImageLength, PixelXDimension/PixelYDimension, where present) and in the XMP. An EXIF
thumbnail (IFD1, a camera's 160x120 JPEG) would show the picture before the restore: where the source had
one, a new one is made from the written pixels, as large as the source's (turned like the output), and
written where the EXIF is a block of its own (JPEG, PNG, WebP, AVIF, JPEG XL); a TIFF, whose IFD1 would be
a second page, and an output whose pixels are not given (animations) get none.
"""
from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from PIL import ExifTags, Image

_ORIENTATION, _WIDTH, _LENGTH = 0x0112, 0x0100, 0x0101
_EXIF_IFD, _GPS_IFD, _PIXEL_X, _PIXEL_Y = 0x8769, 0x8825, 0xA002, 0xA003
_MAKER_NOTE = 0x927C
_XMP_TAG, _IPTC_TAG, _PHOTOSHOP_TAG = 700, 33723, 34377
# A TIFF's own layout tags, which are its pixels' description and not the photo's metadata: left out of the
# EXIF kept from a TIFF source (the written file has its own).
_TIFF_LAYOUT = {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291, 317,
                320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 530, 531, 532, 34675, 37724,
                _XMP_TAG, _IPTC_TAG, _PHOTOSHOP_TAG}
_PHOTOSHOP = b"Photoshop 3.0\0"
_JPEG_SEGMENT = 65533  # the most bytes a JPEG marker segment holds, length field included
_THUMB_OFFSET, _THUMB_LENGTH, _STRIP_OFFSETS = 0x0201, 0x0202, 0x0111  # IFD1: where the thumbnail's bytes are
_THUMB_DEFAULT, _THUMB_MOST = (160, 120), 640  # a thumbnail of unknown size; the largest side made
_THUMB_QUALITY = 85


@dataclass
class Metadata:
    """A source image's metadata, raw.

    Attributes:
        exif: the EXIF block, a TIFF structure (possibly with JPEG's ``Exif\\0\\0`` prefix), as Pillow gives it.
        xmp: the XMP packet (UTF-8 XML).
        iptc: the IPTC-IIM records (the bytes of Photoshop's resource 0x0404, or of TIFF's tag 33723).
    """

    exif: Optional[bytes] = None
    xmp: Optional[bytes] = None
    iptc: Optional[bytes] = None

    def __bool__(self) -> bool:
        return bool(self.exif or self.xmp or self.iptc)


def read_metadata(img: Image.Image) -> Optional[Metadata]:
    """The EXIF, XMP and IPTC of an opened image (None where it has none); never raises."""
    try:
        exif = _read_exif(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block is left behind, never the image
        exif = None
    xmp = img.info.get("xmp")
    if isinstance(xmp, tuple) and len(xmp) == 1:
        xmp = xmp[0]
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    try:
        iptc = _read_iptc(img)
    except Exception:  # noqa: BLE001
        iptc = None
    m = Metadata(exif=exif or None, xmp=bytes(xmp) if isinstance(xmp, (bytes, bytearray)) and xmp else None,
                 iptc=iptc or None)
    return m if m else None


def _read_exif(img: Image.Image) -> Optional[bytes]:
    if img.format == "TIFF":  # the file's own IFD0: its metadata tags, without the layout ones
        exif = img.getexif()
        kept = Image.Exif()
        kept.load(exif.tobytes())
        for tag in list(kept):
            if tag in _TIFF_LAYOUT:
                del kept[tag]
        return kept.tobytes() if len(kept) else None
    raw = img.info.get("exif")
    if isinstance(raw, (bytes, bytearray)) and raw:
        return bytes(raw)
    exif = img.getexif()  # e.g. a PNG's ImageMagick "Raw profile type exif" text chunk
    return exif.tobytes() if len(exif) else None


def _read_iptc(img: Image.Image) -> Optional[bytes]:
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        if _IPTC_TAG not in tags:
            return None
        v = tags[_IPTC_TAG]
        if isinstance(v, (bytes, bytearray)):
            return bytes(v)
        if isinstance(v, tuple) and all(isinstance(x, int) for x in v):  # stored as LONGs (Photoshop)
            return struct.pack(f"{tags._endian}{len(v)}L", *v)
        return None
    for marker, payload in getattr(img, "applist", []):
        if marker == "APP13" and payload.startswith(_PHOTOSHOP):
            found = _photoshop_resource(payload[len(_PHOTOSHOP):], 0x0404)
            if found:
                return found
    return None


def _photoshop_resource(data: bytes, wanted: int) -> Optional[bytes]:
    """One resource of a Photoshop image-resource block (8BIM, id, Pascal name padded to even, size, data)."""
    pos = 0
    while pos + 12 <= len(data) and data[pos:pos + 4] == b"8BIM":
        rid = int.from_bytes(data[pos + 4:pos + 6], "big")
        name_len = data[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)
        size = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        if rid == wanted:
            return data[pos:pos + size]
        pos += size + (size & 1)
    return None


def _exif(metadata: Metadata, size: Tuple[int, int], upright: bool = True) -> Optional[Image.Exif]:
    """The EXIF to write: orientation 1 (where ``upright``) and the dimension tags set to ``size``."""
    if not metadata.exif:
        return None
    exif = Image.Exif()
    try:
        exif.load(metadata.exif)
    except Exception:  # noqa: BLE001 - unreadable: left behind
        return None
    if not len(exif):
        return None
    w, h = size
    if upright and _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    if _WIDTH in exif:
        exif[_WIDTH] = w
    if _LENGTH in exif:
        exif[_LENGTH] = h
    if _EXIF_IFD in exif:
        sub = exif.get_ifd(_EXIF_IFD)
        if _PIXEL_X in sub:
            sub[_PIXEL_X] = w
        if _PIXEL_Y in sub:
            sub[_PIXEL_Y] = h
    return exif


def _xmp(metadata: Metadata, size: Tuple[int, int], upright: bool = True) -> Optional[bytes]:
    """The XMP packet with tiff:Orientation 1 and the dimension properties set to ``size`` (attribute or
    element form)."""
    if not metadata.xmp:
        return None
    w, h = size
    text = metadata.xmp.decode("utf-8", "replace")
    values = {"exif:PixelXDimension": w, "exif:PixelYDimension": h, "tiff:ImageWidth": w, "tiff:ImageLength": h}
    if upright:
        values["tiff:Orientation"] = 1
    for prop, value in values.items():
        text = re.sub(rf'({re.escape(prop)}\s*=\s*")[^"]*(")', rf"\g<1>{value}\g<2>", text)
        text = re.sub(rf"(<{re.escape(prop)}>)[^<]*(</{re.escape(prop)}>)", rf"\g<1>{value}\g<2>", text)
    return text.encode("utf-8")


def _without_maker_note(exif: Image.Exif) -> Image.Exif:
    if _EXIF_IFD in exif:
        exif.get_ifd(_EXIF_IFD).pop(_MAKER_NOTE, None)
    return exif


def _exif_bytes(exif: Image.Exif, metadata: Metadata, pixels: Optional[np.ndarray]) -> bytes:
    """``exif`` as a block (Pillow writes IFD0 and its sub-IFDs, never IFD1), with a thumbnail made from
    ``pixels`` where the source's EXIF had one."""
    raw = exif.tobytes()
    if pixels is None or not metadata.exif:
        return raw
    try:
        box = _thumbnail_box(metadata.exif)
        return raw if box is None else _with_thumbnail(raw, _thumbnail_jpeg(pixels, box))
    except Exception:  # noqa: BLE001 - a thumbnail that cannot be made is left out, never the EXIF
        return raw


def _thumbnail_box(exif: bytes) -> Optional[Tuple[int, int]]:
    """The (long, short) sides of the thumbnail in an EXIF block's IFD1 (a camera's, typically 160x120):
    those of its JPEG where it decodes, else of its tags, else 160x120; None where it holds no thumbnail."""
    loaded = Image.Exif()
    loaded.load(exif)
    ifd1 = loaded.get_ifd(ExifTags.IFD.IFD1)
    tiff = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    offset, length = ifd1.get(_THUMB_OFFSET), ifd1.get(_THUMB_LENGTH)
    size = None
    if isinstance(offset, int) and isinstance(length, int) and length > 0:
        try:
            with Image.open(io.BytesIO(tiff[offset:offset + length])) as thumb:
                size = thumb.size
        except Exception:  # noqa: BLE001 - a broken thumbnail: one of the usual size is made
            pass
    elif _STRIP_OFFSETS not in ifd1:  # IFD1 tags without an image
        return None
    if size is None and isinstance(ifd1.get(_WIDTH), int) and isinstance(ifd1.get(_LENGTH), int):
        size = (ifd1[_WIDTH], ifd1[_LENGTH])
    if size is None or min(size) < 1:
        size = _THUMB_DEFAULT
    return min(max(size), _THUMB_MOST), min(min(size), _THUMB_MOST)


def _thumbnail_jpeg(pixels: np.ndarray, box: Tuple[int, int]) -> bytes:
    """A baseline JPEG of ``pixels`` (HxW or HxWxC, uint8 or uint16; alpha left out) fitted inside ``box``
    (long, short), turned like the pixels: a portrait image gets a portrait thumbnail."""
    a = np.asarray(pixels)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    if a.ndim == 3:
        if a.shape[2] in (2, 4):
            a = a[:, :, :-1]
        if a.shape[2] == 1:
            a = a[:, :, 0]
    h, w = a.shape[:2]
    long, short = box
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8))
    img.thumbnail((long, short) if w >= h else (short, long), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=_THUMB_QUALITY)
    return out.getvalue()


def _with_thumbnail(raw: bytes, jpeg: bytes) -> bytes:
    """An EXIF block (as Pillow writes it: IFD0 and its data, no next IFD) with an IFD1 appended that holds
    ``jpeg`` (Compression 6, 72 dpi, JPEGInterchangeFormat and its length), in the block's byte order."""
    prefix = b"Exif\0\0" if raw.startswith(b"Exif\0\0") else b""
    tiff = bytearray(raw[len(prefix):])
    e = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(e + "L", tiff, 4)[0]
    next_at = ifd0 + 2 + 12 * struct.unpack_from(e + "H", tiff, ifd0)[0]
    if next_at + 4 > len(tiff) or struct.unpack_from(e + "L", tiff, next_at)[0]:
        return raw  # not the layout expected: the EXIF without a thumbnail
    if len(tiff) % 2:  # IFDs start on a word boundary
        tiff += b"\0"
    start = len(tiff)
    entries = [(0x0103, 3, struct.pack(e + "HH", 6, 0)),  # Compression: JPEG (old-style, as EXIF wants)
               (0x011A, 5, b""), (0x011B, 5, b""),  # XResolution, YResolution: at ``rational``
               (0x0128, 3, struct.pack(e + "HH", 2, 0)),  # ResolutionUnit: inches
               (_THUMB_OFFSET, 4, b""), (_THUMB_LENGTH, 4, struct.pack(e + "L", len(jpeg)))]
    rational = start + 2 + 12 * len(entries) + 4
    data = rational + 16
    values = {0x011A: rational, 0x011B: rational + 8, _THUMB_OFFSET: data}
    struct.pack_into(e + "L", tiff, next_at, start)
    tiff += struct.pack(e + "H", len(entries))
    for tag, typ, value in entries:
        tiff += struct.pack(e + "HHL", tag, typ, 1) + (value or struct.pack(e + "L", values[tag]))
    tiff += struct.pack(e + "L", 0) + struct.pack(e + "4L", 72, 1, 72, 1) + jpeg
    return prefix + bytes(tiff)


def save_options(metadata: Optional[Metadata], fmt: str, size: Tuple[int, int], small: bool = False,
                 upright: bool = True, pixels: Optional[np.ndarray] = None) -> dict:
    """Pillow save options that put ``metadata`` into a ``fmt`` file of ``size`` (width, height).

    ``small``: what fits JPEG's 64 KB segments (the MakerNote and the thumbnail left out of the EXIF, an
    XMP packet over a segment left out), for a second try after Pillow refused "too long" data. ``upright``:
    the orientation is reset to 1 (the pixels were turned when read); False keeps it (frames, which are not
    turned). ``pixels``: the written image, which the EXIF thumbnail is made from where the source had one
    (None: the thumbnail is left out).
    """
    if not metadata or fmt == "GIF":
        return {}
    exif = _exif(metadata, size, upright)
    xmp = _xmp(metadata, size, upright)
    if small and exif is not None:
        exif = _without_maker_note(exif)
        if len(exif.tobytes()) > _JPEG_SEGMENT - 8:
            exif = None
    if small and xmp is not None and len(xmp) > _JPEG_SEGMENT - 40:
        xmp = None
    opts = {}
    if fmt == "TIFF":  # Pillow writes the EXIF's tags into IFD0, with the EXIF and GPS IFDs as sub-IFDs
        tags = exif if exif is not None else Image.Exif()
        for tag in _TIFF_LAYOUT & set(tags):
            del tags[tag]
        if xmp:
            tags[_XMP_TAG] = xmp
        if metadata.iptc:
            tags[_IPTC_TAG] = metadata.iptc
        return {"exif": tags} if len(tags) else {}
    if fmt == "AVIF" and exif is not None and exif.get(_ORIENTATION) == 1:
        del exif[_ORIENTATION]  # else Pillow moves it to AVIF's own boxes and writes the EXIF anew, without IFD1
    if exif is not None:
        opts["exif"] = _exif_bytes(exif, metadata, None if small else pixels)
    if xmp:
        if fmt == "PNG":
            from PIL.PngImagePlugin import PngInfo
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
            opts["pnginfo"] = info
        else:
            opts["xmp"] = xmp
    return opts


def finish_encoded(data: bytes, fmt: str, metadata: Optional[Metadata], size: Tuple[int, int],
                   deep: bool = False, upright: bool = True, pixels: Optional[np.ndarray] = None) -> bytes:
    """What Pillow's options cannot add: a JPEG's IPTC (a Photoshop APP13 segment), and the EXIF (its
    thumbnail made from ``pixels``, as :func:`save_options`) and XMP of a 16-bit PNG (``deep``: written by
    OpenCV or pypng, not Pillow)."""
    if not metadata:
        return data
    if fmt == "JPEG" and metadata.iptc and len(metadata.iptc) < _JPEG_SEGMENT - 40:
        return _insert_app13(data, metadata.iptc)
    if fmt == "PNG" and deep:
        return _png_chunks(data, metadata, size, upright, pixels)
    return data


def _insert_app13(jpeg: bytes, iptc: bytes) -> bytes:
    """``jpeg`` with an APP13 "Photoshop 3.0" segment holding IPTC resource 0x0404, after its APPn segments."""
    resource = b"8BIM" + (0x0404).to_bytes(2, "big") + b"\0\0" + len(iptc).to_bytes(4, "big") + iptc
    if len(iptc) & 1:
        resource += b"\0"
    payload = _PHOTOSHOP + resource
    segment = b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    return jpeg[:pos] + segment + jpeg[pos:]


def _png_chunks(png_data: bytes, metadata: Metadata, size: Tuple[int, int], upright: bool,
                pixels: Optional[np.ndarray] = None) -> bytes:
    """A PNG with ``eXIf`` and an ``iTXt`` XMP chunk added right after IHDR."""
    exif = _exif(metadata, size, upright)
    xmp = _xmp(metadata, size, upright)
    extra = b""
    if exif is not None:
        raw = _exif_bytes(exif, metadata, pixels)
        extra += _chunk(b"eXIf", raw[6:] if raw.startswith(b"Exif\0\0") else raw)
    if xmp:
        extra += _chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp)
    if not extra:
        return png_data
    ihdr_end = 8 + 8 + int.from_bytes(png_data[8:12], "big") + 4  # signature, IHDR's length+type, data, CRC
    return png_data[:ihdr_end] + extra + png_data[ihdr_end:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def read_tifffile_metadata(page) -> Optional[Metadata]:
    """The XMP and IPTC of a TIFF page that Pillow cannot open (its EXIF stays behind: tifffile gives no
    raw EXIF block)."""
    def raw(tag):
        if tag not in page.tags:
            return None
        v = page.tags[tag].value
        return bytes(v) if isinstance(v, (bytes, bytearray)) else np.asarray(v).astype(">u4").tobytes() \
            if tag == 33723 and not isinstance(v, (str, bytes)) else None
    m = Metadata(xmp=raw(700), iptc=raw(33723))
    return m if m else None


def tifffile_tags(metadata: Optional[Metadata], size: Tuple[int, int]) -> List[tuple]:
    """tifffile ``extratags`` for a 16-bit TIFF: the EXIF's IFD0 text tags (Make, Model, DateTime, Artist,
    Copyright, ...), XMP (700) and IPTC (33723). The EXIF and GPS sub-IFDs are not written (tifffile has no
    way to): see docs/upscaling.md."""
    if not metadata:
        return []
    tags = []
    exif = _exif(metadata, size)
    if exif is not None:
        for tag in (270, 271, 272, 305, 306, 315, 33432):  # ImageDescription ... Copyright: ASCII
            value = exif.get(tag)
            if isinstance(value, str) and value:
                tags.append((tag, "s", 0, value, True))
    xmp = _xmp(metadata, size)
    if xmp:
        tags.append((_XMP_TAG, "B", len(xmp), xmp, True))
    if metadata.iptc:
        tags.append((_IPTC_TAG, "B", len(metadata.iptc), metadata.iptc, True))
    return tags
