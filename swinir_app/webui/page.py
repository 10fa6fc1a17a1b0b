"""The page and the API, in Gradio: the only module of the package that imports gradio.

A single-image tab (upload, drag or paste; a before/after slider; the full-resolution PNG to
download), a batch tab (images or a zip in, a zip of results out), and the ``/restore`` and
``/batch`` API endpoints. Everything that runs a model shares one concurrency group, whose jobs
take the device in turn (:class:`~.jobs.FairSlot`); the work itself is :class:`~.service.WebApp`'s
(and :mod:`.batch`'s). All the Markdown shown is rendered here.
"""
from __future__ import annotations

import base64
import logging
import re
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import gradio as gr
import numpy as np
from gradio_client import utils as client_utils

from ..engine import ALPHA_MODES
from ..images import encode_image
from ..network import SwinIRConfig
from ..network.capabilities import Capabilities
from .batch import BatchResult, run_batch
from .catalogue import CUSTOM, ModelInfo, task_label
from ..zoo import MixPartner
from .jobs import Cancelled, WebError, readable
from .service import WebApp, comparison
from ..engine import human_size
from .settings import DEVICE_QUEUE, GALLERY_ITEMS, MAX_ACTIVE_JOBS, MAX_SIDE, run_settings
from .storage import CACHE_TTL

log = logging.getLogger("swinir_app.webui")

CSS = """
#status p { margin: 0.2em 0; }
#status.failed *, #batch-report.failed * { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.limits, .hint { font-size: var(--text-sm); opacity: 0.75; }
#comparison { position: relative; }
#comparison:has(img)::before, #comparison:has(img)::after {
  position: absolute; bottom: 12px; z-index: 20; padding: 1px 8px; border-radius: 4px; pointer-events: none;
  background: rgba(0, 0, 0, 0.6); color: #fff; font-size: var(--text-sm); font-weight: 600; }
#comparison:has(img)::before { content: "Before (input, bicubic)"; left: 12px; }
#comparison:has(img)::after { content: "After"; right: 12px; }
"""
THEME_FONTS = dict(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                   font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


CANCELLED = "Cancelled: the run was stopped, there is no result."
URL_REFUSAL = ("files must be uploaded to this server first (gradio_client's handle_file does it); it does not "
               "fetch URLs")


class UploadsOnly:
    """For input components: a file given as an http(s) URL is refused, not fetched. Gradio would
    download it in full, outside the upload limits and the temp-space quota."""

    async def async_move_resource_to_block_cache(self, url_or_file_path):
        if client_utils.is_http_url_like(str(url_or_file_path or "")):
            raise gr.Error(URL_REFUSAL, print_exception=False)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def move_resource_to_block_cache(self, url_or_file_path):
        if client_utils.is_http_url_like(str(url_or_file_path or "")):
            raise gr.Error(URL_REFUSAL, print_exception=False)
        return super().move_resource_to_block_cache(url_or_file_path)

    def get_block_name(self) -> str:
        # The browser side is the gradio component's (the default would name the first base, this mixin).
        return next(c for c in type(self).__mro__ if c.__module__.startswith("gradio.")).__name__.lower()

    def get_block_class(self) -> str:
        return self.get_block_name()


class UploadedFile(UploadsOnly, gr.File):
    """gr.File for inputs: uploads only."""


class UploadedVideo(UploadsOnly, gr.Video):
    """gr.Video for inputs: uploads only."""


class ImageUpload(UploadsOnly, gr.Image):
    """gr.Image (upload, drop, paste) that hands the uploaded file over undecoded.

    gr.Image opens uploads with PIL before the event function runs, and a corrupt file then fails
    with a bare "Error". This one passes the file path on, and ``read_image`` says what is wrong.
    """

    is_template = True  # the browser side is gr.Image's
    max_bytes: Optional[int] = None  # uploads are limited by gradio; inline (pasted) images by this

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path:
            return str(payload.path)
        url = payload.url or ""
        if url.startswith("data:"):  # a pasted image sent inline
            encoded = url.split(",", 1)[1] if "," in url else ""
            size = len(encoded) * 3 // 4
            if self.max_bytes is not None and size > self.max_bytes:
                raise gr.Error(f"the pasted image ({human_size(size)}) exceeds the upload limit of "
                               f"{human_size(self.max_bytes)}", print_exception=False)
            try:
                data = base64.b64decode(encoded, validate=True)
            except ValueError:
                data = b""  # read_image says "empty file"
            folder = Path(tempfile.mkdtemp(dir=self.GRADIO_CACHE, prefix="pasted_"))
            path = folder / "pasted.png"
            path.write_bytes(data)
            return str(path)
        return None


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


def md_escape(text: str) -> str:
    """``text`` shown literally in Markdown: its special characters escaped."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


def model_info_markdown(info: ModelInfo) -> str:
    """One line on a model: its name, task, size and window, the level it was trained for, its description."""
    c = info.capabilities
    parts = [f"**{md_escape(info.label)}** · {task_label(c)}", f"{info.parameters / 1e6:.2f} M parameters",
             f"window {info.config.window_size}" if info.config is not None else md_escape(c.arch)]
    if info.task == "denoise":
        parts.append(f"trained for noise σ = {info.level}" if info.level else "noise level not recorded")
    elif info.task == "jpeg":
        parts.append(f"trained for JPEG quality {info.level}" if info.level else "JPEG quality not recorded")
    if info.entry is not None and info.entry.description:
        parts.append(md_escape(info.entry.description))
    return " · ".join(parts)


def batch_markdown(b: BatchResult) -> str:
    """The batch report: the summary, then what failed and what was skipped."""
    lines = [f"**{md_escape(b.summary())}**"]
    if b.errors:
        lines.append(f"\n**{len(b.errors)} failed** (also listed in errors.txt in the zip):\n")
        lines += [f"- {md_escape(e)}" for e in b.errors]
    if b.skipped:
        lines.append("\n**Skipped:**\n")
        lines += [f"- {md_escape(e)}" for e in b.skipped]
    return "\n".join(lines)


def status(text: str, failed: bool = False, markdown: bool = False) -> dict:
    """A status line for the page; ``failed`` shows it as an error."""
    text = text if markdown else md_escape(text)
    return gr.update(value=f"⚠️ {text}" if failed else text, elem_classes=["failed"] if failed else [])


def _props(update: dict) -> dict:
    """A gr.update() as constructor arguments."""
    return {k: v for k, v in update.items() if k != "__type__"}


def outscale_update(model: Union[None, SwinIRConfig, Capabilities]) -> dict:
    """SR models (a config or what a model declares): the output scale, the model's own by default."""
    if model is None or model.task != "sr":
        return gr.update(visible=False, value=4, label="Output scale")
    return gr.update(visible=True, value=model.scale, label="Output scale",
                     info=f"The model upscales ×{model.scale}; other values resize its output with Lanczos. "
                          f"Ignored when a target width or height is set.")


def size_update(model: Union[None, SwinIRConfig, Capabilities], which: str) -> dict:
    """SR models: a target width or height (0: not set), instead of the output scale."""
    info = {"width": "Pixels, 0: not set. Either one overrides the output scale.",
            "height": "One alone keeps the aspect ratio; both: exactly that size."}[which]
    if model is None or model.task != "sr":
        return gr.update(visible=False, value=0, label=f"Target {which}", info=info)
    return gr.update(visible=True, label=f"Target {which}", info=info)


def mix_update(partner: Optional[MixPartner]) -> dict:
    """A model with a mixing partner (the bundled pair): how much of the partner's weights, 0 = the model."""
    if partner is None:
        return gr.update(visible=False, value=0, label="Detail \u2194 clean")
    return gr.update(visible=True, value=0, label=partner.slider.capitalize(),
                     info=f"0: {partner.model} alone; 1: {partner.partner}; between: their weights blended "
                          f"({partner.model_label} to {partner.partner_label}).")


def level_update(info: Optional[ModelInfo]) -> dict:
    """Denoising / JPEG zoo models: the trained levels that are here, to switch between."""
    if info is None or info.task == "sr" or not info.levels:
        return gr.update(visible=False, choices=[], value=None, label="Trained level")
    label = "Noise level the model was trained for" if info.task == "denoise" else "JPEG quality it was trained for"
    return gr.update(visible=True, choices=info.levels, value=info.entry.name if info.entry else None, label=label,
                     info="Other trained levels that are here; choosing one switches the model.")


def degrade_update(model: Union[None, SwinIRConfig, Capabilities]) -> dict:
    """Denoising and JPEG models: an optional degradation first, to try them on clean photos."""
    task = model.task if model is not None else None
    if task == "denoise":
        return gr.update(visible=True, minimum=0, maximum=75, value=0, label="Add noise first (σ, 0 = off)",
                         info="To try the model on a clean photo: Gaussian noise is added before restoring.")
    if task == "jpeg":
        return gr.update(visible=True, minimum=0, maximum=95, value=0,
                         label="Compress as JPEG first (quality, 0 = off)",
                         info="To try the model on a clean photo: it is JPEG-compressed before restoring.")
    return gr.update(visible=False, minimum=0, maximum=100, value=0, label="Degrade first")


class Page:
    """The Blocks of the page and their event handlers; the state is the :class:`WebApp`'s."""

    def __init__(self, app: WebApp):
        self.app = app

    # ---- event handlers --------------------------------------------------------------------

    def on_model(self, choice, custom_spec):
        """The model changed: its description, and the controls of its task."""
        spec = (custom_spec or "").strip() if choice == CUSTOM else choice
        hidden = (gr.update(visible=False),) * 3 + (mix_update(None), size_update(None, "width"),
                                                    size_update(None, "height"))
        if not spec:
            return (gr.update(visible=choice == CUSTOM), self.app.custom_hint(), *hidden)
        try:
            info = self.app.describe(spec)
        except WebError as e:
            return (gr.update(visible=choice == CUSTOM), f"⚠️ {md_escape(str(e))}", *hidden)
        c = info.capabilities
        return (gr.update(visible=choice == CUSTOM), model_info_markdown(info), outscale_update(c),
                level_update(info), degrade_update(c), mix_update(self.app.partner(info.spec)),
                size_update(c, "width"), size_update(c, "height"))

    async def _page_call(self, request, outputs: int, work: Callable, kind: str) -> Tuple:
        """``work(cancel)`` for the page: every failure is a status line, and the app keeps serving."""
        def guarded(cancel):
            try:
                return work(cancel)
            except Cancelled:
                return (None,) * (outputs - 1) + (status(CANCELLED),)
            except WebError as e:
                log.info("failed: %s", e)
                return (None,) * (outputs - 1) + (status(str(e), failed=True),)
            except Exception as e:
                log.exception("page request failed")
                return (None,) * (outputs - 1) + (status(readable(e), failed=True),)
        return await self.app.run_cancellable(guarded, request, kind)

    async def ui_restore(self, image, choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v,
                         ensemble_v, mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v, request: gr.Request,
                         progress=gr.Progress()):
        def work(cancel):
            s = self._settings(choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v, ensemble_v,
                               mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v)
            # No bar until there is a fraction to show: a run in one pass reports only its end, so the
            # page shows what it does and the time so far (an indeterminate progress) instead of "0%".
            progress(None, desc="Restoring" if s.spec in self.app.models else "Loading the model")
            r = self.app.restore_file(image, s, cancel, lambda d, t: progress((d, t), desc="Restoring", unit="steps")
                                      if t > 1 else progress(None, desc="Restoring"))
            path = self.app.result_file(r)
            log.info("done: %s", self.app.info(r))
            return comparison(r.model_input, r.output), str(path), status(self.app.info(r))
        return await self._page_call(request, 3, work, "single")

    async def ui_batch(self, files, choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v,
                       ensemble_v, mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v, request: gr.Request,
                       progress=gr.Progress()):
        def work(cancel):
            s = self._settings(choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v, ensemble_v,
                               mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v)
            b = run_batch(self.app, files or [], s, cancel, lambda f, name: progress(f, desc=name))
            log.info("batch: %s", b.summary())
            gallery = gr.update(value=b.gallery or None, label=b.gallery_label())
            return str(b.zip_path), gallery, status(batch_markdown(b), markdown=True)
        return await self._page_call(request, 3, work, "batch")

    async def ui_video(self, clip, choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v,
                       ensemble_v, mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v, request: gr.Request,
                       progress=gr.Progress()):
        def work(cancel):
            s = self._settings(choice, custom_spec, outscale_v, degrade_v, tile_v, overlap_v, precision_v, ensemble_v,
                               mix_v, seamless_v, alpha_v, width_v, height_v, metadata_v)
            progress(None, desc="Restoring" if s.spec in self.app.models else "Loading the model")
            v = self.app.restore_video(clip, s, cancel, lambda d, t: progress((d, t) if t else None,
                                                                               desc="Restoring", unit="frames"))
            log.info("video: %s", v.text())
            return str(v.path), status(v.text())
        return await self._page_call(request, 2, work, "video")

    def cancel_button(self, kind: str, outputs: int) -> Callable:
        """A tab's Cancel: stops that tab's running job (at its next tile) and clears its result, which
        would otherwise stand beside the new input; with nothing running, it changes nothing."""
        def ui_cancel(request: gr.Request):
            if not self.app.cancel(request, kind):
                return (gr.update(),) * outputs
            return (None,) * (outputs - 1) + (status(CANCELLED),)
        return ui_cancel

    @staticmethod
    def _settings(choice, custom_spec, *values):
        return run_settings(custom_spec if choice == CUSTOM else choice, *values)

    async def restore(self, image, model, outscale, degrade, tile, tile_overlap, precision, self_ensemble,
                      mix=0, seamless=False, alpha=ALPHA_MODES[0], width=0, height=0, keep_metadata=True,
                      request: gr.Request = None, progress=gr.Progress()):
        """Restore one image with a model (zoo name or checkpoint path; empty: the app's default).

        Returns the full-resolution PNG (16-bit kept; EXIF, XMP and IPTC kept unless keep_metadata is off)
        and a line: time, sizes, model.
        """
        def work(cancel):
            s = run_settings(model or self.app.default_spec, outscale, degrade, tile, tile_overlap, precision,
                             self_ensemble, mix, seamless, alpha, width, height, keep_metadata)
            r = self.app.restore_file(image, s, cancel, lambda d, t: progress((d, t), desc="Restoring")
                                      if t > 1 else progress(None, desc="Restoring"))
            return str(self.app.result_file(r)), self.app.info(r)
        return await self._api_call(request, work)

    async def batch(self, files, model, outscale, degrade, tile, tile_overlap, precision, self_ensemble,
                    mix=0, seamless=False, alpha=ALPHA_MODES[0], width=0, height=0, keep_metadata=True,
                    request: gr.Request = None, progress=gr.Progress()):
        """Restore images and the images in zip files. Returns a zip of PNGs (with errors.txt) and a report."""
        def work(cancel):
            s = run_settings(model or self.app.default_spec, outscale, degrade, tile, tile_overlap, precision,
                             self_ensemble, mix, seamless, alpha, width, height, keep_metadata)
            b = run_batch(self.app, files or [], s, cancel, lambda f, name: progress(f, desc=name))
            return str(b.zip_path), b.text()
        return await self._api_call(request, work)

    async def _api_call(self, request, work: Callable):
        """``work(cancel)`` for an API client: a failure is a gr.Error with the one-line reason."""
        def guarded(cancel):
            try:
                return work(cancel)
            except (WebError, Cancelled) as e:
                raise gr.Error(str(e), print_exception=False) from None
        return await self.app.run_cancellable(guarded, request, "api")

    # ---- the Blocks ------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        app, cfg = self.app, self.app.config
        initial, initial_text = None, f"No model chosen yet. {app.custom_hint()}"
        if app.default_spec:
            try:
                initial = app.describe(app.default_spec)
                initial_text = model_info_markdown(initial)
            except WebError as e:
                initial_text = f"⚠️ {md_escape(str(e))}"  # the page still opens: another model can be chosen
        c0 = initial.capabilities if initial else None
        partner0 = app.partner(initial.spec) if initial else None
        default_choice = app.default_spec or CUSTOM
        # Past gradio's queue, up to MAX_ACTIVE_JOBS jobs wait for the device, served in turn by session.
        device_queue = dict(concurrency_limit=MAX_ACTIVE_JOBS, concurrency_id=DEVICE_QUEUE)
        quick = dict(api_visibility="private", concurrency_limit=None)
        limits = (f"Limits: {cfg.max_pixels:,} input pixels per image, {human_size(cfg.max_file_size)} per "
                  f"upload; per request, {cfg.max_request_pixels:,} input and output pixels and "
                  f"{cfg.max_request_seconds:g} s of work. Device: {app.device}.")

        with gr.Blocks(title="SwinIR upscaler", delete_cache=CACHE_TTL) as demo:
            gr.Markdown("# SwinIR upscaler\nSuper-resolution, denoising and JPEG repair with "
                        "[SwinIR](https://arxiv.org/abs/2108.10257), on your own machine.")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=320):
                    model_dd = gr.Dropdown(app.catalogue.choices(), value=default_choice, label="Model",
                                           elem_id="model")
                    custom = gr.Textbox("", label="Checkpoint path or zoo name", visible=default_choice == CUSTOM,
                                        placeholder="experiments/x4/models/net_g_latest.pth or classical-x4",
                                        elem_id="custom-model")
                    model_md = gr.Markdown(initial_text, elem_id="model-info")
                    outscale = gr.Slider(1, 8, step=0.5, elem_id="outscale", **_props(outscale_update(c0)))
                    with gr.Row():
                        width = gr.Number(minimum=0, maximum=MAX_SIDE, step=1, precision=0, elem_id="width",
                                          **_props(size_update(c0, "width")))
                        height = gr.Number(minimum=0, maximum=MAX_SIDE, step=1, precision=0, elem_id="height",
                                           **_props(size_update(c0, "height")))
                    mix = gr.Slider(0, 1, step=0.1, elem_id="mix", **_props(mix_update(partner0)))
                    level = gr.Radio(elem_id="level", **_props(level_update(initial)))
                    degrade = gr.Slider(step=1, elem_id="degrade", **_props(degrade_update(c0)))
                    with gr.Accordion("Advanced", open=False):
                        tile = gr.Dropdown(["auto", "none", "128", "256", "384", "512", "768", "1024"], value="auto",
                                           allow_custom_value=True, label="Tile size (input pixels)",
                                           info="auto: from free memory; none: the whole image at once")
                        overlap = gr.Slider(0, 128, step=8, value=32, label="Tile overlap (pixels)")
                        precision = gr.Radio(app.precisions(), value="auto", label="Precision",
                                             info="auto: the fastest accurate one for the model on this device "
                                                  "(see the README); only precisions native here are offered; "
                                                  "int8 (CPUs): the transformer linears in int8, faster for wide "
                                                  "models, never picked by auto")
                        ensemble = gr.Checkbox(False, label="Self-ensemble (8 flips/rotations: 8× slower, a bit "
                                                            "better)")
                        seamless = gr.Checkbox(False, label="Seamless (tileable texture)", elem_id="seamless",
                                               info="The borders wrap around, so a texture that tiles still tiles "
                                                    "after restoring.")
                        alpha = gr.Radio(list(ALPHA_MODES), value=ALPHA_MODES[0], label="Transparency (alpha)",
                                         elem_id="alpha", info="bicubic: resized, fast and smooth; model: run "
                                         "through the model too (sharper cut-out edges, one more pass per image).")
                    keep_metadata = gr.Checkbox(True, label="Keep photo metadata (EXIF, XMP, IPTC)",
                                                elem_id="keep-metadata",
                                                info="Camera, dates, GPS... go into the PNG (orientation reset, new "
                                                     "size); off: only the pixels and the color profile.")
                    gr.Markdown(limits, elem_classes="limits")
                with gr.Column(scale=3):
                    with gr.Tabs():
                        with gr.Tab("Single image", id="single"):
                            with gr.Row(equal_height=True):
                                image_in = ImageUpload(type="filepath", image_mode=None,
                                                       sources=["upload", "clipboard"],
                                                       label="Input: upload, drop or paste an image", height=420,
                                                       elem_id="input-image")
                                image_in.max_bytes = cfg.max_file_size
                                slider = gr.ImageSlider(label="Before / after", type="numpy", format="png",
                                                        interactive=False, height=420, elem_id="comparison",
                                                        buttons=["fullscreen", "download"])
                            gr.Markdown("Before / after: drag the handle to compare. Scroll over the image to zoom "
                                        "in on a region, and drag to move around; the buttons above it reset the "
                                        "zoom and show it full screen.", elem_classes="hint", elem_id="zoom-hint")
                            with gr.Row():
                                run_btn = gr.Button("Run", variant="primary", elem_id="run")
                                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
                            status_md = gr.Markdown("", elem_id="status")
                            result = gr.File(label="Full-resolution result (PNG)", interactive=False, height=110,
                                             elem_id="result-file")
                            examples = make_examples(app.workdir / "examples")
                            if examples:
                                gr.Examples([[p] for p in examples], inputs=[image_in],
                                            label="Examples: crops of scikit-image's bundled photos")
                        with gr.Tab("Batch", id="batch"):
                            with gr.Row(equal_height=True):
                                batch_in = UploadedFile(file_count="multiple", file_types=["image", ".zip"],
                                                   label="Images or zip files", elem_id="batch-in")
                                batch_out = gr.File(label="Results (zip, with errors.txt if any failed)",
                                                    interactive=False, elem_id="batch-out")
                            with gr.Row():
                                batch_btn = gr.Button("Run batch", variant="primary", elem_id="batch-run")
                                batch_cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel")
                            batch_report = gr.Markdown("", elem_id="batch-report")
                            batch_gallery = gr.Gallery(label=f"Results (the first {GALLERY_ITEMS})", format="png",
                                                       columns=6, height=360, interactive=False,
                                                       elem_id="batch-gallery", buttons=["fullscreen"])
                        with gr.Tab("Video", id="video"):
                            with gr.Row(equal_height=True):
                                video_in = UploadedVideo(sources=["upload"], label="A short clip (.mp4 .mkv .mov .webm "
                                                    ".avi)", height=360, elem_id="video-in")
                                video_out = gr.Video(label="Restored (same container, sound copied)",
                                                     interactive=False, height=360, elem_id="video-out")
                            with gr.Row():
                                video_btn = gr.Button("Run", variant="primary", elem_id="video-run")
                                video_cancel = gr.Button("Cancel", variant="stop", elem_id="video-cancel")
                            video_status = gr.Markdown(f"Clips of at most {cfg.max_video_seconds:g} s and "
                                                       f"{cfg.max_video_frames:,} frames. Every frame "
                                                       f"goes through the model, so a clip takes its frame count "
                                                       f"times one image's time.", elem_id="video-status")
            with gr.Column(visible=False):  # the API's inputs and outputs: plain values, no widgets
                api_image = UploadedFile(label="image")
                api_files = UploadedFile(label="files", file_count="multiple")
                api_options = [gr.Textbox("", label="model"), gr.Number(0, label="outscale"),
                               gr.Number(0, label="degrade"), gr.Textbox("auto", label="tile"),
                               gr.Number(32, label="tile_overlap", precision=0), gr.Textbox("auto", label="precision"),
                               gr.Checkbox(False, label="self_ensemble"),
                               # Added later: at the end, with defaults, so that older clients' calls still work.
                               gr.Number(0, label="mix"), gr.Checkbox(False, label="seamless"),
                               gr.Textbox(ALPHA_MODES[0], label="alpha"), gr.Number(0, label="width", precision=0),
                               gr.Number(0, label="height", precision=0), gr.Checkbox(True, label="keep_metadata")]
                api_result, api_info = gr.File(label="result"), gr.Textbox(label="info")
                api_zip, api_report = gr.File(label="results_zip"), gr.Textbox(label="report")
                api_restore_btn, api_batch_btn = gr.Button("restore"), gr.Button("batch")

            # The model choice: the controls follow the model's task.
            model_outputs = [custom, model_md, outscale, level, degrade, mix, width, height]
            model_dd.change(self.on_model, [model_dd, custom], model_outputs, **quick)
            custom.submit(self.on_model, [model_dd, custom], model_outputs, **quick)
            custom.blur(self.on_model, [model_dd, custom], model_outputs, **quick)
            level.input(lambda name: gr.update(value=name), level, model_dd, **quick)

            # The page's runs, and their Cancel buttons.
            settings_in = [model_dd, custom, outscale, degrade, tile, overlap, precision, ensemble, mix, seamless,
                           alpha, width, height, keep_metadata]
            run_evt = run_btn.click(self.ui_restore, [image_in, *settings_in], [slider, result, status_md],
                                    api_visibility="private", **device_queue)
            batch_evt = batch_btn.click(self.ui_batch, [batch_in, *settings_in],
                                        [batch_out, batch_gallery, batch_report], api_visibility="private",
                                        **device_queue)
            video_evt = video_btn.click(self.ui_video, [video_in, *settings_in], [video_out, video_status],
                                        api_visibility="private", **device_queue)
            cancel_btn.click(self.cancel_button("single", 3), None, [slider, result, status_md], cancels=[run_evt],
                             queue=False, api_visibility="private")
            video_cancel.click(self.cancel_button("video", 2), None, [video_out, video_status], cancels=[video_evt],
                               queue=False, api_visibility="private")
            batch_cancel.click(self.cancel_button("batch", 3), None, [batch_out, batch_gallery, batch_report],
                               cancels=[batch_evt], queue=False, api_visibility="private")

            # The API: /restore and /batch.
            api_restore_btn.click(self.restore, [api_image, *api_options], [api_result, api_info],
                                  api_name="restore", **device_queue)
            api_batch_btn.click(self.batch, [api_files, *api_options], [api_zip, api_report], api_name="batch",
                                **device_queue)
        return demo


def build(app: WebApp) -> gr.Blocks:
    """The page, and the API, for ``app``."""
    return Page(app).build()


def serve(app: WebApp, *, host: str, port: int, share: bool = False, middleware: Sequence = ()) -> None:
    """Build the page for ``app`` and serve it until Ctrl-C (or SIGTERM turned into it) stops it."""
    demo = build(app)
    demo.queue(default_concurrency_limit=1)
    theme = gr.themes.Soft(primary_hue="indigo", **THEME_FONTS)  # system fonts: nothing fetched from the web
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=app.config.max_file_size,
                show_error=True, ssr_mode=False, theme=theme, css=CSS, footer_links=["api"], inbrowser=False,
                app_kwargs={"middleware": list(middleware)}, quiet=True, prevent_thread_lock=True)
    # Our own banner: gradio's tells users to "set share=True in launch()", where the app's flag is --share.
    public = f"; public link: {demo.share_url}" if share and demo.share_url else ""
    print(f"SwinIR upscaler at {demo.local_url}{public} (Ctrl-C stops it; --host and --port choose where, "
          f"--share makes a public link)", flush=True)
    demo.block_thread()
