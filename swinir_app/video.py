"""Videos, streamed: decode, restore and encode overlap in threads, and memory holds a few frames.

Built on PyAV (FFmpeg's libraries, bundled in its wheel). The output keeps the input's container,
frame count, timestamps (so its frame rate and time base) and display rotation; audio and subtitle
streams are copied packet by packet, without re-encoding, so sound stays in sync. The video is
encoded with H.264 (``libx264``, yuv420p) by default (VP9 in WebM), at ``crf``/``preset``; at crf 0
(lossless) x264 and x265 keep 4:4:4 colour. Videos deeper than 8 bits (10-bit HEVC from phones) are
restored in 16-bit RGB and written 10-bit (yuv420p10le) where the encoder has it. The colour description
(primaries, transfer, matrix, range) is kept, and frames go to RGB and back through their own matrix and range.

A long video can be cut by time into segments that separate processes restore
(:func:`restore_video` with ``segment=(k, n)``, written to NUT files that keep the encoder's
timestamps exactly), then joined without re-encoding (:func:`join_segments`), with the input's
audio muxed back in. Segments are encoded without B-frames, so their packets join in order.

Outputs are written through :func:`swinir_app.images.atomic_file`: a file that cannot be decoded,
stops early, or is interrupted leaves no output behind.
"""
from __future__ import annotations

import heapq
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from .images import ImageReadError, atomic_file

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi")
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi", ".nut": "nut"}
DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
_QUEUE = 4  # frames in flight between the decode, restore and encode threads


def default_codec(path) -> str:
    """The encoder used for ``path`` when none is asked for: VP9 in WebM, H.264 elsewhere."""
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


class VideoError(ImageReadError):
    """A video that cannot be restored; ``str()`` is one line naming the file and the reason."""


@dataclass
class VideoInfo:
    """What the container says of a video: its first video stream and the others."""

    width: int
    height: int
    frames: int  # as the container declares it (0 where it does not)
    rate: Fraction  # average frames per second
    seconds: float  # duration (0.0 if unknown)
    rotation: int  # degrees, as players turn the picture
    other_streams: int  # audio, subtitle and data streams (copied)


def probe(path) -> VideoInfo:
    """Read ``path``'s header (and its first frame, for the rotation). Raises :class:`VideoError`."""
    import av
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VideoError(path, "no video stream")
            vs = c.streams.video[0]
            rotation = 0
            for frame in c.decode(vs):
                rotation = int(frame.rotation or 0)
                break
            return VideoInfo(vs.codec_context.width, vs.codec_context.height, int(vs.frames or 0),
                             Fraction(vs.average_rate or vs.guessed_rate or 0), _seconds(c, vs), rotation,
                             len(c.streams) - 1)
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001 - FFmpeg errors of every kind
        raise VideoError(path, f"cannot read video: {_reason(e)}") from None


def _seconds(c, vs) -> float:
    """The video stream's duration: its own, else Matroska's DURATION tag, else the container's."""
    own = _video_seconds(c, vs)
    return own if own else float(c.duration or 0) / 1_000_000


def _video_seconds(c, vs) -> float:
    """The video stream's own duration (0.0 where only the container's, which counts the sound, is known)."""
    if vs.duration is not None and vs.time_base is not None:
        return float(vs.duration * vs.time_base)
    tag = (vs.metadata or {}).get("DURATION") or (vs.metadata or {}).get("duration")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    return float(c.duration or 0) / 1_000_000 if len(c.streams) == 1 else 0.0


def _reason(e: BaseException) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without the errno and path."""
    text = (getattr(e, "strerror", None) or str(e)).strip().splitlines()
    return text[-1] if text else type(e).__name__


def read_frames(path, segment: Optional[Tuple[int, int]] = None) -> Iterator[np.ndarray]:
    """The frames of ``path``'s first video stream as HxWx3 uint8 RGB arrays, in display order.

    ``segment=(k, n)``: only the frames of the k-th of n equal time slices (k from 0). Streams one
    frame at a time. Raises :class:`VideoError` on a file that cannot be decoded.
    """
    import av
    try:
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            start, end = _bounds(c, vs, segment)
            if start is not None and start > (vs.start_time or 0):
                c.seek(start, stream=vs, backward=True)
            for frame in c.decode(vs):
                if _inside(frame.pts, start, end):
                    yield frame.to_ndarray(format="rgb24")
                elif end is not None and frame.pts is not None and frame.pts >= end:
                    break
    except av.FFmpegError as e:
        raise VideoError(path, f"cannot decode: {_reason(e)}") from None


def _bounds(c, vs, segment) -> Tuple[Optional[int], Optional[int]]:
    """The k-th of n time slices of the stream, as [start, end) in its time base."""
    if segment is None or segment[1] <= 1:
        return None, None
    k, n = segment
    first = vs.start_time or 0
    length = vs.duration if vs.duration else int(_seconds(c, vs) / vs.time_base)
    cut = [first + (length * i) // n for i in range(n + 1)]
    return cut[k], (cut[k + 1] if k + 1 < n else None)


def _inside(pts, start, end) -> bool:
    if pts is None:
        return start is None
    return (start is None or pts >= start) and (end is None or pts < end)


@dataclass
class VideoResult:
    frames: int
    width: int
    height: int
    source_bits: int = 8  # bits per sample of the input video's pixel format
    bits: int = 8  # and of the output's (lower only where the encoder has no deeper format)


_END = object()


def restore_video(src, dst, restore: Callable[[np.ndarray], np.ndarray], *, codec: Optional[str] = None,
                  crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, overwrite: bool = False,
                  segment: Optional[Tuple[int, int]] = None, max_seconds: Optional[float] = None,
                  on_frame: Optional[Callable[[int, int], None]] = None) -> VideoResult:
    """Restore every frame of ``src`` with ``restore`` and write the video to ``dst``, atomically.

    Args:
        restore: HxWx3 RGB -> H'xW'x3 RGB of the same dtype, e.g. ``Restorer.restore`` (one frame at a
            time): uint8 for 8-bit videos, uint16 for deeper ones (10-bit and up), which are written
            10-bit where the encoder can (x264, x265; FFV1 16-bit) and 8-bit elsewhere.
        codec: an FFmpeg encoder name (default :func:`default_codec`); ``crf`` and ``preset`` are
            passed to the encoders that know them (x264, x265, VP9's crf).
        overwrite: False raises FileExistsError if ``dst`` exists when the video is done.
        segment: ``(k, n)``: only the k-th of n time slices, video only, for :func:`join_segments`
            (``dst`` should then be a ``.nut`` file).
        max_seconds: refuse longer videos (checked from the header, before any work).
        on_frame: called as ``on_frame(done, total)`` after each frame (``total`` 0 if unknown);
            raise from it to stop (the output is not written).

    Returns:
        The frame count, output size, and the input's and output's bits per sample. Odd sizes are
        cut to even ones (one row or column) for the 4:2:0 encoders, which need them.

    Raises:
        VideoError: ``src`` cannot be decoded, is too long, or stops before its declared end.
        ValueError: an unknown encoder, or one this container cannot hold.
    """
    import av
    src, dst = Path(src), Path(dst)
    codec = codec or default_codec(dst)
    problem = encoder_problem(codec, crf, preset)
    if problem:
        raise ValueError(problem)
    if not overwrite and dst.exists():  # before the work, not after it
        raise FileExistsError(f"{dst} exists")
    try:
        inp = av.open(str(src))
    except Exception as e:  # noqa: BLE001 - FFmpeg errors of every kind
        raise VideoError(src, f"cannot read video: {_reason(e)}") from None
    with inp:
        if not inp.streams.video:
            raise VideoError(src, "no video stream")
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        if max_seconds is not None and _seconds(inp, vs) > max_seconds:
            raise VideoError(src, f"{_seconds(inp, vs):.1f} s is longer than the limit of {max_seconds:g} s")
        copied = [] if segment else [s for s in inp.streams if s.type in ("audio", "subtitle")]
        total = int(vs.frames or 0)
        start, end = _bounds(inp, vs, segment)
        if start is not None and start > (vs.start_time or 0):
            inp.seek(start, stream=vs, backward=True)
        pipe = _Pipeline(inp, vs, copied, start, end, restore, src)
        try:
            with atomic_file(dst, overwrite=overwrite) as f:
                with av.open(f, "w", format=CONTAINERS.get(dst.suffix.lower())) as out:
                    pipe.run(out, codec, crf, preset, segment is not None, on_frame,
                             0 if segment else total)
        except FileExistsError:
            raise FileExistsError(f"{dst} appeared while the video was restored; not overwritten") from None
        return VideoResult(pipe.count, *pipe.size, pipe.source_bits, pipe.bits)


class _Pipeline:
    """Decode (a thread) -> restore (the caller's thread) -> encode and mux (a thread)."""

    def __init__(self, inp, vs, copied, start, end, restore, src: Path):
        self.inp, self.vs, self.copied, self.start, self.end = inp, vs, copied, start, end
        self.restore, self.src = restore, src
        self.source_bits = format_bits(vs.codec_context.format)
        self.deep = self.source_bits > 8  # 10-, 12- and 16-bit sources are restored and written in 16-bit RGB
        self.count = 0
        self.size, self.bits = (0, 0), 8
        self.stop = threading.Event()
        self.decoded: "queue.Queue" = queue.Queue(_QUEUE)
        self.restored: "queue.Queue" = queue.Queue(_QUEUE)
        self.errors: List[BaseException] = []

    def _put(self, q: "queue.Queue", item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: "queue.Queue"):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _decode(self) -> None:
        import av
        last = None
        try:
            streams = [self.vs, *self.copied]
            for packet in self.inp.demux(streams):
                if packet.stream.type != "video":
                    if packet.dts is not None and not self._put(self.decoded, ("packet", packet)):
                        return
                    continue
                for frame in packet.decode():
                    last = frame.pts
                    if not _inside(frame.pts, self.start, self.end):
                        continue
                    if not self._put(self.decoded, ("frame", frame)):
                        return
                if self.end is not None and last is not None and last >= self.end:
                    break
        except av.FFmpegError as e:
            self.errors.append(VideoError(self.src, f"cannot decode: {_reason(e)}"))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self.errors.append(e)
        finally:
            self._put(self.decoded, (None, last))

    def _encode(self, out, ostream, streams) -> None:
        try:
            while True:
                item = self._get(self.restored)
                if item is _END or item is None:
                    break
                kind, obj = item
                if kind == "frame":
                    for p in ostream.encode(obj):
                        out.mux(p)
                else:
                    obj.stream = streams[obj.stream.index]
                    out.mux(obj)
            if not self.stop.is_set():
                for p in ostream.encode(None):
                    out.mux(p)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self.errors.append(e)
            self.stop.set()

    def run(self, out, codec: str, crf: int, preset: str, segment: bool, on_frame, total: int) -> None:
        import av
        vs = self.vs
        # The first frame gives the output size and the rotation; packets before it wait.
        self.decoder = threading.Thread(target=self._decode, name="video-decode", daemon=True)
        self.decoder.start()
        held = []
        first = None
        while first is None:
            kind, obj = self._get(self.decoded)
            if kind == "frame":
                first = obj
            elif kind == "packet":
                held.append(("packet", obj))
            else:
                self._raise(obj, total)
                raise VideoError(self.src, "no frames to restore")
        restored = self._restore(first)
        h, w = restored.shape[:2]
        ostream = out.add_stream(codec, rate=vs.average_rate or vs.guessed_rate or 25)
        ostream.width, ostream.height = w, h
        ostream.time_base = vs.time_base
        ostream.codec_context.time_base = vs.time_base
        ostream.pix_fmt = _pixel_format(codec, crf, self.deep)
        self.pix_fmt = ostream.pix_fmt
        written = av.VideoFormat(ostream.pix_fmt)
        self.bits = min(self.source_bits, format_bits(written))
        ostream.options = _options(codec, crf, preset, segment)
        # FFV1's gbrp has no YUV matrix or range to describe.
        for tag in ("color_primaries", "color_trc") + (() if written.is_rgb else ("colorspace", "color_range")):
            setattr(ostream.codec_context, tag, getattr(vs.codec_context, tag))  # BT.709, HDR (PQ, HLG), ...
        if segment:
            ostream.codec_context.max_b_frames = 0
        if first.rotation:
            ostream.set_display_rotation(int(first.rotation))
        try:
            streams = {s.index: out.add_stream_from_template(s) for s in self.copied}
        except ValueError as e:  # e.g. AAC sound into WebM
            raise VideoError(self.src, f"its {', '.join(s.codec_context.name for s in self.copied)} streams cannot "
                                       f"be copied into {out.format.name} ({e}); write .mkv, which takes any") from None
        self.size = (w, h)
        encoder = threading.Thread(target=self._encode, args=(out, ostream, streams), name="video-encode",
                                   daemon=True)
        encoder.start()
        try:
            for item in held:
                self._put(self.restored, item)
            self._send(restored, first, on_frame, total)
            while True:
                kind, obj = self._get(self.decoded)
                if kind == "frame":
                    self._send(self._restore(obj), obj, on_frame, total)
                elif kind == "packet":
                    self._put(self.restored, (kind, obj))
                else:
                    self._raise(obj, total)
                    break
            self._put(self.restored, None)
            encoder.join()
            if self.errors:
                raise self.errors[0]
        except BaseException:
            self.stop.set()
            encoder.join()
            raise
        finally:
            self.stop.set()
            self.decoder.join()

    def _restore(self, frame) -> np.ndarray:
        # RGB through the frame's own matrix and range (full-range "JPEG" YUV included), and back the same way.
        rgb = frame.to_ndarray(format="rgb48le" if self.deep else "rgb24", src_color_range=frame.color_range)
        out = self.restore(rgb)
        h, w = out.shape[:2]
        return np.ascontiguousarray(out[:h - h % 2, :w - w % 2])  # 4:2:0 needs even sides

    def _send(self, array: np.ndarray, frame, on_frame, total: int) -> None:
        import av
        vf = av.VideoFrame.from_ndarray(array, format="rgb48le" if array.dtype == np.uint16 else "rgb24")
        # AREA: swscale's default (bilinear) 4:2:0 chroma of full-range video is biased (grey 128 -> 127, green).
        vf = vf.reformat(format=self.pix_fmt, dst_colorspace=frame.colorspace, dst_color_range=frame.color_range,
                         interpolation="AREA")
        vf.pts, vf.time_base = frame.pts, frame.time_base
        if not self._put(self.restored, ("frame", vf)):
            raise self.errors[0] if self.errors else RuntimeError("the video encoder stopped")
        self.count += 1
        if on_frame:
            on_frame(self.count, total)

    def _raise(self, last_pts, total: int) -> None:
        """At the end of decoding: the decoder's error, or a stream that stopped before its end: fewer
        frames than the header declares, or (where only its duration is known) frames missing, or
        more than a frame and a half short of that duration."""
        if self.errors:
            raise self.errors[0]
        if self.end is not None or self.start is not None:
            return
        if total and self.count < total:
            raise VideoError(self.src, f"the video stops after {self.count} of its {total} frames (truncated)")
        seconds, rate = _video_seconds(self.inp, self.vs), float(self.vs.average_rate or 0)
        if total or not seconds or not rate:
            return
        expected = round(seconds * rate)
        if self.count < expected - 1:
            raise VideoError(self.src, f"the video stops after {self.count} of its about {expected} frames "
                                       f"(truncated)")
        if last_pts is not None:
            reached = float((last_pts - (self.vs.start_time or 0)) * self.vs.time_base) + 1 / rate
            if reached < seconds - 1.5 / rate:
                raise VideoError(self.src, f"the video stops at {reached:.2f} s of its {seconds:.2f} s (truncated)")


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
    top = CRF_RANGE.get(codec)
    if top is not None and not 0 <= crf <= top:
        return f"--crf {crf}: {codec} takes 0 to {top}"
    if codec in ("libx264", "libx264rgb", "libx265") and preset not in X264_PRESETS:
        return f"--preset {preset}: not one of {', '.join(X264_PRESETS)}"
    return None


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


def _options(codec: str, crf: int, preset: str, segment: bool) -> dict:
    if codec in ("libx264", "libx264rgb", "libx265"):
        return {"crf": str(crf), "preset": preset}
    if codec in ("libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        return {"crf": str(crf), "b": "0"}
    return {}


def segment_path(dst, k: int, n: int) -> Path:
    """Where segment ``k`` of ``n`` of ``dst`` is written (beside it, hidden, removed by the join)."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.segment-{k + 1}-of-{n}.nut")


def join_segments(src, parts: List[Path], dst, overwrite: bool = False) -> int:
    """Concatenate the video packets of ``parts`` (in order) into ``dst``, without re-encoding, with
    the audio and subtitle streams of ``src`` copied in; returns the video frame count.

    Packets are interleaved by decoding time, so memory holds a few packets, and ``dst`` is written
    atomically. Raises :class:`VideoError` if a part cannot be read.
    """
    import av
    dst = Path(dst)
    try:
        opened = [av.open(str(p)) for p in parts]
        inp = av.open(str(src))
    except Exception as e:  # noqa: BLE001
        raise VideoError(src, f"cannot join its segments: {_reason(e)}") from None
    count = 0
    try:
        copied = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        template = opened[0].streams.video[0]
        rotation = probe(src).rotation  # segments are NUT files, which keep no display matrix
        with atomic_file(dst, overwrite=overwrite) as f:
            with av.open(f, "w", format=CONTAINERS.get(dst.suffix.lower())) as out:
                ovs = out.add_stream_from_template(template)
                ovs.time_base = inp.streams.video[0].time_base  # the input's, as an unsegmented run keeps it
                if rotation:
                    ovs.set_display_rotation(rotation)
                streams = {s.index: out.add_stream_from_template(s) for s in copied}

                def video():
                    for c in opened:
                        for p in c.demux(c.streams.video[0]):
                            if p.dts is not None:
                                yield _when(p), 0, p, ovs

                def others():
                    if copied:
                        for p in inp.demux(copied):
                            if p.dts is not None:
                                yield _when(p), 1, p, streams[p.stream.index]

                for _, _, packet, stream in heapq.merge(video(), others(), key=lambda t: (t[0], t[1])):
                    if stream is ovs:
                        count += 1
                    packet.stream = stream
                    out.mux(packet)
    finally:
        for c in opened:
            c.close()
        inp.close()
    return count


def _when(packet) -> float:
    return float(packet.dts * packet.time_base)
