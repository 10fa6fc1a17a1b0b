"""A photo's EXIF, XMP and IPTC, read with its pixels and written again with the restored ones.

Kept as raw bytes (:class:`Metadata`) and put back through Pillow's own ``exif=`` and ``xmp=`` save
options where the format holds them: JPEG (APP1; IPTC as a Photoshop APP13 segment), PNG (``eXIf``;
XMP as the ``iTXt`` chunk "XML:com.adobe.xmp"), WebP, AVIF, JPEG XL (boxes/chunks), TIFF (the EXIF
and GPS IFDs, XMP tag 700, IPTC tag 33723). GIF holds none. On the way out the orientation is reset to 1
(the pixels were turned upright when read) and the pixel dimensions are set to the written size, in the
EXIF (ImageWidth/ImageLength, PixelXDimension/PixelYDimension, where present) and in the XMP.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

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


def save_options(metadata: Optional[Metadata], fmt: str, size: Tuple[int, int], small: bool = False,
                 upright: bool = True) -> dict:
    """Pillow save options that put ``metadata`` into a ``fmt`` file of ``size`` (width, height).

    ``small``: what fits JPEG's 64 KB segments (the MakerNote left out of the EXIF, an XMP packet over a
    segment left out), for a second try after Pillow refused "too long" data. ``upright``: the orientation
    is reset to 1 (the pixels were turned when read); False keeps it (frames, which are not turned).
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
    if exif is not None:
        opts["exif"] = exif.tobytes()
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
                   deep: bool = False, upright: bool = True) -> bytes:
    """What Pillow's options cannot add: a JPEG's IPTC (a Photoshop APP13 segment), and the EXIF and XMP
    of a 16-bit PNG (``deep``: written by OpenCV or pypng, not Pillow)."""
    if not metadata:
        return data
    if fmt == "JPEG" and metadata.iptc and len(metadata.iptc) < _JPEG_SEGMENT - 40:
        return _insert_app13(data, metadata.iptc)
    if fmt == "PNG" and deep:
        return _png_chunks(data, metadata, size, upright)
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


def _png_chunks(png_data: bytes, metadata: Metadata, size: Tuple[int, int], upright: bool) -> bytes:
    """A PNG with ``eXIf`` and an ``iTXt`` XMP chunk added right after IHDR."""
    exif = _exif(metadata, size, upright)
    xmp = _xmp(metadata, size, upright)
    extra = b""
    if exif is not None:
        raw = exif.tobytes()
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
