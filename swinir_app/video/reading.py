"""Reading videos: the stream's header (:func:`probe`), its frames (:func:`read_frames`), the time slices'
bounds, the packets' times, and how far each stream got (for the truncation check)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..images import ImageReadError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi")
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi", ".nut": "nut"}


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


def _video_times(path) -> Tuple[List[int], Fraction]:
    """The pts of every packet of ``path``'s first video stream, sorted, and its time base (demuxed, not decoded)."""
    import av
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return sorted(p.pts for p in c.demux(vs) if p.size and p.pts is not None), vs.time_base


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
