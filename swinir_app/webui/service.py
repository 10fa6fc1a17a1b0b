"""The web app's service: models, runs, batches, limits and temporary files. No gradio here.

:mod:`.page` builds the page and the API on top of :class:`WebApp`; :mod:`.cli` is ``python app.py``.
Uploads reach this module as files and are decoded here, so that a bad file gets a one-line reason
rather than a bare "Error". Models stay loaded between requests, and one job runs at a time per
device. The engine knows nothing of this package: dependencies point from here to it.
"""
from __future__ import annotations

import atexit
import difflib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import anyio
import cv2
import numpy as np

from ..checkpoint import ModelLoadError
from ..engine import (DEFAULT_MODEL, PRECISIONS, ModelOutputError, Restorer, SettingError, available_memory, is_oom,
                      parse_tile as _parse_tile, resize_lanczos, resolve_device, resolve_precision)
from ..images import ImageReadError, LoadedImage, atomic_file, encode_image, read_image
from ..network import SwinIRConfig
from ..protocol.degrade import jpeg_input, noisy_input, quantize
from ..zoo import ZOO, ZooEntry, bundled_entries, find_entry, is_cached, load_model, param_count, weights_home
from .jobs import Cancelled, FairSlot, Job, OverBudget, Registry, WebError, check

log = logging.getLogger("swinir_app.webui")
T = TypeVar("T")

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
PREVIEW_MAX_SIDE = 2048  # the slider shows at most this; the download is always full size
RESULT_TTL = 120.0  # seconds our copy of a result stays: gradio serves the download from its own copy
CACHE_TTL = (600, 1800)  # gradio's cache (uploads, result copies): every 10 min, delete what is over 30 min old
MAX_ZIP_MEMBERS = 1_000
MAX_PASSES = 4096  # model passes (tiles x self-ensemble) per image: one request cannot hold the device for hours
UNTILED_MEMORY_SHARE = 0.25  # an untiled run that needs more than this share of free memory is tiled
GENERIC_REFUSAL = ("this model is not available here: choose one from the list, a zoo name, or a file in the "
                   "server's models folder")
CUSTOM = "__custom__"  # the model dropdown's "custom path" entry
DEVICE_QUEUE = "device"  # the concurrency group of everything that runs a model
TASK_NAMES = {"sr": "super-resolution", "denoise": "denoising", "jpeg": "JPEG artifact removal"}
_LEVEL_NAME = re.compile(r"^(?P<family>.+-(?:dn|jpeg))-(?P<level>\d+)$")


# ---------------------------------------------------------------------------------------------
# Settings


def parse_size(text: Union[str, int]) -> int:
    """'50mb', '2 GB', '1048576' -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", str(text).lower())
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 20mb, 1gb, 500kb)")
    unit = m.group(2).rstrip("b").rstrip("i")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(unit or " "))


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024
    return str(n)


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


@dataclass
class Result:
    name: str
    loaded: LoadedImage
    model_input: np.ndarray  # after the optional degradation: what the model saw
    output: np.ndarray
    seconds: float
    label: str
    scale_text: str
    task: str
    note: str = ""  # e.g. that the run was tiled automatically


# ---------------------------------------------------------------------------------------------
# Models


def task_label(config: SwinIRConfig) -> str:
    gray = "gray " if config.in_chans == 1 else ""
    if config.task == "sr":
        return f"{gray}super-resolution ×{config.upscale}"
    return gray + TASK_NAMES[config.task]


def short_task(config: SwinIRConfig) -> str:
    """'×4', 'gray ×2', 'denoise', 'JPEG': a task in a word or two, for the model list."""
    gray = "gray " if config.in_chans == 1 else ""
    return f"{gray}×{config.upscale}" if config.task == "sr" else gray + {"denoise": "denoise"}.get(
        config.task, "JPEG")


def _spec_key(spec: str, device) -> tuple:
    path = Path(spec).expanduser()
    if path.exists():
        stat = path.stat()
        return str(path.resolve()), stat.st_mtime_ns, str(device)  # a retrained file is reloaded
    entry = find_entry(spec)
    return (entry.name if entry else spec), str(device)


class ModelCache:
    """Loaded models by spec and device, least recently used dropped first; loaded once each."""

    def __init__(self, device, weights_dir=None, size: int = 2):
        self.device, self.weights_dir, self.size = device, weights_dir, max(1, size)
        self._models: "OrderedDict[tuple, object]" = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, spec: str):
        key = _spec_key(spec, self.device)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            while len(self._models) >= self.size:  # make room before loading the next one
                self._models.popitem(last=False)
                if self.device.type == "cuda":
                    import torch
                    torch.cuda.empty_cache()
            try:
                model = load_model(spec, device=self.device, weights_dir=self.weights_dir)
            except ModelLoadError as e:
                raise WebError(f"cannot load model {spec}: {e}") from None
            except Exception as e:  # noqa: BLE001 - device or memory trouble: one line
                raise WebError(f"cannot load model {spec}: {type(e).__name__}: {_one_line(e)}") from None
            self.loads += 1
            self._models[key] = model
            return model

    def __contains__(self, spec: str) -> bool:
        return _spec_key(spec, self.device) in self._models


@dataclass
class ModelInfo:
    spec: str
    label: str
    config: SwinIRConfig
    entry: Optional[ZooEntry] = None
    levels: List[Tuple[str, str]] = field(default_factory=list)  # (label, spec) of sibling variants

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def level(self) -> Optional[int]:
        m = _LEVEL_NAME.match(self.entry.name) if self.entry else None
        return int(m.group("level")) if m else None

    def markdown(self) -> str:
        c = self.config
        parts = [f"**{_md_escape(self.label)}** · {task_label(c)}", f"{param_count(c) / 1e6:.2f} M parameters",
                 f"window {c.window_size}"]
        if self.task == "denoise":
            parts.append(f"trained for noise σ = {self.level}" if self.level else "noise level not recorded")
        elif self.task == "jpeg":
            parts.append(f"trained for JPEG quality {self.level}" if self.level else "JPEG quality not recorded")
        if self.entry is not None and self.entry.description:
            parts.append(_md_escape(self.entry.description))
        return " · ".join(parts)


def _label(spec: str) -> str:
    path = Path(spec)
    return path.name if (os.sep in spec or "/" in spec or path.suffix) else spec


MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".onnx")


@dataclass
class ModelPolicy:
    """Which model specs a remote user may load: this server's files stay its own.

    Allowed: the operator's ``--model``, bundled models, zoo names (downloaded ones, or any with
    ``allow_downloads``), and files or training folders inside ``models_dir``. Anything else is
    refused with :data:`GENERIC_REFUSAL`, whatever the reason, so that no answer tells whether a path
    exists, is a folder or is readable. ``allow_any_path`` turns the policy off (local use only).
    """

    models_dir: Path
    explicit: Optional[str] = None
    weights_dir: Optional[str] = None
    allow_any_path: bool = False
    allow_downloads: bool = False
    offered: Sequence[str] = ()  # what the page lists: typos get a suggestion among these, and only these

    def check(self, spec: str) -> str:
        """The spec to load for ``spec``, or :class:`WebError`."""
        spec = spec.strip()
        if self.allow_any_path or spec == self.explicit:
            return spec
        if not any(c in spec for c in "/\\") and not spec.startswith(("~", ".")):
            entry = find_entry(spec)
            if entry is not None:
                if entry.path or is_cached(entry, self.weights_dir) or self.allow_downloads:
                    return entry.name
                raise WebError(f"{entry.name} is not downloaded on this server, and it does not download models "
                               f"for its users; its operator can fetch it once (python -c \"import swinir_app; "
                               f"swinir_app.load_model('{entry.name}')\") or start the app with --allow-downloads")
        candidate = Path(spec)
        root = self.models_dir.resolve()
        try:
            real = (candidate if candidate.is_absolute() else root / candidate).resolve(strict=True)
            allowed = real.is_relative_to(root) and (real.is_dir() or (real.is_file() and
                                                                        real.suffix in MODEL_SUFFIXES))
        except (OSError, RuntimeError, ValueError):
            allowed = False
        if not allowed:
            close = difflib.get_close_matches(spec, list(self.offered), n=2)  # the page's list: nothing new told
            raise WebError((f"did you mean {' or '.join(close)}? " if close else "") + GENERIC_REFUSAL)
        return str(real)

    def local_files(self, limit: int = 200) -> List[Path]:
        """Checkpoint files in the models folder (zoo downloads included), relative to it."""
        root = self.models_dir.resolve()
        if not root.is_dir():
            return []
        found = []
        for path in sorted(root.rglob("*")):
            if len(found) >= limit:
                break
            if path.suffix in MODEL_SUFFIXES and path.is_file() and not any(p.startswith(".") for p in
                                                                            path.relative_to(root).parts):
                found.append(path.relative_to(root))
        return found


class Catalogue:
    """Which models the page offers: the --model spec, the bundled ones, the cached zoo ones and the
    other checkpoint files in the models folder."""

    def __init__(self, explicit: Optional[str], weights_dir=None, models_dir: Optional[Path] = None):
        self.explicit, self.weights_dir = explicit, weights_dir
        # The real-photo model first (most uploads are noisy, blurred, compressed phone pictures), then the CLI's.
        preferred = ("bundled-real-x4", DEFAULT_MODEL)
        self.bundled = sorted(bundled_entries(), key=lambda e: (preferred.index(e.name) if e.name in preferred
                                                                else len(preferred), e.name))
        self.cached = [e for e in ZOO.values() if is_cached(e, weights_dir)]
        zoo_files = {e.filename for e in self.cached}
        policy = ModelPolicy(Path(models_dir) if models_dir else weights_home(weights_dir))
        self.files = [str(f) for f in policy.local_files() if f.name not in zoo_files]

    def available(self) -> List[ZooEntry]:
        return [*self.bundled, *self.cached]

    def choices(self) -> List[Tuple[str, str]]:
        items = []
        if self.explicit and not any(self.explicit in e.names for e in self.available()):
            items.append((f"{_label(self.explicit)} (--model)", self.explicit))
        # Short labels, so the chosen one fits the box; the full description is shown below it.
        items += [(f"{e.name} ({short_task(e.config)}, {e.description or 'bundled'})", e.name) for e in self.bundled]
        items += [(f"{e.name} ({short_task(e.config)})", e.name) for e in self.cached]
        items += [(f"{f} (models folder)", f) for f in self.files]
        items.append(("Custom checkpoint or zoo name…", CUSTOM))
        return items

    def default(self) -> Optional[str]:
        if self.explicit:
            return next((e.name for e in self.available() if self.explicit in e.names), self.explicit)
        # The first bundled model: the real-photo one when it is there, else the CLI's default.
        return next((e.name for e in self.available()), None)

    def siblings(self, entry: Optional[ZooEntry]) -> List[Tuple[str, str]]:
        """Other trained levels of a denoising / JPEG model that are here: (label, name)."""
        m = _LEVEL_NAME.match(entry.name) if entry else None
        if not m:
            return []
        symbol = "σ = " if m.group("family").endswith("dn") else "quality "
        found = []
        for e in self.available():
            n = _LEVEL_NAME.match(e.name)
            if n and n.group("family") == m.group("family"):
                found.append((int(n.group("level")), f"{symbol}{n.group('level')}", e.name))
        return [(label, name) for _, label, name in sorted(found)]


# ---------------------------------------------------------------------------------------------
# Pixels


def _split_alpha(a: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    if a.ndim == 3 and a.shape[2] in (2, 4):
        return a[:, :, :-1], a[:, :, -1:]
    return a, None


def _join_alpha(color: np.ndarray, alpha: Optional[np.ndarray]) -> np.ndarray:
    if alpha is None:
        return color
    if color.ndim == 2:
        color = color[:, :, None]
    return np.concatenate([color, alpha.astype(color.dtype)], axis=2)


def add_noise(a: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """The protocol's Gaussian noise of ``sigma`` (0-255 scale) on the color channels, stored in the
    image's own depth; alpha untouched."""
    color, alpha = _split_alpha(a)
    return _join_alpha(quantize(noisy_input(color, sigma, seed), a.dtype), alpha)


def jpeg_compress(a: np.ndarray, quality: int) -> np.ndarray:
    """The protocol's (OpenCV) JPEG round trip of the color channels at ``quality``, in 8 bits; alpha kept."""
    color, alpha = _split_alpha(a)
    if color.dtype == np.uint16:
        color = np.round(color / 257.0).astype(np.uint8)
        alpha = None if alpha is None else np.round(alpha / 257.0).astype(np.uint8)
    if color.ndim == 3 and color.shape[2] == 1:
        color = color[:, :, 0]
    return _join_alpha(jpeg_input(color, int(quality)), alpha)


def to_preview(a: np.ndarray) -> np.ndarray:
    """8-bit RGB / RGBA / gray pixels for the browser."""
    if a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:  # gray + alpha
        a = np.dstack([a[:, :, 0]] * 3 + [a[:, :, 1]])
    return np.ascontiguousarray(a)


def comparison(before: np.ndarray, after: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The input resized (bicubic) to the output size, and the output: 8-bit, at most PREVIEW_MAX_SIDE."""
    h, w = after.shape[:2]
    f = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
    ph, pw = max(1, round(h * f)), max(1, round(w * f))
    b, a = to_preview(before), to_preview(after)
    b = cv2.resize(b, (pw, ph), interpolation=cv2.INTER_CUBIC)
    if (ph, pw) != (h, w):
        a = cv2.resize(a, (pw, ph), interpolation=cv2.INTER_AREA)
    return b, a


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def readable(err: BaseException, limit: int = 200) -> str:
    """One line a user can act on, for an error that is not one of ours (a kernel's, the allocator's):
    what happened and what to change, with the original text cut to ``limit`` characters."""
    text = _one_line(err)
    low = text.lower()
    if isinstance(err, MemoryError) or "out of memory" in low or "can't allocate" in low or "cannot allocate" in low:
        return "out of memory: choose a smaller tile size under Advanced (or auto), or a smaller image"
    if any(k in low for k in ("primitive descriptor", "mkldnn", "onednn", "not implemented for", "no kernel")):
        head = text if len(text) <= limit else text[:limit - 1] + "…"
        return f"this device cannot run the model with these settings; choose fp32 under Advanced ({head})"
    head = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"the model failed on this image ({type(err).__name__}: {head}); the server log has the details"


def _result_suffix(task: str, scale_text: str) -> str:
    """What a result's file name gets after the input's stem: _x4, _denoised, _dejpeg."""
    return {"sr": f"_x{scale_text}", "denoise": "_denoised", "jpeg": "_dejpeg"}[task]


def _fmt_scale(s: float) -> str:
    return f"{s:g}"


# ---------------------------------------------------------------------------------------------
# The app


class TileProgress:
    """The engine's tile callback: reports progress and stops the work when Cancel was pressed."""

    def __init__(self, passes: int, report: Optional[Callable[[int, int], None]], cancel: threading.Event):
        self.passes, self.report, self.cancel, self.finished = passes, report, cancel, 0

    def check(self) -> None:
        check(self.cancel)  # cancelled, or past the request's device time

    def __call__(self, done: int, total: int) -> None:
        self.check()
        if self.report is not None:
            self.report(self.finished + done, self.passes * total)
        if done == total:
            self.finished += total


@dataclass
class BatchResult:
    zip_path: Path
    done: int
    errors: List[str]  # one line per image that failed
    seconds: float
    label: str
    skipped: List[str] = field(default_factory=list)  # files left out on purpose (hidden files), one line each
    not_done: int = 0  # images left when the request's budget ran out

    def summary(self) -> str:
        total = self.done + len(self.errors) + self.not_done
        return f"{self.done} of {total} image{'s' if total != 1 else ''} done in {self.seconds:.1f} s · {self.label}"

    def text(self) -> str:
        return "\n".join([self.summary(), *self.errors, *self.skipped])

    def markdown(self) -> str:
        lines = [f"**{_md_escape(self.summary())}**"]
        if self.errors:
            lines.append(f"\n**{len(self.errors)} failed** (also listed in errors.txt in the zip):\n")
            lines += [f"- {_md_escape(e)}" for e in self.errors]
        if self.skipped:
            lines.append("\n**Skipped:**\n")
            lines += [f"- {_md_escape(e)}" for e in self.skipped]
        return "\n".join(lines)


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


@dataclass
class VideoRun:
    path: Path
    frames: int
    size: Tuple[int, int]  # output width, height
    seconds: float
    label: str
    note: str = ""

    def text(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.frames} frames in {self.seconds:.1f} s ({rate:.2f} frames/s) · {self.size[0]}×{self.size[1]} · "
                f"{self.label}" + (f" · {self.note}" if self.note else ""))


class WebApp:
    """The state behind the page: the model cache, the device lock, cancel flags and result files."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.device = resolve_device(config.device)
        models_dir = Path(config.models_dir).expanduser() if config.models_dir else weights_home(config.weights_dir)
        self.policy = ModelPolicy(models_dir, config.model, config.weights_dir, config.allow_any_model_path,
                                  config.allow_downloads)
        self.catalogue = Catalogue(config.model, config.weights_dir, models_dir)
        self.policy.offered = [v for _, v in self.catalogue.choices() if v != CUSTOM]
        self.models = ModelCache(self.device, config.weights_dir, config.cache_models)
        # One job on the device at a time, for one image or frame at a time, in turn by owner; a
        # cancelled job's thread finishes its tile before the next job starts.
        self.device_lock = FairSlot()
        self.jobs = Registry()
        self.workdir = Path(tempfile.mkdtemp(prefix="swinir_webui_"))
        atexit.register(shutil.rmtree, self.workdir, True)
        self.default_spec = self.catalogue.default()
        self.gradio_cache: Optional[Path] = None  # counted in the quota when it is ours (see main)

    # ---- models ----------------------------------------------------------------------------

    def describe(self, spec: str) -> ModelInfo:
        spec = self.policy.check(spec)
        entry = find_entry(spec) if not Path(spec).expanduser().exists() else None
        if entry is not None and not (entry.path or is_cached(entry, self.config.weights_dir)):
            # A zoo name not downloaded yet: describe it without downloading (that happens on Run).
            return ModelInfo(spec, entry.name, entry.config, entry, self.catalogue.siblings(entry))
        model = self.models.get(spec)
        return ModelInfo(spec, entry.name if entry else _label(spec), model.config, entry,
                         self.catalogue.siblings(entry))

    def custom_hint(self) -> str:
        """What the custom model field takes on this server."""
        if self.config.allow_any_model_path:
            return "Enter a checkpoint path, a training folder or a zoo name."
        zoo = ("a zoo name (zoo models not here yet are downloaded on first use)" if self.config.allow_downloads
               else "the name of a zoo model already downloaded on this server")
        return f"Enter a checkpoint file in this server's models folder, or {zoo}."

    def new_job(self, request: Optional[Any] = None) -> Job:
        """A job for a request that starts now: its own cancel token, and this server's budgets."""
        owner = getattr(request, "session_hash", None) or "-"
        return Job(owner, self.config.max_request_seconds, self.config.max_request_pixels)

    async def run_cancellable(self, work: Callable[[Job], T], request: Optional[Any], kind: str = "run") -> T:
        """``work(job)`` in a worker thread. When gradio cancels the event (the page's Cancel, or a
        client's ``job.cancel()``), that job, and only it, is cancelled: the work stops at its next tile
        or residual group, so the device is free for the next job within seconds."""
        job = self.new_job(request)
        with self.jobs.running(job, kind):
            try:
                return await anyio.to_thread.run_sync(work, job, abandon_on_cancel=True)
            except BaseException:  # the event's cancellation included
                job.set()
                raise

    def cancel(self, request: Optional[Any], kind: str = "run") -> int:
        """The page's Cancel: the session's running jobs of this kind (its later ones are not affected)."""
        return self.jobs.cancel(getattr(request, "session_hash", None) or "-", kind)

    def precisions(self) -> List[str]:
        """The precisions that run natively on the app's device, 'auto' first."""
        ok = []
        for p in PRECISIONS:
            try:
                resolve_precision(p, self.device)
                ok.append(p)
            except SettingError:
                pass
        return ok

    def restorer(self, s: RunSettings) -> Restorer:
        model = self.models.get(self.policy.check(s.spec))
        try:
            return Restorer(model, tile=s.tile, tile_overlap=int(s.tile_overlap), precision=s.precision,
                            device=self.device, self_ensemble=bool(s.self_ensemble))
        except ValueError as e:
            raise WebError(_one_line(e)) from None

    # ---- one image -------------------------------------------------------------------------

    def read(self, source, name: str) -> LoadedImage:
        try:
            return read_image(source, max_pixels=self.config.max_pixels, name=name)
        except ImageReadError as e:
            raise WebError(str(e)) from None

    def process(self, restorer: Restorer, loaded: LoadedImage, name: str, s: RunSettings,
                progress: TileProgress) -> Result:
        a = loaded.array
        task = restorer.config.task
        h, w = a.shape[:2]
        scale = restorer.scale
        final = s.outscale if task == "sr" and s.outscale and abs(s.outscale - scale) > 1e-6 else None
        pixels = h * w * max(scale, final or 0) ** 2
        if pixels > self.config.max_output_pixels:
            f = final or scale
            raise WebError(f"{name}: the output would be {round(w * f):,}x{round(h * f):,} = {pixels:,.0f} pixels, "
                           f"over the limit of {self.config.max_output_pixels:,}; choose a smaller output scale or "
                           f"image")
        note = self._tile_if_too_big(restorer, h, w)
        passes = restorer.tiling(h, w).count
        if passes > MAX_PASSES:
            raise WebError(f"{name}: {passes:,} tiles is over the limit of {MAX_PASSES:,}; choose a larger tile size "
                           f"under Advanced (or auto)")
        if s.degrade and task == "denoise":
            a = add_noise(a, float(s.degrade))
        elif s.degrade and task == "jpeg":
            a = jpeg_compress(a, int(s.degrade))
        progress.check()
        start = time.perf_counter()
        # Cancel is checked between tiles, residual groups and their transformer blocks, so it stops an
        # untiled run within a second or two too (an ONNX graph: the engine polls ``cancel`` while it runs).
        hooks = [m.register_forward_pre_hook(lambda *_: progress.check())
                 for layer in getattr(restorer.model, "layers", []) for m in layer.modules()
                 if m is layer or hasattr(m, "attn")]
        try:
            out = restorer.restore(a, callback=progress, cancel=progress.check)
        except (Cancelled, WebError):
            raise
        except ModelOutputError as e:  # NaN/Inf: a black image must not pass as a result
            raise WebError(f"{name}: {_one_line(e)}") from None
        except Exception as e:
            if is_oom(e):
                raise WebError(f"{name}: out of memory; choose a smaller tile size under Advanced") from None
            log.exception("restoring %s failed", name)
            raise WebError(f"{name}: {readable(e)}") from None
        finally:
            for hook in hooks:
                hook.remove()
        if final:
            out = resize_lanczos(out, (max(1, round(h * final)), max(1, round(w * final))))
            scale = final
        seconds = time.perf_counter() - start
        return Result(name, loaded, a, out, seconds, _label(s.spec), _fmt_scale(scale), task, note)

    def _tile_if_too_big(self, restorer: Restorer, h: int, w: int) -> str:
        """A run whose tiles (the whole image, untiled) would need over a quarter of free memory is
        tiled from free memory instead: says so, or ''."""
        if restorer.tile == "auto":
            return ""
        side = restorer.tile
        need = restorer.bytes_per_pixel() * (h * w if side is None else min(side, h) * min(side, w))
        if need <= UNTILED_MEMORY_SHARE * available_memory(restorer.device):
            return ""
        restorer.tile = "auto"
        what = "the whole image at once" if side is None else f"{side}-pixel tiles"
        return f"tiled automatically: {what} would need about {human_size(need)}"

    def restore_file(self, path: Optional[str], s: RunSettings, cancel: threading.Event,
                     report: Optional[Callable[[int, int], None]] = None) -> Result:
        if not path:
            raise WebError("no image: upload, drop or paste one first")
        name = Path(path).name
        loaded = self.read(path, name)
        progress = TileProgress(8 if s.self_ensemble else 1, report, cancel)
        with self.device_lock.hold(cancel):
            progress.check()
            restorer = self.restorer(s)
            return self.process(restorer, loaded, name, s, progress)

    def result_file(self, result: Result) -> Path:
        """The full-resolution PNG (16-bit kept) in a fresh folder, named after the input."""
        data = encode_image(result.output, ".png", icc_profile=result.loaded.icc_profile)
        folder = self.new_result_folder(len(data))
        path = folder / f"{Path(result.name).stem}{_result_suffix(result.task, result.scale_text)}.png"
        path.write_bytes(data)
        return path

    def new_result_folder(self, size: int) -> Path:
        """A fresh folder for a result of ``size`` bytes, after making room for it within the quota.

        Our copy of a result is needed only until gradio has copied it into its cache (which serves the
        download), so it goes after :data:`RESULT_TTL`; gradio's cache keeps files :data:`CACHE_TTL`.
        Beyond that, the oldest files go first whenever results and uploads together would pass
        ``max_temp_size``.
        """
        quota = self.config.max_temp_size
        if size > quota:
            raise WebError(f"the result ({human_size(size)}) is larger than this server's temporary space "
                           f"({human_size(quota)}); choose a smaller output scale or image")
        now = time.time()
        for folder in self.workdir.glob("result_*"):
            try:
                if now - folder.stat().st_mtime > RESULT_TTL:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass
        self.make_room(size)
        return Path(tempfile.mkdtemp(dir=self.workdir, prefix="result_"))

    def make_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit in ``max_temp_size``, after the oldest idle files went."""
        limit = self.config.max_temp_size - size
        left = enforce_quota([self.workdir, *([self.gradio_cache] if self.gradio_cache else [])], max(limit, 0))
        return size <= self.config.max_temp_size and left <= limit

    def info(self, r: Result) -> str:
        """The line under the result: time taken, sizes, model."""
        h, w = r.model_input.shape[:2]
        oh, ow = r.output.shape[:2]
        depth = " · 16-bit" if r.output.dtype == np.uint16 else ""
        scale = f" (x{r.scale_text})" if r.task == "sr" else ""
        return f"{r.seconds:.2f} s · {w}×{h} → {ow}×{oh} · {r.label}{scale}{depth}" + (f" · {r.note}" if r.note else "")

    # ---- videos ----------------------------------------------------------------------------

    def restore_video(self, path: Optional[str], s: RunSettings, cancel: threading.Event,
                      report: Optional[Callable[[int, int], None]] = None) -> VideoRun:
        """A short clip, restored frame by frame into the same container, its sound copied. The header
        must pass ``max_video_seconds``; then every decoded frame is counted (``max_video_frames``) and
        checked (``max_pixels``, ``max_output_pixels``, the request's pixel budget), since a header can
        lie or say nothing. Each frame takes the device in turn with other jobs. Cancel stops it at
        the next tile and leaves no file."""
        from .. import video
        if not path:
            raise WebError("no video: upload a clip first")
        src = Path(path)
        name = src.name
        if src.suffix.lower() not in video.VIDEO_EXTENSIONS:
            raise WebError(f"{name}: not a video this app reads ({', '.join(video.VIDEO_EXTENSIONS)})")
        try:
            info = video.probe(src)
        except video.VideoError as e:
            raise WebError(f"{name}: {e.reason}") from None
        limit, max_frames, max_pixels = self.config.max_video_seconds, self.config.max_video_frames, \
            self.config.max_pixels
        if info.seconds > limit:
            raise WebError(f"{name}: {info.seconds:.1f} s is longer than this server's limit of {limit:g} s; "
                           f"send a shorter clip")
        w, h = info.width, info.height
        if w * h > max_pixels:
            raise WebError(f"{name}: {w}x{h} frames exceed the limit of {max_pixels:,} pixels")
        progress = TileProgress(8 if s.self_ensemble else 1, None, cancel)
        with self.device_lock.hold(cancel):
            progress.check()
            restorer = self.restorer(s)
        scale = restorer.scale
        final = s.outscale if restorer.config.task == "sr" and s.outscale and abs(s.outscale - scale) > 1e-6 \
            else None
        if w * h * (final or scale) ** 2 > self.config.max_output_pixels:
            raise WebError(f"{name}: its frames would have {w * h * (final or scale) ** 2:,.0f} pixels, over the "
                           f"limit of {self.config.max_output_pixels:,}; choose a smaller output scale")
        note = self._tile_if_too_big(restorer, h, w)
        task = restorer.config.task
        frames = 0

        def restore(a: np.ndarray) -> np.ndarray:
            nonlocal frames
            progress.check()
            frames += 1
            if frames > max_frames:
                raise WebError(f"{name}: stopped at frame {frames:,}: over this server's limit of {max_frames:,} "
                               f"frames; send a shorter clip")
            fh, fw = a.shape[:2]
            if fw * fh > max_pixels:
                raise WebError(f"{name}: frame {frames} is {fw}x{fh} = {fw * fh:,} pixels, over the limit of "
                               f"{max_pixels:,}")
            if isinstance(cancel, Job):
                cancel.spend(round(fw * fh * (1 + max(scale, final or 0) ** 2)), f"{name}: stopped at frame {frames}")
            with self.device_lock.hold(cancel):
                return self.process(restorer, LoadedImage(a), name, s, progress).output

        def frame_done(done: int, total: int) -> None:
            progress.check()
            if report:
                report(done, total)
        # The result's size is known only roughly before: room for the input's size again, x scale².
        folder = self.new_result_folder(int(src.stat().st_size * (final or scale) ** 2))
        dst = folder / f"{src.stem}{_result_suffix(task, _fmt_scale(final or scale))}{src.suffix.lower()}"
        start = time.perf_counter()
        try:
            result = video.restore_video(src, dst, restore, max_seconds=limit, on_frame=frame_done)
        except video.VideoError as e:
            raise WebError(f"{name}: {e.reason}") from None
        return VideoRun(dst, result.frames, (result.width, result.height), time.perf_counter() - start,
                        _label(s.spec), note)

    # ---- many images -----------------------------------------------------------------------

    def batch_items(self, paths: Sequence[str], errors: List[str], opened: List[zipfile.ZipFile],
                    skipped: Optional[List[str]] = None) -> Iterator[Tuple[str, Callable[[], object]]]:
        """(name, source) for every image: plain files, and the members of zip files (left open in ``opened``).

        Zip files are checked before anything is inflated: at most :data:`MAX_ZIP_MEMBERS` files, no two
        entries sharing their bytes (a bomb of overlapping entries), each within the upload limit and
        all of a request within ``max_batch_size`` uncompressed. Every file left out gets a line.
        """
        budget = self.config.max_batch_size
        for p in paths:
            path = Path(p)
            if path.suffix.lower() != ".zip":
                budget -= path.stat().st_size if path.is_file() else 0
                yield _printable(path.name), (lambda path=path: path)
                continue
            try:
                zf = zipfile.ZipFile(path)
                members = [m for m in zf.infolist() if not m.is_dir()]
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                errors.append(f"{path.name}: not a valid zip file ({_one_line(e)})")
                continue
            opened.append(zf)
            problem = zip_problem(members)
            if problem:
                errors.append(f"{path.name}: refused: {problem}")
                continue
            hidden = [m for m in members if any(part.startswith((".", "__MACOSX"))
                                                for part in PurePosixPath(m.filename).parts)]
            if hidden:
                (errors if skipped is None else skipped).append(
                    f"{path.name}: skipped {len(hidden)} hidden file{'s' if len(hidden) > 1 else ''} "
                              f"(names starting with '.' or __MACOSX): "
                              + ", ".join(_printable(m.filename) for m in hidden[:3]) + (", ..." if len(hidden) > 3
                                                                                         else ""))
            for m in members:
                if m in hidden:
                    continue
                name = f"{path.stem}/{_printable(m.filename)}"
                if m.file_size > self.config.max_file_size:  # a zip bomb is refused before it is inflated
                    errors.append(f"{name}: {human_size(m.file_size)} uncompressed exceeds the upload limit "
                                  f"of {human_size(self.config.max_file_size)}")
                    continue
                if m.file_size > budget:
                    errors.append(f"{name}: skipped: the images of one batch may take "
                                  f"{human_size(self.config.max_batch_size)} uncompressed in all")
                    continue
                budget -= m.file_size

                def load(zf=zf, m=m, name=name):
                    try:
                        return zf.read(m)
                    except Exception as e:  # noqa: BLE001 - bad CRC, unsupported compression...
                        raise WebError(f"{name}: cannot extract from the zip ({_one_line(e)})") from None
                yield name, load

    def run_batch(self, paths: Sequence[str], s: RunSettings, cancel: threading.Event,
                  report: Optional[Callable[[float, str], None]] = None) -> "BatchResult":
        """Every image into one zip of PNGs, written to a temp name and renamed; failures in errors.txt."""
        paths = [str(p) for p in (paths or []) if p]
        if not paths:
            raise WebError("no files: add images or a zip first")
        errors: List[str] = []
        opened: List[zipfile.ZipFile] = []
        done, start, used, written, not_done = 0, time.perf_counter(), set(), 0, 0
        final = self.new_result_folder(0) / "swinir_results.zip"
        skipped: List[str] = []
        try:
            items = list(self.batch_items(paths, errors, opened, skipped))  # listings only: pixels read one by one
            # The device is taken for one image at a time: other users' jobs get their turns in between.
            with atomic_file(final) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as out:
                for i, (name, source) in enumerate(items):
                    if report:
                        report(i / len(items), name)
                    tiles = TileProgress(8 if s.self_ensemble else 1, None, cancel)
                    try:
                        tiles.check()
                        loaded = self.read(source(), name)
                        with self.device_lock.hold(cancel):
                            tiles.check()
                            restorer = self.restorer(s)
                            if isinstance(cancel, Job):
                                h, w = loaded.array.shape[:2]
                                k = s.outscale if restorer.config.task == "sr" and s.outscale else restorer.scale
                                cancel.spend(round(h * w * (1 + max(k, restorer.scale) ** 2)), name)
                            result = self.process(restorer, loaded, name, s, tiles)
                        data = encode_image(result.output, ".png", icc_profile=loaded.icc_profile)
                    except OverBudget as e:  # the rest of the request is not done either
                        errors.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
                        not_done = len(items) - i - 1
                        if not_done:
                            skipped.append(f"{not_done:,} more not done: the request's budget is spent")
                        break
                    except WebError as e:
                        errors.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
                        continue
                    except Exception as e:
                        log.exception("batch: %s failed", name)
                        errors.append(f"{name}: {type(e).__name__}: {_one_line(e)}")
                        continue
                    written += len(data)
                    if written > self.config.max_temp_size:
                        raise WebError(f"the results pass this server's temporary space "
                                       f"({human_size(self.config.max_temp_size)}); send fewer or smaller images")
                    out.writestr(_unique(_safe_arcname(name), used), data)
                    done += 1
                if errors or skipped:
                    out.writestr("errors.txt", "\n".join(errors + skipped) + "\n")
        finally:
            for zf in opened:
                zf.close()
        return BatchResult(final, done, errors, time.perf_counter() - start, _label(s.spec), skipped, not_done)


def enforce_quota(folders: Sequence[Path], limit: int, min_age: float = 60.0) -> int:
    """Delete the oldest files under ``folders`` until they take at most ``limit`` bytes; returns the
    bytes left. Files younger than ``min_age`` seconds (in use by a running request) are kept.
    """
    files = []
    for folder in folders:
        for path in Path(folder).rglob("*"):
            try:
                st = path.lstat()
            except OSError:
                continue
            if path.is_file() and not path.is_symlink():
                files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, path in sorted(files):
        if total <= limit:
            break
        if now - mtime < min_age:
            continue
        try:
            path.unlink()
            total -= size
        except OSError:
            pass
    return total


def zip_problem(members: Sequence[zipfile.ZipInfo]) -> str:
    """Why a zip's listing is refused ('' if it is not): too many files, or entries that overlap.

    In a real zip every entry's bytes follow its local header and nothing else starts there; a bomb
    points many entries at one compressed member, so that a small file inflates many times over.
    """
    if len(members) > MAX_ZIP_MEMBERS:
        return f"{len(members):,} files; the limit is {MAX_ZIP_MEMBERS:,}"
    end = -1
    for m in sorted(members, key=lambda m: m.header_offset):
        if m.header_offset < end:
            return f"entries overlap ({_printable(m.filename)} starts inside another one): a zip bomb"
        end = m.header_offset + 30 + m.compress_size  # at least the fixed local header and the data
    return ""


def _printable(name: str) -> str:
    """A file name safe in a one-line report: control characters (newlines) shown as '?'."""
    return re.sub(r"[\x00-\x1f\x7f]", "?", name)


def _safe_arcname(name: str) -> str:
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    stem_path = PurePosixPath(*parts) if parts else PurePosixPath("image")
    return str(stem_path.with_suffix(".png"))


def _unique(name: str, used: set) -> str:
    candidate, n = name, 1
    while candidate in used:
        p = PurePosixPath(name)
        candidate = str(p.with_name(f"{p.stem}_{n}{p.suffix}"))
        n += 1
    used.add(candidate)
    return candidate


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


# ---------------------------------------------------------------------------------------------
# The page


def make_examples(folder: Path) -> List[str]:
    """Small crops of scikit-image's bundled photos, written to ``folder`` (not into the repo)."""
    try:
        import skimage.data
    except ImportError:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    crops = [("chelsea", (slice(40, 200), slice(100, 300))), ("coffee", (slice(40, 200), slice(150, 390))),
             ("astronaut", (slice(20, 180), slice(140, 340))), ("camera", (slice(60, 220), slice(180, 380)))]
    paths = []
    for name, crop in crops:
        try:
            a = getattr(skimage.data, name)()[crop]
        except Exception:  # noqa: BLE001 - a missing sample is no reason not to start
            continue
        path = folder / f"{name}.png"
        path.write_bytes(encode_image(np.ascontiguousarray(a), ".png"))
        paths.append(str(path))
    return paths


def _settings(spec, outscale=None, degrade=0, tile="auto", tile_overlap=32, precision="auto",
              self_ensemble=False) -> RunSettings:
    spec = (spec or "").strip()
    if not spec:
        raise WebError("no model: choose one, or enter a checkpoint path or zoo name")
    outscale = float(outscale) if outscale else None
    if outscale is not None and not 0 < outscale <= MAX_OUTSCALE:
        raise WebError(f"output scale must be above 0 and at most {MAX_OUTSCALE:g}, got {outscale:g}")
    degrade = float(degrade or 0)
    if not 0 <= degrade <= 100:
        raise WebError(f"the degradation (noise sigma or JPEG quality) must be from 0 to 100, got {degrade:g}")
    overlap = int(tile_overlap if tile_overlap is not None else 32)
    if not 0 <= overlap <= 512:
        raise WebError(f"tile overlap must be from 0 to 512 pixels, got {overlap}")
    return RunSettings(spec, outscale, degrade, parse_tile(tile), overlap, precision or "auto", bool(self_ensemble))


