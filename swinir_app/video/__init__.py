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

Outputs are written through :func:`swinir_app.files.atomic_file`: a file that cannot be decoded,
stops early, or is interrupted leaves no output behind.

Modules: ``reading`` (probing, decoding, time-slice bounds, the truncation check's extents), ``encode``
(encoder choice, settings and opening), ``pipeline`` (:func:`restore_video`), ``segments`` (time slices,
their join and its check, stale slice files).
"""
from .encode import (BITS_PER_PIXEL, CRF_RANGE, DEFAULT_CRF, DEFAULT_PRESET, FULL_RANGE_ENCODERS,
                     LOSSLESS_ENCODERS, QSCALE, QSCALE_ENCODERS, X264_PRESETS, container_problem, default_codec,
                     encoder_name, encoder_problem, format_bits, quality_without_crf)
from .encode import _cannot_hold as _cannot_hold
from .encode import _open_encoder as _open_encoder
from .encode import _options as _options
from .encode import _pixel_format as _pixel_format
from .encode import _standard_rate as _standard_rate
from .pipeline import VideoResult, restore_video
from .pipeline import _END as _END
from .pipeline import _QUEUE as _QUEUE
from .pipeline import _EmptySlice as _EmptySlice
from .pipeline import _Pipeline as _Pipeline
from .reading import CONTAINERS, TRUNCATION_STEPS, VIDEO_EXTENSIONS, VideoError, VideoInfo, probe, read_frames
from .reading import _bounds as _bounds
from .reading import _Extent as _Extent
from .reading import _inside as _inside
from .reading import _reason as _reason
from .reading import _seconds as _seconds
from .reading import _video_seconds as _video_seconds
from .reading import _video_times as _video_times
from .segments import join_segments, remove_stale_segments, segment_path
from .segments import _SEGMENT as _SEGMENT
from .segments import _check_times as _check_times
from .segments import _when as _when

__all__ = ["BITS_PER_PIXEL", "CONTAINERS", "CRF_RANGE", "DEFAULT_CRF", "DEFAULT_PRESET", "FULL_RANGE_ENCODERS",
           "LOSSLESS_ENCODERS", "QSCALE", "QSCALE_ENCODERS", "TRUNCATION_STEPS", "VIDEO_EXTENSIONS", "VideoError",
           "VideoInfo", "VideoResult", "X264_PRESETS", "container_problem", "default_codec", "encoder_name",
           "encoder_problem", "format_bits", "join_segments", "probe", "quality_without_crf", "read_frames",
           "remove_stale_segments", "restore_video", "segment_path"]
