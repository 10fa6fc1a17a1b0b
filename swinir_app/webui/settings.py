"""The web app's settings and limits: the operator's :class:`AppConfig`, one run's :class:`RunSettings`,
and the parsing of sizes, tiles and the page's inputs. No gradio here; nothing of the package above it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Union

from ..engine import ALPHA_MODES, SettingError, parse_tile as _parse_tile
from ..resize import check_final_size
from .jobs import WebError

DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000  # 8000 x 8000: a 16 MP input only at x2
DEFAULT_MAX_FILE_SIZE = "50mb"
DEFAULT_MAX_BATCH_SIZE = "1gb"  # all the images of one batch request, uncompressed
DEFAULT_MAX_TEMP_SIZE = "2gb"  # results and uploads on disk, all users together
DEFAULT_MAX_VIDEO_SECONDS = 30.0  # a clip holds the device for its frames: keep it short
DEFAULT_MAX_VIDEO_FRAMES = 1_800  # 30 s at 60 fps: counted as decoded, whatever the header says
DEFAULT_MAX_REQUEST_PIXELS = 1_000_000_000  # input and output pixels of one batch or clip (e.g. 14 4-MP images at x4)
DEFAULT_MAX_REQUEST_SECONDS = 900.0  # device time of one request
MAX_ACTIVE_JOBS = 8  # requests past gradio's queue, waiting for the device in turn (each holds its upload)
MAX_OUTSCALE = 8.0  # as the page's slider
MAX_SIDE = 65_536  # a target width or height, before the checks against the input (at most 16x its side)
GALLERY_ITEMS = 48  # the batch tab shows the first results, each at most GALLERY_MAX_SIDE pixels on a side
GALLERY_MAX_SIDE = 512
PREVIEW_MAX_SIDE = 2048  # the slider shows at most this; the download is always full size
MAX_PASSES = 4096  # model passes (tiles x self-ensemble) per image: one request cannot hold the device for hours
UNTILED_MEMORY_SHARE = 0.25  # an untiled run that needs more than this share of free memory is tiled
DEVICE_QUEUE = "device"  # the concurrency group of everything that runs a model


def parse_size(text: Union[str, int]) -> int:
    """'50mb', '2 GB', '1048576' -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", str(text).lower())
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 20mb, 1gb, 500kb)")
    unit = m.group(2).rstrip("b").rstrip("i")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(unit or " "))


def parse_tile(value) -> Union[None, int, str]:
    """The Advanced tile setting (the engine's words: 'auto', 'none', pixels); empty is 'auto'."""
    if value is None or str(value).strip() == "":
        return "auto"
    try:
        return _parse_tile(value)
    except SettingError as e:
        raise WebError(f"tile size {e.detail}, got {value!r}") from None


@dataclass(frozen=True)
class RunSettings:
    """Everything one restoration depends on besides the image."""

    spec: str
    outscale: Optional[float] = None  # SR: the final scale (None: the model's)
    degrade: float = 0.0  # denoise: add noise of this sigma first; jpeg: compress at this quality first
    tile: Union[None, int, str] = "auto"
    tile_overlap: int = 32
    precision: str = "auto"
    self_ensemble: bool = False
    mix: float = 0.0  # the weight of the model's mixing partner (zoo.mix_partner), from 0 (the model) to 1
    seamless: bool = False  # wrap around at the borders: a tileable input gives a tileable output
    alpha: str = ALPHA_MODES[0]  # transparency: "bicubic" or "model"
    width: Optional[int] = None  # the final size in pixels (one keeps the aspect ratio), instead of outscale
    height: Optional[int] = None
    keep_metadata: bool = True  # EXIF (orientation 1, new size), XMP and IPTC into the PNG; else pixels and ICC

    @property
    def sized(self) -> bool:
        """A target width and/or height is set (and the output scale is not used)."""
        return self.width is not None or self.height is not None


@dataclass
class AppConfig:
    """The operator's settings (``python app.py --help``); the limits bound every request."""

    model: Optional[str] = None
    device: str = "auto"
    weights_dir: Optional[str] = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_size: int = parse_size(DEFAULT_MAX_FILE_SIZE)
    cache_models: int = 2
    models_dir: Optional[str] = None  # default: the weights cache
    allow_any_model_path: bool = False
    allow_downloads: bool = False
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    max_batch_size: int = parse_size(DEFAULT_MAX_BATCH_SIZE)
    max_temp_size: int = parse_size(DEFAULT_MAX_TEMP_SIZE)
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS
    max_request_seconds: float = DEFAULT_MAX_REQUEST_SECONDS
    threads: Optional[int] = None  # CPU threads for every run (process-wide); None: the allowed cores


def _pixels(name: str, value) -> Optional[int]:
    """A target width or height from the page or a client: 0, empty or None is "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if v == 0:
        return None
    if not math.isfinite(v) or v != int(v) or not 1 <= v <= MAX_SIDE:
        raise WebError(f"{name} must be a whole number of pixels from 1 to {MAX_SIDE:,} (0: not set), got {value!r}")
    return int(v)


def run_settings(spec, outscale=None, degrade=0, tile="auto", tile_overlap=32, precision="auto",
                 self_ensemble=False, mix=0, seamless=False, alpha=ALPHA_MODES[0], width=0, height=0,
                 keep_metadata=True) -> RunSettings:
    """The page's and the API's values, checked: any value a client sends is bounded here, in one line."""
    spec = (spec or "").strip()
    if not spec:
        raise WebError("no model: choose one, or enter a checkpoint path or zoo name")
    width, height = _pixels("width", width), _pixels("height", height)
    try:
        check_final_size(None, width, height)
    except SettingError as e:
        raise WebError(f"{e.setting} {e.value}: {e.detail}") from None
    outscale = None if width or height else (float(outscale) if outscale else None)  # a size wins over a scale
    if outscale is not None and not 0 < outscale <= MAX_OUTSCALE:
        raise WebError(f"output scale must be above 0 and at most {MAX_OUTSCALE:g}, got {outscale:g}")
    degrade = float(degrade or 0)
    if not 0 <= degrade <= 100:
        raise WebError(f"the degradation (noise sigma or JPEG quality) must be from 0 to 100, got {degrade:g}")
    overlap = int(tile_overlap if tile_overlap is not None else 32)
    if not 0 <= overlap <= 512:
        raise WebError(f"tile overlap must be from 0 to 512 pixels, got {overlap}")
    try:
        weight = float(mix or 0)
    except (TypeError, ValueError):
        weight = math.nan
    if not 0 <= weight <= 1:  # NaN too
        raise WebError(f"the mix weight must be from 0 (the model) to 1 (its partner), got {mix!r}")
    alpha = (alpha or ALPHA_MODES[0]).strip() if isinstance(alpha, str) else alpha
    if alpha not in ALPHA_MODES:
        raise WebError(f"alpha must be {' or '.join(ALPHA_MODES)}, got {alpha!r}")
    return RunSettings(spec, outscale, degrade, parse_tile(tile), overlap, precision or "auto", bool(self_ensemble),
                       weight, bool(seamless), alpha, width, height, bool(keep_metadata))


