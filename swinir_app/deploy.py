"""ONNX export with built-in verification (ONNX Runtime as a backend is :mod:`swinir_app.onnx_runtime`).

The exported graph is the whole restoration: an image in [0, 1] as (B, C, H, W) float32, any H, W >= 1,
is mirror-padded to a window multiple, normalised, restored, de-normalised, cropped and clamped to
[0, 1]. The traps of the public conversion scripts are avoided by construction, and checked:

- **Sizes.** Shift masks, window orders and padding are computed inside the graph from the input's
  shape (``network.layers.tracing``), so no mask of the example's size is baked in: the graph is right
  at any size, including window counts that are multiples of the training one.
- **Batch.** Window partitions reshape with -1, never with a batch size taken from the example.
- **fp16.** The shallow conv, the long residual and the reconstruction stay in fp32 (as under autocast in
  PyTorch); the body's matmuls run in fp16, and the activation peak is reported against fp16's range.
- **Size.** ONNX Runtime's basic (portable) optimiser folds constants and removes redundant nodes.

The graph is traced by PyTorch's TorchScript-based exporter (``dynamo=False``): the torch.export-based
one specialises dynamic sizes at the window count 1 and at reshapes, so its graphs are not right at every
size. After export, ONNX Runtime runs the graph at three sizes (and a second batch) against PyTorch; a
graph outside the tolerance is deleted, never left behind.

**Other architectures** (a :class:`~swinir_app.spandrel_loader.SpandrelModel`: ESRGAN, Compact, SPAN, ...)
export their network as spandrel calls it, clamped, with dynamic batch, height and width; what the network
needs of the input size (a multiple, a minimum, a square) is met by :class:`~swinir_app.onnx_runtime.OnnxModel`,
which pads as the wrapper does (reflected, then replicated) and crops. Their metadata is the model's
capabilities (``swinir_app.capabilities``), not a config. The checks run the written graph through
``OnnxModel`` against the PyTorch model at sizes that need padding. A network that the tracer cannot trace,
or whose traced graph holds shapes frozen at the example's size (the checks at other sizes fail), is refused
in one line naming the architecture; ``--fixed-size`` traces at that one size.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .errors import UserError
from .network import SwinIR, SwinIRConfig, hardware
# Above the zoo (export_onnx loads specs through it); the backend (OnnxModel, graph_info, load_onnx) lies
# below it, in .onnx_runtime.
from .network.capabilities import Capabilities
from .onnx_runtime import INPUT, META_CAPABILITIES, META_CONFIG, OUTPUT, OnnxModel, inference_session
from .precision import EXPORT_PRECISIONS

OPSET = 17
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 5e-2}  # max abs difference on the [0, 1] output, against PyTorch fp32
FP16_MAX = 65504.0


class ExportError(UserError):
    """An export that cannot be made or failed its verification; one line."""


@dataclass
class Check:
    """One verification run: ONNX Runtime against PyTorch on the same input."""
    shape: Tuple[int, int, int, int]
    max_diff: float
    psnr: float


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote, and how the graph checked out."""
    path: Path
    config: Optional[SwinIRConfig]  # None for another architecture (see ``capabilities``, ``architecture``)
    precision: str
    opset: int
    batch: Optional[int]  # None: dynamic
    fixed_size: Optional[Tuple[int, int]]
    nodes_traced: int
    nodes: int
    bytes: int
    checks: List[Check] = field(default_factory=list)
    activation_peak: float = 0.0  # max |activation| over the residual groups, fp32, on the check inputs
    seconds: float = 0.0
    capabilities: Optional[Capabilities] = None  # of the exported model (PyTorch's), for every architecture
    architecture: str = ""  # "SwinIR", ... or spandrel's name ("ESRGAN", "SPAN", ...)

    @property
    def max_diff(self) -> float:
        return max((c.max_diff for c in self.checks), default=0.0)


class Graph(nn.Module):
    """What is exported: ``clamp(net(x), 0, 1)``, the body at ``precision`` (autocast, as in PyTorch)."""

    def __init__(self, net: SwinIR, precision: str = "fp32"):
        super().__init__()
        self.net, self.precision = net, precision

    def forward(self, x: Tensor) -> Tensor:
        if self.precision in ("fp32", "int8"):  # int8: traced in fp32, then quantised by ONNX Runtime
            y = self.net(x)
        else:
            with hardware.autocast("cpu", self.precision):
                y = self.net(x)
        return y.float().clamp(0, 1)


def quantize_graph(path: Path, tmp: Path) -> None:
    """ONNX Runtime's dynamic int8 quantisation of the graph at ``path``, in place: every MatMul with a constant
    weight (the transformer linears; not attention's, not the convolutions) gets int8 weights per output channel,
    kept to 7 bits (``reduce_range``: exact on CPUs without VNNI, where u8 x s8 pairs saturate in 16 bits), and
    uint8 activations quantised per call, as ``--precision int8`` does in PyTorch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantized = tmp / "quantized.onnx"
    root = logging.getLogger()  # the quantiser logs its advice ("consider pre-processing") on the root logger
    root.addFilter(_not_onnxruntime)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(path), str(quantized), op_types_to_quantize=["MatMul"], per_channel=True,
                             reduce_range=True, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_not_onnxruntime)
    os.replace(quantized, path)


def _not_onnxruntime(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


def check_sizes(config: SwinIRConfig) -> List[Tuple[int, int]]:
    """Three verification sizes: a tiny one padded to one window, an odd one, and one whose window count
    is a multiple of the training patch's (the size where a baked-in mask would silently be wrong)."""
    ws, train = config.window_size, max(config.img_size, config.window_size)
    train = math.ceil(train / ws) * ws
    return [(ws // 2 + 3, ws + 5), (3 * ws + 5, 5 * ws + 3), (2 * train, train)]


def check_input(batch: int, channels: int, h: int, w: int, seed: int = 0) -> Tensor:
    """A deterministic test image in [0, 1]: smooth gradients, edges and noise (what restoration meets)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(6 * xx + 3 * yy) * torch.cos(4 * yy)
    base = base + 0.2 * ((xx * 7).floor() % 2 - 0.5)
    x = base.expand(batch, channels, h, w) + 0.08 * torch.randn(batch, channels, h, w, generator=g)
    return x.clamp(0, 1).contiguous()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _count_nodes(path: Path) -> int:
    import onnx
    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _reference(net: SwinIR, x: Tensor) -> Tuple[np.ndarray, float]:
    """PyTorch's clamped output for ``x``, and max |x| at the output of every residual group in that same
    forward (fp32): what fp16 (max 65504) must hold."""
    peak = [0.0]

    def hook(_m, _i, out):
        peak[0] = max(peak[0], float(out.detach().abs().max()))
    handles = [layer.register_forward_hook(hook) for layer in net.layers]
    try:
        with torch.inference_mode():
            ref = net(x).clamp(0, 1).numpy()
    finally:
        for h in handles:
            h.remove()
    return ref, peak[0]


def export_onnx(model: Union[SwinIR, str, os.PathLike], out: Union[str, os.PathLike], *, opset: int = OPSET,
                precision: str = "fp32", batch: Optional[int] = None,
                fixed_size: Optional[Tuple[int, int]] = None, name: Optional[str] = None, source: str = "",
                weights_dir: Optional[os.PathLike] = None, overwrite: bool = False,
                tolerance: Optional[float] = None, example_size: Optional[Tuple[int, int]] = None,
                progress=None) -> ExportReport:
    """Export ``model`` (a network, or any spec ``load_model`` takes) to ``out`` as a verified ONNX graph.

    Args:
        model: a SwinIR / Swin2SR / HAT / DAT network, or a zoo name, checkpoint file or training folder.
        out: the .onnx file; written atomically, only after the graph passed its checks.
        opset: ONNX opset (17 by default; 14 is the lowest that holds every operator used).
        precision: "fp32" (default), "fp16" (the body's matmuls in fp16; I/O stays float32) or "int8" (the
            fp32 graph with its linears quantised by ONNX Runtime: :func:`quantize_graph`; SwinIR-family
            networks). "bf16" is refused: ONNX Runtime has no bf16 kernels for these operators, so such a graph
            cannot be verified.
        batch: a fixed batch size, or None for a dynamic batch (verified at batch 2).
        fixed_size: (H, W) for a fixed-shape graph (what TensorRT builds best); None: any H, W >= 1.
        name, source: stored in the metadata (default: the spec's stem and file name).
        tolerance: max abs difference allowed against PyTorch fp32 (default 1e-4 fp32, 2e-2 fp16, 5e-2 int8).
        example_size: the traced example's (H, W); any size gives the same graph, which the checks prove.
        progress: called with a short text before each step.

    Returns:
        An :class:`ExportReport`: node counts, file size, and every check's max abs difference and PSNR.

    Raises:
        ExportError: one line: bad settings, an existing output without ``overwrite``, or a graph that failed
            a check (no file is left).
        ModelLoadError: the model spec cannot be loaded.
    """

    t0 = time.perf_counter()
    say = progress or (lambda _text: None)
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"the output must be a .onnx file, got {out}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; --overwrite replaces it")
    if precision not in EXPORT_PRECISIONS:
        raise ExportError(f"--precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        raise ExportError("--precision bf16: ONNX Runtime has no bf16 kernels for these operators, so the graph "
                          "could not be verified; export fp32 and let the engine builder cast (trtexec --bf16)")
    if not 14 <= opset <= 21:
        raise ExportError(f"--opset must be between 14 and 21, got {opset}")
    if batch is not None and batch < 1:
        raise ExportError(f"--batch must be at least 1, got {batch}")
    if isinstance(model, nn.Module):
        net = model
        spec_name = name or "model"
    else:
        say("loading the model")
        net, ckpt_source = _load(model, weights_dir)
        spec_name = name or Path(str(model)).stem
        source = source or Path(ckpt_source).name
    from .spandrel_loader import SpandrelModel
    if isinstance(net, SpandrelModel):
        if precision == "int8":
            raise ExportError(f"--precision int8: {spec_name} is a {net.capabilities.arch} network; int8 export "
                              f"quantises the SwinIR family's linears only; use fp32 or fp16")
        export = _export_spandrel
    elif isinstance(getattr(net, "config", None), SwinIRConfig):
        export = _export
    else:
        what = "an ONNX graph" if isinstance(net, OnnxModel) else f"a {type(net).__name__}"
        raise ExportError(f"{spec_name} is {what}: only a SwinIR-family network or a model loaded through "
                          f"spandrel exports to ONNX")
    was_training = net.training
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Traced, optimised and verified in a scratch folder beside the output; only a verified graph lands.
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp:
            report = export(net.eval(), out, Path(tmp), spec_name, source, opset, precision, batch, fixed_size,
                            tolerance, example_size, say)
            os.replace(Path(tmp) / "graph.onnx", out)
        report.seconds = time.perf_counter() - t0
        return report
    finally:
        net.train(was_training)


def _load(spec, weights_dir) -> Tuple[nn.Module, str]:
    """The network a spec names (as ``load_model`` loads it, ``.onnx`` files aside) and its source file."""
    from .checkpoint import Checkpoint
    from .hf import is_hf_folder
    from .zoo import build_model, latest_weights, load_file, resolve, spec_file
    spec = spec_file(spec, weights_dir)  # openmodeldb:ID -> its downloaded file
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".onnx":
        raise ExportError(f"{path.name} is already an ONNX graph")
    if path.is_file() or path.is_dir() and not is_hf_folder(path):
        file = latest_weights(path) if path.is_dir() else path
        loaded = load_file(file)
        if isinstance(loaded, Checkpoint):
            return build_model(loaded), loaded.source
        return loaded, str(file)
    ckpt = resolve(spec, weights_dir=weights_dir)
    return build_model(ckpt), ckpt.source


def _export(net: SwinIR, out: Path, tmp: Path, spec_name: str, source: str, opset: int, precision: str,
            batch: Optional[int], fixed_size: Optional[Tuple[int, int]], tolerance: Optional[float],
            example_size: Optional[Tuple[int, int]], say) -> ExportReport:

    config: SwinIRConfig = net.config
    if fixed_size is not None and min(fixed_size) < config.window_size:
        raise ExportError(f"--fixed-size {fixed_size[0]} {fixed_size[1]}: each side must be at least the window "
                          f"size, {config.window_size}")
    tolerance = TOLERANCE[precision] if tolerance is None else tolerance

    graph = Graph(net, precision).eval()
    ex_h, ex_w = fixed_size or example_size or (config.window_size * 3 + 1, config.window_size * 2 + 3)
    example = check_input(batch or 1, config.in_chans, ex_h, ex_w)
    # Always traced and optimised with dynamic axes, then pinned: traced at a fixed shape, every shift mask
    # and bias would be folded into a constant of (windows, heads, N, N) per block (hundreds of MB).
    dynamic = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 2: "out_height", 3: "out_width"}

    traced, final = tmp / "traced.onnx", tmp / "graph.onnx"
    say(f"tracing the graph (opset {opset}, {precision})")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes (see above)
        torch.onnx.export(graph, (example,), str(traced), dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT], do_constant_folding=True,
                          dynamic_axes={INPUT: dynamic, OUTPUT: out_axes})
    nodes_traced = _count_nodes(traced)

    say("optimising the graph (ONNX Runtime, basic level: standard operators only)")
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(final)
    try:
        inference_session(traced, options=opts)
    except Exception as e:  # noqa: BLE001 - ORT raises its own types (Fail, InvalidGraph, ...); one line
        reason = " ".join(str(e).split())[:300]
        raise ExportError(f"ONNX Runtime cannot load the traced graph ({reason}); nothing was written") from None
    if precision == "int8":
        say("quantising the linears to int8 (ONNX Runtime, dynamic)")
        quantize_graph(final, tmp)

    proto = _finish(final, {
        META_CONFIG: json.dumps(config.to_dict() | {"arch": config.arch}),
        "task": config.task, "scale": str(config.scale), "window_size": str(config.window_size),
        "in_chans": str(config.in_chans), "out_chans": str(config.out_chans), "arch": config.name,
        "name": spec_name, "source": source, "precision": precision,
        "input": "float32 (batch, in_chans, height, width) in [0, 1]; padding is done inside",
    }, batch, fixed_size, config.scale)

    report = ExportReport(out, config, precision, opset, batch, tuple(fixed_size) if fixed_size else None,
                          nodes_traced, len(proto.graph.node), final.stat().st_size,
                          capabilities=net.capabilities, architecture=config.name)
    session = inference_session(final)
    shapes = _check_shapes(batch, fixed_size, lambda: check_sizes(config))
    for i, (b, h, w) in enumerate(shapes):
        say(f"checking against PyTorch at {b}x{h}x{w}")
        x = check_input(b, config.in_chans, h, w, seed=i)
        ref, peak = _reference(net, x)
        report.activation_peak = max(report.activation_peak, peak)
        got = session.run(None, {INPUT: x.numpy()})[0]
        diff = float(np.abs(got - ref).max()) if got.shape == ref.shape and np.isfinite(got).all() else math.inf
        report.checks.append(Check((b, config.in_chans, h, w), diff, _psnr(got, ref) if diff < math.inf else 0.0))
        if not diff <= tolerance:
            what = "non-finite values" if diff == math.inf else f"max abs difference {diff:.3g}"
            if precision == "fp16" and got.shape == ref.shape and not np.isfinite(got).all() \
                    and np.isfinite(ref).all():
                where = (f"its activations reach {peak:.3g}, over fp16's largest value {FP16_MAX:g}" if
                         peak > FP16_MAX else f"a value over fp16's largest, {FP16_MAX:g}, inside a block")
                raise ExportError(f"fp16 overflowed: the graph's output at {b}x{config.in_chans}x{h}x{w} is "
                                  f"NaN/Inf ({where}); --precision fp32 works for this network (its output is "
                                  f"finite); nothing was written")
            raise ExportError(f"the exported graph differs from PyTorch at {b}x{config.in_chans}x{h}x{w}: {what} "
                              f"(tolerance {tolerance:g}); nothing was written")
    return report


class SpandrelGraph(nn.Module):
    """What is exported of another architecture: ``clamp(call(net, x), 0, 1)`` as spandrel calls the network
    (no padding: the runner pads to its size requirements), at ``precision`` (autocast, as in PyTorch)."""

    def __init__(self, model, precision: str = "fp32"):
        super().__init__()
        self.net, self.precision = model.net, precision
        self._call = model._call

    def forward(self, x: Tensor) -> Tensor:
        if self.precision == "fp32":
            y = self._call(self.net, x)
        else:
            with hardware.autocast("cpu", self.precision):
                y = self._call(self.net, x)
        return y.float().clamp(0, 1)


def spandrel_check_sizes(model) -> List[Tuple[int, int]]:
    """Three verification sizes for a spandrel model, each (unless its multiple is 1) one that needs padding:
    a tiny one, an odd one and a larger one, at least the model's minimum."""
    m, lo = max(model.multiple_of, 1), model.minimum + 1
    sizes = [(7, 13), (29, 43), (2 * max(m, 16) + 3, 3 * max(m, 16) + 5)]
    return [(max(h, lo), max(w, lo)) for h, w in sizes]


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).strip().splitlines()[0].split()) if str(e).strip() else ""
    return f"{type(e).__name__}{': ' + text[:limit] if text else ''}"


@contextlib.contextmanager
def _quiet_stdout():
    """File descriptor 1 sent to a scratch file while the block runs (what C++ code prints there too)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def _reference_spandrel(model, x: Tensor) -> Tuple[np.ndarray, float]:
    """The SpandrelModel's clamped output for ``x`` (its padding and crop), and max |x| at the output of its
    stages (fp32; 0 where it declares none)."""
    peak = [0.0]

    def hook(_m, _i, out):
        if isinstance(out, Tensor):
            peak[0] = max(peak[0], float(out.detach().abs().max()))
    handles = [model.get_submodule(n).register_forward_hook(hook) for n in model.capabilities.stages]
    try:
        with torch.inference_mode():
            ref = model(x).float().clamp(0, 1).numpy()
    finally:
        for h in handles:
            h.remove()
    return ref, peak[0]


def _export_spandrel(model, out: Path, tmp: Path, spec_name: str, source: str, opset: int, precision: str,
                     batch: Optional[int], fixed_size: Optional[Tuple[int, int]], tolerance: Optional[float],
                     example_size: Optional[Tuple[int, int]], say) -> ExportReport:
    """Export a :class:`~swinir_app.spandrel_loader.SpandrelModel` (see the module's docstring)."""

    caps, arch = model.capabilities, model.architecture
    if precision not in caps.precisions:
        raise ExportError(f"--precision {precision}: spandrel marks {arch} as not running in {precision}; "
                          f"export fp32")
    m, lo, square = max(model.multiple_of, 1), model.minimum, model.square
    if fixed_size is not None:
        fh, fw = fixed_size
        if fh % m or fw % m or min(fh, fw) < max(lo, 1) or square and fh != fw:
            need = [f"multiples of {m}"] if m > 1 else []
            need += [f"at least {lo}"] if lo > 1 else []
            need += ["equal (a square)"] if square else []
            raise ExportError(f"--fixed-size {fh} {fw}: {arch} needs sides that are "
                              f"{', '.join(need) or 'at least 1'}")
    tolerance = TOLERANCE[precision] if tolerance is None else tolerance
    graph = SpandrelGraph(model, precision).eval()
    # Traced at a size the network takes as it is (its multiple, above its minimum), so nothing is padded.
    ex_h, ex_w = fixed_size or example_size or (max(3 * m, 24, lo), max(4 * m, 32, lo))
    if square and fixed_size is None:
        ex_h = ex_w = max(ex_h, ex_w)
    example = check_input(batch or 1, caps.in_chans, ex_h, ex_w)
    # A fixed size is traced at that size: shapes that the tracer freezes are then right.
    dynamic = {0: "batch"} if fixed_size else {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch"} if fixed_size else {0: "batch", 2: "out_height", 3: "out_width"}
    if batch is not None:
        dynamic.pop(0), out_axes.pop(0)

    traced, final = tmp / "traced.onnx", tmp / "graph.onnx"
    say(f"tracing the graph of {arch} (opset {opset}, {precision})")
    # The exporter prints the whole graph (C++, to stdout) when an operator has no ONNX form: one line instead.
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_stdout():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), str(traced), dynamo=False, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT], do_constant_folding=True,
                              dynamic_axes={INPUT: dynamic, OUTPUT: out_axes})
    except Exception as e:  # noqa: BLE001 - the tracer and the symbolic functions raise many types
        raise ExportError(f"{arch} cannot be exported to ONNX: torch.onnx cannot trace it "
                          f"({_first_line(e)}); nothing was written") from None
    nodes_traced = _count_nodes(traced)

    say("optimising the graph (ONNX Runtime, basic level: standard operators only)")
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(final)
    opts.log_severity_level = 3  # constant folding's notes on shapes frozen by the tracer: the checks say it
    try:
        inference_session(traced, options=opts)
    except Exception as e:  # noqa: BLE001 - ORT raises its own types (Fail, InvalidGraph, ...); one line
        reason = " ".join(str(e).split())[:300]
        raise ExportError(f"ONNX Runtime cannot load the traced graph of {arch} ({reason}); nothing was "
                          f"written") from None

    declared = {"arch": arch, "task": caps.task, "scale": caps.scale, "in_chans": caps.in_chans,
                "out_chans": caps.out_chans, "size_multiple": m, "minimum": lo, "square": square,
                "tiling": caps.tiling, "precision": precision, "bytes_per_pixel": caps.bytes_per_pixel}
    padding = ("the runner pads (reflected, then replicated) to " + ", ".join(
        ([f"a multiple of {m}"] if m > 1 else []) + ([f"at least {lo}"] if lo > 1 else []) +
        (["a square"] if square else [])) + " and crops") if m > 1 or lo > 1 or square else "any size as it is"
    proto = _finish(final, {
        META_CAPABILITIES: json.dumps(declared),
        "architecture": arch, "name": spec_name, "source": source,
        "task": caps.task, "scale": str(caps.scale), "in_chans": str(caps.in_chans),
        "out_chans": str(caps.out_chans), "arch": arch, "precision": precision,
        "input": f"float32 (batch, in_chans, height, width) in [0, 1]; {padding}",
    }, batch, fixed_size, caps.scale)

    report = ExportReport(out, None, precision, opset, batch, tuple(fixed_size) if fixed_size else None,
                          nodes_traced, len(proto.graph.node), final.stat().st_size, capabilities=caps,
                          architecture=arch)
    runner = OnnxModel(final)  # what loading the file gives: its padding and crop are checked too
    shapes = _check_shapes(batch, fixed_size, lambda: spandrel_check_sizes(model))
    for i, (b, h, w) in enumerate(shapes):
        say(f"checking against PyTorch at {b}x{h}x{w}")
        shape = f"{b}x{caps.in_chans}x{h}x{w}"
        x = check_input(b, caps.in_chans, h, w, seed=i)
        ref, peak = _reference_spandrel(model, x)
        report.activation_peak = max(report.activation_peak, peak)
        try:
            got = runner(x).numpy()
        except Exception as e:  # noqa: BLE001 - ORT's own types: a shape frozen by the tracer
            raise ExportError(f"the exported graph of {arch} fails at {shape} in ONNX Runtime "
                              f"({_first_line(e, 120)}): the tracer froze a size-dependent shape of "
                              f"{arch}; only a --fixed-size graph can be exported; nothing was written") from None
        diff = float(np.abs(got - ref).max()) if got.shape == ref.shape and np.isfinite(got).all() else math.inf
        report.checks.append(Check((b, caps.in_chans, h, w), diff, _psnr(got, ref) if diff < math.inf else 0.0))
        if not diff <= tolerance:
            what = "non-finite values" if diff == math.inf else f"max abs difference {diff:.3g}"
            if precision == "fp16" and diff == math.inf and np.isfinite(ref).all():
                raise ExportError(f"fp16 overflowed: the graph's output at {shape} is NaN/Inf; --precision "
                                  f"fp32 works for {arch}; nothing was written")
            frozen = ""
            if precision != "fp32":
                frozen = f"; {precision} loses too much for {arch}: --precision fp32"
            elif b != example.shape[0] and all(c.shape[0] == example.shape[0] for c in report.checks[:-1]):
                frozen = f"; the tracer froze {arch}'s batch size, so export it with --batch {example.shape[0]}"
            elif fixed_size is None:
                frozen = (f"; {arch} has size-dependent code that the tracer froze at the example's size, so "
                          f"only a --fixed-size graph can be exported")
            raise ExportError(f"the exported graph of {arch} differs from PyTorch at {shape}: {what} "
                              f"(tolerance {tolerance:g}){frozen}; nothing was written")
    del runner  # its ONNX Runtime session holds the file
    return report


def _check_shapes(batch: Optional[int], fixed_size, sizes) -> List[Tuple[int, int, int]]:
    """(batch, height, width) of the checks against PyTorch: the fixed size, else ``sizes()``; and a batch of
    2 where the batch is dynamic."""
    if fixed_size is not None:
        return [(batch or 1, *fixed_size)] + ([(2, *fixed_size)] if batch is None else [])
    found = sizes()
    return [(batch or 1, h, w) for h, w in found] + ([(2, *found[0])] if batch is None else [])


def _finish(final: Path, meta: dict, batch, fixed_size, scale: int):
    """The traced graph at ``final`` with its shapes pinned, ``meta`` (plus the output and producer) as its
    metadata, checked and saved in place; returns the proto."""
    import onnx

    proto = onnx.load(str(final))
    _pin(proto, batch, fixed_size, scale)
    del proto.metadata_props[:]
    meta = {**meta, "output": "float32 (batch, out_chans, height*scale, width*scale) in [0, 1]",
            "producer": "swinir_app"}
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "swinir_app"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(final))
    return proto


def _pin(proto, batch: Optional[int], fixed_size: Optional[Tuple[int, int]], scale: int) -> None:
    """Fix the batch and/or the input size in the graph's declared input and output shapes."""
    s = scale
    for value, sizes in ((proto.graph.input[0], (batch, None, *(fixed_size or (None, None)))),
                         (proto.graph.output[0], (batch, None, *((fixed_size[0] * s, fixed_size[1] * s)
                                                                if fixed_size else (None, None))))):
        for dim, size in zip(value.type.tensor_type.shape.dim, sizes):
            if size is not None:
                dim.dim_value = size  # replaces the dim_param (a oneof)


__all__: Sequence[str] = ("EXPORT_PRECISIONS", "ExportError", "ExportReport", "Graph", "OPSET", "SpandrelGraph",
                          "check_sizes", "export_onnx", "spandrel_check_sizes")
