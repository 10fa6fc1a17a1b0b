"""The streamed restore (:func:`restore_video`): decode, restore and encode overlap in threads, and memory
holds a few frames."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..files import atomic_file
from .encode import (DEFAULT_CRF, DEFAULT_PRESET, FULL_RANGE_ENCODERS, _cannot_hold, _open_encoder, _options,
                     _pixel_format, _standard_rate, default_codec, encoder_name, encoder_problem, format_bits)
from .reading import (CONTAINERS, TRUNCATION_STEPS, VideoError, _bounds, _Extent, _inside, _reason, _seconds,
                    _video_seconds, _video_times)

_QUEUE = 4  # frames in flight between the decode, restore and encode threads


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
                  encoder_log: bool = False, keep_metadata: bool = True) -> VideoResult:
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
        pipe.keep_metadata = keep_metadata
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


# Tags a muxer or encoder writes itself, or that describe the input's encoding rather than the video.
_OWN_TAGS = ("encoder", "duration", "major_brand", "minor_version", "compatible_brands", "handler_name",
             "vendor_id", "creation_tool")


def kept_metadata(tags) -> dict:
    """The input's container or stream tags that an output keeps (title, artist, comment, creation_time,
    location, language, ...), without those the muxer and encoder write for themselves (``_STATISTICS_*``,
    ``DURATION``, encoder names, brands)."""
    return {k: v for k, v in dict(tags).items()
            if k.lower() not in _OWN_TAGS and not k.upper().startswith(("_STATISTICS", "DURATION", "NUMBER_OF_"))}


def copy_tags(inp, out, pairs) -> None:
    """Put ``inp``'s kept container tags (:func:`kept_metadata`) on ``out``, and each input stream's kept tags
    (language, title, ...) on its output stream: ``pairs`` of (input stream, output stream). The one place
    a whole run (:func:`restore_video`) and a join of its time slices take them from, so both keep the same."""
    out.metadata.update(kept_metadata(inp.metadata))
    for source, written in pairs:
        written.metadata.update(kept_metadata(source.metadata))


class _Pipeline:
    """Decode (a thread) -> restore (the caller's thread) -> encode and mux (a thread)."""

    def __init__(self, inp, vs, copied, start, end, restore, src: Path, max_pixels: Optional[int] = None,
                 watched=(), encoder_log: bool = False):
        self.keep_metadata = True  # the input's container and stream tags go to the output
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
        if self.keep_metadata:  # title, dates, location, ...: the muxer's own tags (encoder, brands) are its own
            copy_tags(self.inp, out, [(vs, ostream), *((s, streams[s.index]) for s in self.copied)])
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
        from ..checkpoint import ModelOutputError
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
