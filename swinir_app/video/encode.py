"""Encoders: which one a file gets, whether settings work, and the options, pixel format and frame rate
each is opened with."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple

from .reading import CONTAINERS, VideoError, _reason

DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"


def default_codec(path) -> str:
    """The encoder used for ``path`` when none is asked for: VP9 in WebM, H.264 elsewhere."""
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
# The encoders that take a constant rate factor, and its largest value.
CRF_RANGE = {"libx264": 51, "libx264rgb": 51, "libx265": 51, "libvpx-vp9": 63, "libvpx": 63, "libaom-av1": 63,
             "libsvtav1": 63}


def encoder_problem(codec: str, crf: int, preset: str) -> Optional[str]:
    """Why these encoder settings cannot work (one line), or None: checked before any frame is restored."""
    import av
    if codec not in av.codecs_available:
        return (f"--video-codec {codec}: not an encoder of this FFmpeg build (e.g. libx264, libx265, libvpx-vp9, "
                f"ffv1, mpeg4)")
    try:
        kind = av.Codec(codec, "w").type
    except Exception:  # noqa: BLE001 - a decoder-only name
        kind = None
    if kind != "video":
        return f"--video-codec {codec}: not a video encoder"
    top = CRF_RANGE.get(encoder_name(codec))
    if top is not None and not 0 <= crf <= top:
        return f"--crf {crf}: {codec} takes 0 to {top}"
    if encoder_name(codec) in ("libx264", "libx264rgb", "libx265") and preset not in X264_PRESETS:
        return f"--preset {preset}: not one of {', '.join(X264_PRESETS)}"
    return None


def encoder_name(codec: str) -> str:
    """The encoder FFmpeg picks for ``codec``: "h264" is libx264, "vp9" libvpx-vp9 (``codec`` if unknown)."""
    import av
    try:
        return av.Codec(codec, "w").name
    except Exception:  # noqa: BLE001 - not an encoder: encoder_problem says so
        return codec


def format_bits(fmt) -> int:
    """Bits per sample of a pixel format (an ``av.VideoFormat``: 8 for yuv420p, 10 for yuv420p10le; 8 if None)."""
    return max((c.bits for c in fmt.components), default=8) if fmt is not None else 8


def _pixel_format(codec: str, crf: int, deep: bool = False) -> str:
    """yuv420p, as players expect; 4:4:4 for x264/x265 at crf 0 (lossless: the colour is not halved
    either); RGB for the lossless codecs (FFV1). For a ``deep`` (over 8-bit) source, the 10-bit
    variant where the encoder has it (16-bit RGB for FFV1), else the 8-bit one."""
    import av
    formats = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    if crf == 0 and codec in ("libx264", "libx265"):
        wanted = ("yuv444p10le", "yuv444p") if deep else ("yuv444p",)
    elif codec not in ("ffv1", "libx264rgb", "png", "qtrle"):
        wanted = ("yuv420p10le", "yuv420p") if deep else ("yuv420p",)
    else:
        wanted = ()
    wanted += (("gbrp16le", "gbrp10le", "rgb48le") if deep else ()) + ("gbrp", "rgb24", "bgr0", "yuv444p")
    for name in wanted:
        if name in formats:
            return name
    return formats[0] if formats else "yuv420p"


# FFmpeg's MPEG-style encoders: no crf, and a default bitrate of 200 kb/s whatever the frame size
# (mpeg4: 41 -> 30 dB on a 384x256 clip); a fixed quantiser instead: 2, the finest useful (of 1 to 31).
QSCALE_ENCODERS = ("mpeg4", "mpeg1video", "mpeg2video", "msmpeg4", "msmpeg4v2", "h261", "h263", "h263p", "flv",
                   "rv10", "rv20", "wmv1", "wmv2", "mjpeg", "amv")
QSCALE = 2
BITS_PER_PIXEL = 0.3  # for the other encoders without a quality setting (hardware ones): bits per pixel per frame


def quality_without_crf(codec: str) -> str:
    """What sets the quality of an encoder that takes no crf (for the note that --crf is not used)."""
    name = encoder_name(codec)
    if name in QSCALE_ENCODERS:
        return f"it runs at a fixed quantiser of {QSCALE} (the finest useful of 1 to 31)"
    if name in LOSSLESS_ENCODERS:
        return "it is lossless"
    if name == "dnxhd":
        return "its profile's bitrate applies"
    return f"a bitrate from the frame size applies ({BITS_PER_PIXEL} bit per pixel per frame)"


def _options(codec: str, crf: int, preset: str, segment: bool, size: Tuple[int, int] = (0, 0),
             rate=None, log: bool = False) -> dict:
    """The encoder's options: ``crf`` and ``preset`` where it takes them, else a quality derived from
    ``size`` (width, height) and ``rate`` (frames per second) rather than FFmpeg's fixed default bitrate.
    ``log``: x265 prints its settings and a summary itself (once per time slice): only with it."""
    name = encoder_name(codec)
    if name == "libx265":
        return {"crf": str(crf), "preset": preset, **({} if log else {"x265-params": "log-level=error"})}
    if name in ("libx264", "libx264rgb"):
        return {"crf": str(crf), "preset": preset}
    if name in ("libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        return {"crf": str(crf), "b": "0"}
    if name in QSCALE_ENCODERS:
        # The qscale flag alone takes each frame's own quality, which PyAV leaves at 0: pin the range.
        return {"qmin": str(QSCALE), "qmax": str(QSCALE)}
    if name in LOSSLESS_ENCODERS or name == "dnxhd":  # dnxhd takes only its profiles' bitrates
        return {}
    fps = min(float(rate or 25), 60.0)  # a VFR stream's average rate can read as 1000
    return {"b": str(max(200_000, int(size[0] * size[1] * fps * BITS_PER_PIXEL)))}


# JPEG-based encoders: their YUV is full range (FFmpeg refuses limited range as non-standard).
FULL_RANGE_ENCODERS = ("mjpeg", "amv")


def _cannot_hold(container: str, codec: str) -> str:
    return f"the {container} container cannot hold {codec} video; choose another --video-codec"


def container_problem(codec: Optional[str], dst) -> Optional[str]:
    """Why ``dst``'s container cannot hold ``codec`` video (one line), or None: checked before a video is
    restored (in time slices, the NUT files hold it and only the join would fail)."""
    import io

    import av
    codec = codec or default_codec(dst)
    fmt = CONTAINERS.get(Path(dst).suffix.lower())
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as probe_out:
            try:
                probe_out.add_stream(codec)
            except ValueError:
                return _cannot_hold(probe_out.format.name, codec)
    except Exception:  # noqa: BLE001 - nothing written: the restore itself says what is wrong
        return None
    return None


def _standard_rate(codec: str, rate, time_base) -> Optional[Fraction]:
    """For an encoder that takes only some frame rates (MPEG-1/2: 25, 30000/1001, ...), the one nearest
    ``rate``; for one whose time base is 16-bit (MPEG-4 Part 2, H.263) where the stream's is finer (MP4's
    1/90000), ``rate`` itself; None for the others, which take the stream's own time base."""
    import av
    try:
        rates = list(av.Codec(codec, "w").frame_rates or [])
    except Exception:  # noqa: BLE001 - encoder_problem has said why
        return None
    if encoder_name(codec) == "mpeg1video":
        rates = rates[:8]  # the rest (5, 10, 12, 15) are Xing's, which FFmpeg refuses as unofficial
    if not rates:
        if encoder_name(codec) in QSCALE_ENCODERS and Fraction(time_base).denominator > 65535:
            return Fraction(rate).limit_denominator(1001)
        return None
    return Fraction(min(rates, key=lambda r: abs(Fraction(r) - Fraction(rate))))


def _open_encoder(out, codec: str, src) -> None:
    """Open the encoder (and write the header) now, so that settings it refuses fail in one line with
    FFmpeg's own reason ("MPEG-1/2 does not support 12800/1 fps"), which it only logs."""
    import av
    import av.logging
    prior = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # PyAV keeps the reason only while it listens to the log
    try:
        with av.logging.Capture(local=False) as logs:  # not printed: said in the error below
            out.start_encoding()
    except av.FFmpegError as e:
        said = [" ".join(m.split()) for level, _, m in logs if level <= av.logging.ERROR and m.strip()]
        reason = "; ".join(dict.fromkeys(said)) or _reason(e)
        raise VideoError(src, f"the encoder {codec} cannot be opened with these settings ({reason})") from None
    finally:
        av.logging.set_level(prior)


LOSSLESS_ENCODERS = ("ffv1", "ffvhuff", "huffyuv", "utvideo", "magicyuv", "png", "apng", "qtrle", "rawvideo",
                     "ljpeg", "jpegls", "zmbv", "libx264rgb", "v210", "v308", "v408", "v410", "r10k", "r210",
                     "avrp", "qoi", "tiff", "bmp", "sgi", "targa", "ppm", "pam", "exr", "dpx")
