"""Time slices: where each is written (:func:`segment_path`), their join without re-encoding
(:func:`join_segments`) and its check, and the removal of stale slice files."""
from __future__ import annotations

import heapq
import re
from fractions import Fraction
from pathlib import Path
from typing import List, Optional

from ..files import STALE_PART_AGE, atomic_file, remove_stale_parts
from .pipeline import copy_tags
from .reading import CONTAINERS, VideoError, _reason, _video_times, probe

def segment_path(dst, k: int, n: int) -> Path:
    """Where segment ``k`` of ``n`` of ``dst`` is written (beside it, hidden, removed by the join)."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.segment-{k + 1}-of-{n}.nut")


def join_segments(src, parts: List[Path], dst, overwrite: bool = False, expected: Optional[List[int]] = None,
                  keep_metadata: bool = True) -> int:
    """Concatenate the video packets of ``parts`` (in order) into ``dst``, without re-encoding, with
    the audio and subtitle streams of ``src`` copied in; returns the video frame count.

    ``keep_metadata``: ``src``'s container tags and its streams' tags (title, comment, language, ...) go to
    ``dst`` as a whole run (:func:`restore_video`) writes them; False writes none (``--strip-metadata``).

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
                if keep_metadata:  # from the input, as a whole run takes them (not from the slices)
                    copy_tags(inp, out, [(inp.streams.video[0], ovs), *((s, streams[s.index]) for s in copied)])

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
