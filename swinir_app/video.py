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
audio muxed back in. Segments are encoded without B-frames, so their packets join in order, and
the joined file is checked to hold exactly the frames restored, at their times. Variable frame
rates are kept: frames keep their own timestamps, whole or in slices.

Outputs are written through :func:`swinir_app.images.atomic_file`: a file that cannot be decoded,
stops early, or is interrupted leaves no output behind.
"""
from __future__ import annotations

import heapq
import queue
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

from .images import STALE_PART_AGE, ImageReadError, atomic_file, remove_stale_parts

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
    # Open-ended at both ends: frames before the declared start (edit lists) or past the declared
    # duration (VFR) still belong to the first or last slice.
    return (cut[k] if k else None), (cut[k + 1] if k + 1 < n else None)


def _inside(pts, start, end) -> bool:
    if pts is None:
        return start is None
    return (start is None or pts >= start) and (end is None or pts < end)


@dataclass
class VideoResult:
    frames: int  # restored and written (0 for a time slice without frames: then no file is written)
    width: int
    height: int
    source_bits: int = 8  # bits per sample of the input video's pixel format
    bits: int = 8  # and of the output's (lower only where the encoder has no deeper format)
    times: List[int] = field(default_factory=list)  # the restored frames' pts, in the input stream's time_base
    time_base: Fraction = Fraction(0)


_END = object()


def restore_video(src, dst, restore: Callable[[np.ndarray], np.ndarray], *, codec: Optional[str] = None,
                  crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, overwrite: bool = False,
                  segment: Optional[Tuple[int, int]] = None, max_seconds: Optional[float] = None,
                  max_pixels: Optional[int] = None, on_frame: Optional[Callable[[int, int], None]] = None,
                  encoder_log: bool = False) -> VideoResult:
    """Restore every frame of ``src`` with ``restore`` and write the video to ``dst``, atomically.

    Args:
        restore: HxWx3 RGB -> H'xW'x3 RGB of the same dtype, e.g. ``Restorer.restore`` (one frame at a
            time): uint8 for 8-bit videos, uint16 for deeper ones (10-bit and up), which are written
            10-bit where the encoder can (x264, x265; FFV1 16-bit) and 8-bit elsewhere.
        codec: an FFmpeg encoder name (default :func:`default_codec`); ``crf`` and ``preset`` are
            passed to the encoders that know them (x264, x265, VP9's crf).
        overwrite: False raises FileExistsError if ``dst`` exists when the video is done.
        segment: ``(k, n)``: only the k-th of n time slices, video only, for :func:`join_segments`
            (``dst`` should then be a ``.nut`` file). A slice without frames (a gap in a variable
            frame rate video) writes no file and returns ``frames=0``.
        max_seconds: refuse longer videos (checked from the header, before any work).
        max_pixels: refuse a video with a decoded frame of more pixels (width x height), checked on
            every frame, before it is restored: a header can lie (MJPEG frames are JPEGs of any size).
        on_frame: called as ``on_frame(done, total)`` after each frame (``total`` 0 if unknown);
            raise from it to stop (the output is not written).
        encoder_log: let encoders that print on their own (x265's summary) do so; else only their errors.

    Returns:
        The frame count, output size, the input's and output's bits per sample, and the restored
        frames' timestamps (``times``, in ``time_base``). Odd sizes are cut to even ones (one row or
        column) for the 4:2:0 encoders, which need them.

    Raises:
        VideoError: ``src`` cannot be decoded, is too long, has too large a frame, stops before its
            declared end, or the written file holds fewer frames than were restored.
        ValueError: an unknown encoder, or settings it does not take.
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
        others = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        copied = [] if segment else others
        total = int(vs.frames or 0)
        start, end = _bounds(inp, vs, segment)
        if start is not None and start > (vs.start_time or 0):
            inp.seek(start, stream=vs, backward=True)
        pipe = _Pipeline(inp, vs, copied, start, end, restore, src, max_pixels,
                         watched=others if end is None else [], encoder_log=encoder_log)
        try:
            with atomic_file(dst, overwrite=overwrite) as f:
                with av.open(f, "w", format=CONTAINERS.get(dst.suffix.lower())) as out:
                    pipe.run(out, codec, crf, preset, segment is not None, on_frame,
                             0 if segment else total)
                f.flush()
                written = len(_video_times(f.name)[0])
                if written != pipe.count:  # an encoder or muxer that dropped frames: never a silent loss
                    raise VideoError(src, f"the output holds {written} of the {pipe.count} frames restored")
        except _EmptySlice:
            return VideoResult(0, 0, 0, pipe.source_bits, pipe.bits, [], vs.time_base)
        except FileExistsError:
            raise FileExistsError(f"{dst} appeared while the video was restored; not overwritten") from None
        return VideoResult(pipe.count, *pipe.size, pipe.source_bits, pipe.bits, pipe.times, vs.time_base)


class _EmptySlice(Exception):
    """A time slice with no frame in it: nothing to write."""


class _Pipeline:
    """Decode (a thread) -> restore (the caller's thread) -> encode and mux (a thread)."""

    def __init__(self, inp, vs, copied, start, end, restore, src: Path, max_pixels: Optional[int] = None,
                 watched=(), encoder_log: bool = False):
        self.inp, self.vs, self.copied, self.start, self.end = inp, vs, copied, start, end
        # The streams demuxed to see where the file ends (the last slice reads its sound without copying it).
        self.watched = list(dict.fromkeys([*copied, *watched]))
        self.restore, self.src, self.max_pixels, self.encoder_log = restore, src, max_pixels, encoder_log
        # Encoders with a fixed set of frame rates (MPEG-1/2) count frames at a standard rate: each one's
        # own (pts, duration) is put back on its packet, so the output keeps the input's times.
        self.renumbered: Optional[List[Tuple[int, int]]] = None
        self.out_range = None  # the output's colour range where the encoder has its own (JPEG: full)
        self.header = (vs.codec_context.width, vs.codec_context.height)  # the decoder updates its own
        self.times: List[int] = []  # pts of the frames sent to the encoder
        self.extents = {s.index: _Extent() for s in (vs, *self.watched)}  # for the truncation check
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
            copied = {s.index for s in self.copied}
            for packet in self.inp.demux([self.vs, *self.watched]):
                if packet.stream.type != "video":
                    if packet.size:
                        self.extents[packet.stream.index].add(packet.pts, packet.duration)
                    if packet.stream.index not in copied:
                        continue
                    if packet.dts is None and packet.size:  # place it by its pts rather than drop it
                        packet.dts = packet.pts
                    if packet.dts is not None and not self._put(self.decoded, ("packet", packet)):
                        return
                    continue
                for frame in packet.decode():
                    last = frame.pts
                    self.extents[self.vs.index].add(frame.pts, frame.duration)
                    if not _inside(frame.pts, self.start, self.end):
                        continue
                    if self.max_pixels and frame.width * frame.height > self.max_pixels:
                        raise VideoError(self.src, f"a frame of {frame.width}x{frame.height} exceeds the limit of "
                                                   f"{self.max_pixels:,} pixels (the header says "
                                                   f"{self.header[0]}x{self.header[1]})")
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
                        self._mux_encoded(out, p)
                else:
                    obj.stream = streams[obj.stream.index]
                    out.mux(obj)
            if not self.stop.is_set():
                for p in ostream.encode(None):
                    self._mux_encoded(out, p)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self.errors.append(e)
            self.stop.set()

    def _mux_encoded(self, out, packet) -> None:
        if self.renumbered is not None and packet.pts is not None:
            pts, duration = self.renumbered[packet.pts]
            # Without B-frames (set for these encoders) decoding order is display order: dts = pts.
            packet.pts = packet.dts = pts
            packet.duration = duration or 0
            packet.time_base = self.vs.time_base
        out.mux(packet)

    def run(self, out, codec: str, crf: int, preset: str, segment: bool, on_frame, total: int) -> None:
        self.decoder = threading.Thread(target=self._decode, name="video-decode", daemon=True)
        self.decoder.start()
        try:
            self._run(out, codec, crf, preset, segment, on_frame, total)
        finally:  # whatever failed (the first frame's restore, the encoder's opening): the decoder must not
            self.stop.set()  # read on from an input that is about to be closed (a crash in FFmpeg)
            self.decoder.join()

    def _run(self, out, codec: str, crf: int, preset: str, segment: bool, on_frame, total: int) -> None:
        import av
        vs = self.vs
        # The first frame gives the output size and the rotation; packets before it wait.
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
                if segment:
                    raise _EmptySlice
                raise VideoError(self.src, "no frames to restore")
        restored = self._restore(first)
        h, w = restored.shape[:2]
        rate = vs.average_rate or vs.guessed_rate or 25
        standard = _standard_rate(codec, rate, vs.time_base)
        try:
            ostream = out.add_stream(codec, rate=standard or rate)
        except ValueError:  # "'mp4' format does not support 'h263' codec"
            raise VideoError(self.src, _cannot_hold(out.format.name, codec)) from None
        ostream.width, ostream.height = w, h
        ostream.time_base = vs.time_base
        if standard:
            ostream.codec_context.time_base = 1 / standard
            ostream.codec_context.max_b_frames = 0
            self.renumbered, self.encoder_base = [], ostream.codec_context.time_base
        else:
            ostream.codec_context.time_base = vs.time_base
        ostream.pix_fmt = _pixel_format(codec, crf, self.deep)
        self.pix_fmt = ostream.pix_fmt
        written = av.VideoFormat(ostream.pix_fmt)
        self.bits = min(self.source_bits, format_bits(written))
        ostream.options = _options(codec, crf, preset, segment, (w, h), vs.average_rate or vs.guessed_rate,
                                   self.encoder_log)
        # FFV1's gbrp has no YUV matrix or range to describe.
        for tag in ("color_primaries", "color_trc") + (() if written.is_rgb else ("colorspace", "color_range")):
            setattr(ostream.codec_context, tag, getattr(vs.codec_context, tag))  # BT.709, HDR (PQ, HLG), ...
        if encoder_name(codec) in FULL_RANGE_ENCODERS:  # JPEG's YUV is full range; limited range is refused
            self.out_range = ostream.codec_context.color_range = 2  # AVCOL_RANGE_JPEG
        if segment:
            ostream.codec_context.max_b_frames = 0
        if first.rotation:
            ostream.set_display_rotation(int(first.rotation))
        try:
            streams = {s.index: out.add_stream_from_template(s) for s in self.copied}
        except ValueError as e:  # e.g. AAC sound into WebM
            raise VideoError(self.src, f"its {', '.join(s.codec_context.name for s in self.copied)} streams cannot "
                                       f"be copied into {out.format.name} ({e}); write .mkv, which takes any") from None
        _open_encoder(out, codec, self.src)
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
        from .checkpoint import ModelOutputError
        try:
            out = self.restore(rgb)
        except ModelOutputError as e:  # the engine's text speaks of an image
            reason = str(e).replace("the image would come out black, so it is not written",
                                    "the frame would come out black, so the video is not written")
            when = f"at {float(frame.pts * frame.time_base):.2f} s" if frame.pts is not None else "of the video"
            raise VideoError(self.src, f"the frame {when}: {reason}") from None
        h, w = out.shape[:2]
        return np.ascontiguousarray(out[:h - h % 2, :w - w % 2])  # 4:2:0 needs even sides

    def _send(self, array: np.ndarray, frame, on_frame, total: int) -> None:
        import av
        vf = av.VideoFrame.from_ndarray(array, format="rgb48le" if array.dtype == np.uint16 else "rgb24")
        # AREA: swscale's default (bilinear) 4:2:0 chroma of full-range video is biased (grey 128 -> 127, green).
        vf = vf.reformat(format=self.pix_fmt, dst_colorspace=frame.colorspace,
                         dst_color_range=self.out_range or frame.color_range, interpolation="AREA")
        if self.renumbered is not None:
            self.renumbered.append((frame.pts, frame.duration))  # before the encoder can see the frame
            vf.pts, vf.time_base = len(self.renumbered) - 1, self.encoder_base
        else:
            vf.pts, vf.time_base = frame.pts, frame.time_base
        if not self._put(self.restored, ("frame", vf)):
            raise self.errors[0] if self.errors else RuntimeError("the video encoder stopped")
        self.times.append(frame.pts)
        self.count += 1
        if on_frame:
            on_frame(self.count, total)

    def _raise(self, last_pts, total: int) -> None:
        """At the end of decoding: the decoder's error, or a file that stopped before its end: fewer
        frames than the header declares, or (where it declares no count, as Matroska) a video, sound or
        subtitle stream whose last frame or packet ends (its pts plus its own duration) short of the
        stream's declared duration by more than :data:`TRUNCATION_STEPS` of its last step. Never from
        duration x average rate, nor a mean step, which a variable frame rate makes meaningless. A slice
        that ends before the video's end is judged at the join."""
        if self.errors:
            raise self.errors[0]
        if self.end is not None:
            return
        if total:  # MP4 and MOV count their frames (and a cut one has lost its index)
            if self.start is None and self.count < total:
                raise VideoError(self.src, f"the video stops after {self.count} of its {total} frames (truncated)")
            return
        for stream in [self.vs, *self.watched]:
            seconds = _video_seconds(self.inp, stream)
            reached, step = self.extents[stream.index].end(stream.time_base, float(self.vs.average_rate or 0))
            if seconds and reached is not None and reached < seconds - TRUNCATION_STEPS.get(stream.type, 1.5) * step:
                what = "the video" if stream is self.vs else f"its {stream.type}"
                raise VideoError(self.src, f"{what} stops at {reached:.2f} s of its {seconds:.2f} s (truncated)")


# How far short of its declared duration a stream may end, in its own last step. A whole video ends there
# exactly (FFmpeg's Matroska muxer writes each track's DURATION as its last packet's end): half a step
# refuses even one lost last frame. FFmpeg's AAC tracks declare up to about one packet more than their
# last packet's demuxed end: sound and subtitles get 1.5.
TRUNCATION_STEPS = {"video": 0.5, "audio": 1.5, "subtitle": 1.5}


class _Extent:
    """How far decoding got in one stream: its latest pts, that frame's or packet's own duration (where
    the container gives one), and the pts before it."""

    def __init__(self):
        self.last, self.before, self.duration = None, None, 0

    def add(self, pts, duration) -> None:
        if pts is None:
            return
        if self.last is None or pts > self.last:
            self.before, self.last, self.duration = self.last, pts, duration or 0
        elif pts < self.last and (self.before is None or pts > self.before):
            self.before = pts

    def end(self, time_base, rate: float = 0.0) -> Tuple[Optional[float], float]:
        """Where the stream was seen to end and the last frame's step, in seconds: its own duration, else
        the step from the frame before it (``rate``, the header's, only where a single one was seen)."""
        if self.last is None:
            return None, 0.0
        if self.duration:
            step = float(self.duration * time_base)
        elif self.before is not None:
            step = float((self.last - self.before) * time_base)
        else:
            step = 1 / rate if rate else 0.0
        return float(self.last * time_base) + step, step


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


def segment_path(dst, k: int, n: int) -> Path:
    """Where segment ``k`` of ``n`` of ``dst`` is written (beside it, hidden, removed by the join)."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.segment-{k + 1}-of-{n}.nut")


def join_segments(src, parts: List[Path], dst, overwrite: bool = False, expected: Optional[List[int]] = None) -> int:
    """Concatenate the video packets of ``parts`` (in order) into ``dst``, without re-encoding, with
    the audio and subtitle streams of ``src`` copied in; returns the video frame count.

    Packets are interleaved by decoding time, so memory holds a few packets, and ``dst`` is written
    atomically. ``expected``: the pts (in ``src``'s video time base) of every frame restored into the
    parts; the written file must hold exactly these frames at these times. Raises :class:`VideoError`
    if a part cannot be read, or the written video differs from ``expected``.
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
        if not opened:
            raise VideoError(src, "no segment holds a frame")
        copied = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        template = opened[0].streams.video[0]
        time_base = inp.streams.video[0].time_base
        rotation = probe(src).rotation  # segments are NUT files, which keep no display matrix
        with atomic_file(dst, overwrite=overwrite) as f:
            with av.open(f, "w", format=CONTAINERS.get(dst.suffix.lower())) as out:
                ovs = out.add_stream_from_template(template)
                ovs.time_base = time_base  # the input's, as an unsegmented run keeps it
                if rotation:
                    ovs.set_display_rotation(rotation)
                streams = {s.index: out.add_stream_from_template(s) for s in copied}

                def video():
                    for c in opened:
                        for p in c.demux(c.streams.video[0]):
                            if not p.size:  # the demuxer's end-of-stream marker
                                continue
                            # NUT stores no dts: its demuxer infers none, or (MPEG-2) one frame late, which
                            # repeats a dts at each join. Segments are encoded without B-frames: decoding
                            # order is display order, so dts = pts.
                            if p.pts is None:
                                raise VideoError(src, f"cannot join its segments: {c.name} has a packet "
                                                      f"without a timestamp")
                            p.dts = p.pts
                            yield _when(p), 0, p, ovs

                def others():
                    if copied:
                        for p in inp.demux(copied):
                            if p.dts is None and p.size:
                                p.dts = p.pts
                            if p.dts is not None:
                                yield _when(p), 1, p, streams[p.stream.index]

                for _, _, packet, stream in heapq.merge(video(), others(), key=lambda t: (t[0], t[1])):
                    if stream is ovs:
                        count += 1
                    packet.stream = stream
                    out.mux(packet)
            f.flush()
            if expected is not None:
                _check_times(src, f.name, expected, time_base)
    finally:
        for c in opened:
            c.close()
        inp.close()
    return count


def _when(packet) -> float:
    return float(packet.dts * packet.time_base)


def _video_times(path) -> Tuple[List[int], Fraction]:
    """The pts of every packet of ``path``'s first video stream, sorted, and its time base (demuxed, not decoded)."""
    import av
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return sorted(p.pts for p in c.demux(vs) if p.size and p.pts is not None), vs.time_base


def _check_times(src, path, expected: List[int], time_base: Fraction) -> None:
    """Raise :class:`VideoError` unless ``path``'s video holds one frame at each of the ``expected``
    times (pts in ``time_base``), compared in the written file's own time base."""
    written, out_base = _video_times(path)
    want = sorted(round(Fraction(t) * time_base / out_base) for t in expected if t is not None)
    if len(written) != len(want):
        raise VideoError(src, f"the joined video holds {len(written)} of the {len(want)} frames restored")
    wrong = [(a, b) for a, b in zip(written, want) if a != b]
    if wrong:
        a, b = wrong[0]
        raise VideoError(src, f"the joined video has {len(wrong)} frames at other times than restored "
                              f"(first: {float(a * out_base):.3f} s, restored at {float(b * out_base):.3f} s)")


_SEGMENT = re.compile(r"^\..+\.segment-\d+-of-\d+\.nut$")  # segment_path's names


def remove_stale_segments(folder: Path, age: float = STALE_PART_AGE) -> List[Path]:
    """Delete the time-slice files of :func:`segment_path` in ``folder`` (not below it) older than ``age``
    seconds: those of a run that was killed, or was rerun with another ``--segments`` count. A slice
    still being written is a ``.part`` file; a finished one is kept fresh by its run until the join."""
    return remove_stale_parts(folder, age, _SEGMENT)
