"""The web app's service: one image, one video, on models kept loaded. No gradio here.

:mod:`.page` builds the page and the API on top of :class:`WebApp`; :mod:`.batch` runs batches over it;
:mod:`.cli` is ``python app.py``. Uploads reach this module as files and are decoded here, so that a bad
file gets a one-line reason rather than a bare "Error". Models stay loaded between requests, and one job
runs at a time per device. Below it: :mod:`.settings` (settings and limits), :mod:`.catalogue` (which
models, data only), :mod:`.storage` (temporary files and their quota), :mod:`.zips` and :mod:`.jobs`.
The engine knows nothing of this package: dependencies point from here to it.
"""
from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import anyio
import cv2
import numpy as np

from ..checkpoint import ModelLoadError
from ..engine import ModelOutputError, Restorer, SettingError, is_oom, resolve_device
from ..resize import final_size, resize_lanczos
from ..precision import PRECISIONS, resolve_precision
from ..images import ImageReadError, LoadedImage, encode_image, read_image
from ..protocol.degrade import jpeg_input, noisy_input, quantize
from ..network.family import capabilities_of
from ..network.int8 import quantize_linears
from ..zoo import MixPartner, find_entry, is_cached, load_model, mix_partner, param_count, weights_home
from .catalogue import CUSTOM, Catalogue, ModelInfo, ModelPolicy, label_of
from .jobs import Cancelled, FairSlot, Job, Registry, WebError, check, one_line, readable
from .settings import MAX_PASSES, PREVIEW_MAX_SIDE, UNTILED_MEMORY_SHARE, AppConfig, RunSettings
from .storage import TempStorage
from .zips import list_images

log = logging.getLogger("swinir_app.webui")
T = TypeVar("T")


def _memory_note(plan) -> str:
    """The engine's note when it tiled a run from free memory because the settings would not fit, or ''."""
    return "; ".join(str(n) for n in plan.notes if plan.from_memory)


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

    def get(self, spec: str, mix: Optional[Tuple[str, float]] = None, int8: bool = False):
        """The model ``spec`` names, loaded once; with ``mix`` = (partner, w), its weights blended with the
        partner's, once per (model, partner, w): a cache entry of its own. ``int8``: its transformer linears
        made int8 once (:func:`~swinir_app.network.int8.quantize_linears`, weights packed on the first run),
        another entry; a model that cannot be converted is kept as it is, for the engine to refuse."""
        key = _spec_key(spec, self.device) + (("mix", *_spec_key(mix[0], self.device), mix[1]) if mix else ())
        key += ("int8",) if int8 else ()
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
                model = load_model(spec, device=self.device, weights_dir=self.weights_dir, mix=mix)
            except ModelLoadError as e:
                raise WebError(f"cannot load model {spec}: {e}") from None
            except Exception as e:  # noqa: BLE001 - device or memory trouble: one line
                raise WebError(f"cannot load model {spec}: {type(e).__name__}: {one_line(e)}") from None
            self.loads += 1
            caps = getattr(model, "capabilities", None)
            if int8 and caps is not None and "int8" in caps.precisions and not caps.own_precision:
                try:
                    model = quantize_linears(model, inplace=True)
                except (RuntimeError, ValueError):  # this CPU cannot: the engine says why in one line
                    pass
            self._models[key] = model
            return model

    def __contains__(self, spec: str) -> bool:
        return _spec_key(spec, self.device) in self._models  # the model alone (a mixed one is another entry)


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
    sized: bool = False  # resized to a target width/height (the file name then says the size)
    keep_metadata: bool = True  # the result file carries the source's EXIF (orientation 1), XMP and IPTC


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


def _result_suffix(task: str, scale_text: str, size: Optional[Tuple[int, int]] = None) -> str:
    """What a result's file name gets after the input's stem: _x4, _denoised, _dejpeg; _1920x1080 for a
    target size (width x height)."""
    if size is not None:
        return f"_{size[0]}x{size[1]}"
    return {"sr": f"_x{scale_text}", "denoise": "_denoised", "jpeg": "_dejpeg"}[task]


def _has_alpha_to_restore(a: np.ndarray) -> bool:
    """An alpha channel that the engine runs through the model with alpha="model" (not a uniform one)."""
    return a.ndim == 3 and a.shape[2] in (2, 4) and a[:, :, -1].min() != a[:, :, -1].max()


def _fmt_scale(s: float) -> str:
    return f"{s:g}"


# ---------------------------------------------------------------------------------------------
# The service


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
        self.storage = TempStorage(config)
        self.default_spec = self.catalogue.default()

    @property
    def workdir(self) -> Path:
        return self.storage.workdir

    @property
    def gradio_cache(self) -> Optional[Path]:
        """Gradio's cache, counted in the quota when it is ours (see cli.main)."""
        return self.storage.gradio_cache

    @gradio_cache.setter
    def gradio_cache(self, folder: Optional[Path]) -> None:
        self.storage.gradio_cache = folder

    # ---- models ----------------------------------------------------------------------------

    def describe(self, spec: str) -> ModelInfo:
        spec = self.policy.check(spec)
        entry = find_entry(spec) if not Path(spec).expanduser().exists() else None
        if entry is not None and not (entry.path or is_cached(entry, self.config.weights_dir)):
            # A zoo name not downloaded yet: describe it without downloading (that happens on Run).
            c = entry.config
            siblings = self.catalogue.siblings(entry)
            return ModelInfo(spec, entry.name, capabilities_of(c), param_count(c), c, entry, siblings)
        model = self.models.get(spec)
        config = model.config  # the native networks and graphs of them; None for other architectures
        parameters = sum(p.numel() for p in model.parameters()) or (param_count(config) if config else 0)
        return ModelInfo(spec, entry.name if entry else label_of(spec), model.capabilities, parameters, config, entry,
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

    def partner(self, spec: str) -> Optional[MixPartner]:
        """The model's mixing partner (the bundled pair), oriented from it; None if it has none."""
        return mix_partner(spec) if spec and not any(c in spec for c in "/\\") else None

    def mix_of(self, s: RunSettings, spec: Optional[str] = None) -> Optional[Tuple[str, float]]:
        """(partner, weight) for ``s`` (None for a weight of 0); a weight for a model without a partner is
        refused in one line. ``spec``: ``s.spec`` already checked against the policy."""
        if not s.mix:
            return None
        p = self.partner(spec or self.policy.check(s.spec))
        if p is None:
            raise WebError(f"{label_of(s.spec)} has no model to mix with (only the bundled pair, bundled-x4 and "
                           f"bundled-real-x4, mix); leave the mix weight at 0")
        return p.partner, s.mix

    def label(self, s: RunSettings) -> str:
        """The model as the result line names it: "bundled-x4 + 30% bundled-real-x4" for a mix."""
        mix = self.mix_of(s)
        return label_of(s.spec) + (f" + {mix[1]:.0%} {mix[0]}" if mix else "")

    def restorer(self, s: RunSettings) -> Restorer:
        spec = self.policy.check(s.spec)
        # a mix is blended once and an int8 model converted once, then kept like any model
        model = self.models.get(spec, self.mix_of(s, spec), int8=s.precision == "int8" and self.device.type == "cpu")
        try:
            return Restorer(model, tile=s.tile, tile_overlap=int(s.tile_overlap), precision=s.precision,
                            device=self.device, self_ensemble=bool(s.self_ensemble), memory_share=UNTILED_MEMORY_SHARE,
                            seamless=s.seamless, alpha=s.alpha, threads=self.config.threads)
        except ValueError as e:
            raise WebError(one_line(e)) from None

    def output_size(self, restorer: Restorer, h: int, w: int, s: RunSettings, name: str
                    ) -> Optional[Tuple[int, int]]:
        """(height, width) to resize the model's output of an h x w image to, as the CLI does
        (:func:`~swinir_app.resize.final_size`): the output scale (super-resolution only) or the target
        width/height (any task); None to keep the model's own size."""
        if s.sized:
            try:
                size = final_size(h, w, restorer.scale, None, s.width, s.height, name=name)
            except SettingError as e:
                raise WebError(f"{e.setting} {e.value}: {e.detail}") from None
        elif restorer.task == "sr" and s.outscale and abs(s.outscale - restorer.scale) > 1e-6:
            size = final_size(h, w, restorer.scale, s.outscale)
        else:
            return None
        return None if size == (h * restorer.scale, w * restorer.scale) and not s.sized else size

    # ---- one image -------------------------------------------------------------------------

    def read(self, source, name: str) -> LoadedImage:
        try:
            return read_image(source, max_pixels=self.config.max_pixels, name=name)
        except ImageReadError as e:
            raise WebError(str(e)) from None

    def process(self, restorer: Restorer, loaded: LoadedImage, name: str, s: RunSettings,
                progress: TileProgress) -> Result:
        a = loaded.array
        task = restorer.task
        h, w = a.shape[:2]
        scale = restorer.scale
        size = self.output_size(restorer, h, w, s, name)
        oh, ow = size or (h * scale, w * scale)
        pixels = max(h * w * scale ** 2, oh * ow)  # the model's output, and the final one
        if pixels > self.config.max_output_pixels:
            raise WebError(f"{name}: the output would be {ow:,}x{oh:,} = {pixels:,.0f} pixels, over the limit of "
                           f"{self.config.max_output_pixels:,}; choose a smaller "
                           f"{'size' if s.sized else 'output scale'} or image")
        if s.alpha == "model" and _has_alpha_to_restore(a):  # the alpha channel is a second pass
            progress.passes = (8 if s.self_ensemble else 1) * 2
        plan = restorer.plan(h, w, name)
        note, passes = _memory_note(plan), plan.count
        if passes > MAX_PASSES:
            raise WebError(f"{name}: {passes:,} tiles is over the limit of {MAX_PASSES:,}; choose a larger tile size "
                           f"under Advanced (or auto)")
        if s.degrade and task == "denoise":
            a = add_noise(a, float(s.degrade))
        elif s.degrade and task == "jpeg":
            a = jpeg_compress(a, int(s.degrade))
        progress.check()
        start = time.perf_counter()
        # The engine polls Cancel between tiles and inside the model (before each residual group and
        # transformer block; an ONNX graph every 0.1 s), so an untiled run stops within a second or two.
        try:
            out = restorer.restore(a, callback=progress, cancel=progress.check)
        except (Cancelled, WebError):
            raise
        except ModelOutputError as e:  # NaN/Inf: a black image must not pass as a result
            raise WebError(f"{name}: {one_line(e)}") from None
        except Exception as e:
            if is_oom(e):
                raise WebError(f"{name}: out of memory; choose a smaller tile size under Advanced") from None
            log.exception("restoring %s failed", name)
            raise WebError(f"{name}: {readable(e)}") from None
        if size is not None:
            out = resize_lanczos(out, size)
            scale = s.outscale if not s.sized else scale
        seconds = time.perf_counter() - start
        return Result(name, loaded, a, out, seconds, self.label(s), _fmt_scale(scale), task, note, s.sized,
                      s.keep_metadata)

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

    def result_png(self, result: Result) -> bytes:
        """The full-resolution PNG (16-bit kept) with the ICC profile, and unless ``keep_metadata`` was off
        the source's EXIF (orientation 1, the new size), XMP and IPTC, as the CLI writes them."""
        metadata = result.loaded.metadata if result.keep_metadata else None
        return encode_image(result.output, ".png", icc_profile=result.loaded.icc_profile, metadata=metadata)

    def result_name(self, result: Result) -> str:
        """The result file's name: the input's stem and what was done (_x4, _denoised, _1920x1080)."""
        size = (result.output.shape[1], result.output.shape[0]) if result.sized else None
        return f"{Path(result.name).stem}{_result_suffix(result.task, result.scale_text, size)}.png"

    def result_file(self, result: Result) -> Path:
        """The full-resolution PNG (:meth:`result_png`) in a fresh folder, named after the input."""
        data = self.result_png(result)
        folder = self.storage.new_result_folder(len(data))
        path = folder / self.result_name(result)
        path.write_bytes(data)
        return path


    def info(self, r: Result) -> str:
        """The line under the result: time taken, sizes, model."""
        h, w = r.model_input.shape[:2]
        oh, ow = r.output.shape[:2]
        depth = " · 16-bit" if r.output.dtype == np.uint16 else ""
        scale = f" (x{r.scale_text})" if r.task == "sr" and not r.sized else ""
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
        size = self.output_size(restorer, h, w, s, name)
        out_pixels = max(w * h * scale ** 2, size[0] * size[1] if size else 0)
        final = (size[0] / h) if size else None  # for the budgets and the folder's room
        if out_pixels > self.config.max_output_pixels:
            raise WebError(f"{name}: its frames would have {out_pixels:,.0f} pixels, over the "
                           f"limit of {self.config.max_output_pixels:,}; choose a smaller output scale")
        note = _memory_note(restorer.plan(h, w, name))
        task = restorer.task
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
        folder = self.storage.new_result_folder(int(src.stat().st_size * (final or scale) ** 2))
        suffix = _result_suffix(task, _fmt_scale(s.outscale if final and not s.sized else scale),
                                (size[1], size[0]) if s.sized else None)
        dst = folder / f"{src.stem}{suffix}{src.suffix.lower()}"
        start = time.perf_counter()
        try:
            result = video.restore_video(src, dst, restore, max_seconds=limit, on_frame=frame_done)
        except video.VideoError as e:
            raise WebError(f"{name}: {e.reason}") from None
        return VideoRun(dst, result.frames, (result.width, result.height), time.perf_counter() - start,
                        self.label(s), note)

    # ---- many images -----------------------------------------------------------------------

    # ---- many images: see :mod:`.batch` ---------------------------------------------------

    def batch_items(self, paths: Sequence[str], errors: List[str], opened: List[zipfile.ZipFile],
                    skipped: Optional[List[str]] = None) -> Iterator[Tuple[str, Callable[[], object]]]:
        """(name, source) for every image of a batch request, within its limits: :func:`.zips.list_images`."""
        return list_images(self.config, paths, errors, opened, skipped)
