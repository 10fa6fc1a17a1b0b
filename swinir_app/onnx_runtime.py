"""ONNX Runtime as an inference backend: an exported graph (see :mod:`swinir_app.deploy`) run wherever a
SwinIR network is, the engine and every front end included.

Below the zoo, which loads ``.onnx`` files through :func:`load_onnx`; the export, which needs the zoo to
load what it exports, sits above it in :mod:`swinir_app.deploy`. Nothing here imports onnxruntime until a
graph is loaded.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import ModelLoadError, ModelOutputError, config_from_dict
from .network import SwinIRConfig
from .network.capabilities import TILING, Capabilities, activation_bytes
from .network.layers import mirror_index

META_CONFIG = "swinir_app.config"  # the full network config as JSON: what loading needs
# Another architecture's graph (through spandrel): its capabilities as JSON instead of a config.
META_CAPABILITIES = "swinir_app.capabilities"
_CAPABILITY_KEYS = ("arch", "task", "scale", "in_chans", "out_chans", "size_multiple", "minimum", "square", "tiling",
                    "precision")
INPUT, OUTPUT = "lq", "output"
POLL = 0.1  # seconds between checks for Ctrl-C and Cancel while ONNX Runtime runs a graph


def inference_session(path: Union[str, Path], device: str = "cpu", options=None, threads: Optional[int] = None):
    """An ONNX Runtime session for ``path``: CUDA's provider first when ``device`` is "cuda" and ONNX Runtime has
    it, the CPU's otherwise (and as the fallback); ``threads`` sets its intra-op threads (None: ONNX Runtime's
    default, the physical cores)."""
    import onnxruntime as ort
    if threads is not None:
        options = options or ort.SessionOptions()
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


class OnnxModel(nn.Module):
    """An exported graph run by ONNX Runtime, usable wherever a SwinIR network is (the engine, every
    front end): ``model(x)`` maps (B, in_chans, H, W) float in [0, 1] to (B, out_chans, H*scale, W*scale)
    float32 in [0, 1] on the input's device.

    ``config``, ``scale``, ``window_size`` come from the graph's metadata. A graph of another architecture
    (exported from a model loaded through spandrel) carries its capabilities instead: ``config`` and
    ``window_size`` are None, ``architecture`` names it, and ``forward`` pads to its size requirements (a
    multiple, a minimum, a square; reflected, then replicated, as the PyTorch wrapper pads) and crops. A fixed
    batch is met by running in chunks (the last one padded); a fixed-shape graph takes inputs up to its size,
    mirror-padded to it (the engine tiles larger images). The CPU execution provider runs it, CUDA's when the
    input is on a GPU and ONNX Runtime has it.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        super().__init__()
        self.path = Path(path)
        self._sessions: Dict[str, object] = {}
        self.threads: Optional[int] = None  # intra-op threads of the sessions (None: ONNX Runtime's default)
        session = self._session("cpu")
        meta = session.get_modelmeta().custom_metadata_map
        label = self.path.name
        self.config: Optional[SwinIRConfig] = None
        self.declared: Optional[dict] = None  # another architecture's capabilities, from the metadata
        if META_CONFIG in meta:
            try:
                self.config = config_from_dict(json.loads(meta[META_CONFIG]), label)
            except json.JSONDecodeError:
                raise ModelLoadError(f"{label}: its {META_CONFIG} metadata is not valid JSON") from None
            c = self.config
            self.architecture, self.task, self.upscale = c.name, c.task, c.upscale
            self.in_chans, self.out_chans, self.window_size = c.in_chans, c.out_chans, c.window_size
        elif META_CAPABILITIES in meta:
            self.declared = d = _declared(meta[META_CAPABILITIES], label)
            self.architecture, self.task, self.upscale = d["arch"], d["task"], d["scale"]
            self.in_chans, self.out_chans, self.window_size = d["in_chans"], d["out_chans"], None
        else:
            raise ModelLoadError(f"{label}: an ONNX graph without swinir_app metadata; export one with "
                                 f"swinir-app export MODEL {label}")
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{label}: expected one input and one output, found {len(inputs)} and {len(outputs)}")
        shape = inputs[0].shape
        if len(shape) != 4:
            raise ModelLoadError(f"{label}: its input has rank {len(shape)}; expected (batch, channels, height, width)")
        if isinstance(shape[1], int) and shape[1] != self.in_chans:
            raise ModelLoadError(f"{label}: its input has {shape[1]} channels, its metadata says {self.in_chans}")
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{label}: its input is {inputs[0].type}; expected tensor(float)")
        self.input_name = inputs[0].name
        self.batch: Optional[int] = shape[0] if isinstance(shape[0], int) else None
        self.fixed_size: Optional[Tuple[int, int]] = (shape[2], shape[3]) if all(
            isinstance(s, int) for s in shape[2:]) else None
        self.precision = meta.get("precision", "fp32")
        self.name = meta.get("name", self.path.stem)

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def capabilities(self) -> Capabilities:
        """The graph's: its own precision (no autocast around it), tiles no larger than a fixed input, and
        cancel polled while ONNX Runtime runs."""
        c, d = self.config, self.declared
        if d is not None:
            return Capabilities(arch=f"ONNX graph of {d['arch']}", task=d["task"], scale=d["scale"],
                                in_chans=d["in_chans"], out_chans=d["out_chans"], bytes_per_pixel=d["bytes_per_pixel"],
                                size_multiple=d["size_multiple"], fixed_size=self.fixed_size,
                                precisions=(self.precision,), own_precision=self.precision, polls_cancel=True,
                                tiling=d["tiling"])
        return Capabilities(arch=f"ONNX graph of {c.name}", task=c.task, scale=c.upscale, in_chans=c.in_chans,
                            out_chans=c.out_chans, bytes_per_pixel=activation_bytes(c), size_multiple=c.window_size,
                            fixed_size=self.fixed_size, precisions=(self.precision,), own_precision=self.precision,
                            polls_cancel=True)

    def set_threads(self, threads: Optional[int]) -> None:
        """Run with ``threads`` intra-op threads (None: ONNX Runtime's default) from the next call on; the
        engine passes its ``threads`` here."""
        if threads != self.threads:
            self.threads = threads
            self._sessions.clear()  # made again, with the new count, when next needed

    def _session(self, device: str):
        if device not in self._sessions:
            try:
                self._sessions[device] = inference_session(self.path, device, threads=self.threads)
            except Exception as e:  # noqa: BLE001 - ORT raises its own types; one line names the file
                text = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ModelLoadError(f"{self.path.name}: ONNX Runtime cannot load it: {text}") from None
        return self._sessions[device]

    def forward(self, x: Tensor, cancel: Optional[Callable[[], None]] = None) -> Tensor:
        """Run the graph on ``x``; ``cancel`` is called every 0.1 s while it runs (raise to stop it).

        Raises:
            ModelOutputError: the graph's output is not (B, out_chans, H*scale, W*scale): a graph whose
                metadata does not describe it.
            KeyboardInterrupt, or what ``cancel`` raises: the run is terminated first.
        """
        B, C, H, W = x.shape
        if C != self.in_chans:
            raise ValueError(f"expected (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        s = self.upscale
        if self.fixed_size is not None:
            fh, fw = self.fixed_size
            if H > fh or W > fw:
                raise ValueError(f"{self.path.name} is a fixed {fh}x{fw} graph; got {H}x{W} (tile the image)")
            x = _pad_to(x, fh, fw)
        elif self.declared is not None:  # the graph is the bare network: pad as the PyTorch wrapper pads
            from .spandrel_loader import pad  # torch only: spandrel itself is not imported
            d = self.declared
            x = pad(x, d["minimum"], d["size_multiple"], d["square"])
        session = self._session("cuda" if x.device.type == "cuda" else "cpu")
        xs = x.detach().float().cpu().numpy()
        n = self.batch or B
        outs = []
        for i in range(0, B, n):
            chunk = xs[i:i + n]
            if chunk.shape[0] < n:  # a fixed batch: pad with copies of the last image
                chunk = np.concatenate([chunk] + [chunk[-1:]] * (n - chunk.shape[0]))
            y = _run_interruptible(session, {self.input_name: np.ascontiguousarray(chunk)}, cancel)
            want = (chunk.shape[0], self.out_chans, chunk.shape[2] * s, chunk.shape[3] * s)
            if tuple(y.shape) != want:
                raise ModelOutputError(f"{self.path.name} returned {'x'.join(map(str, y.shape))} for a "
                                       f"{'x'.join(map(str, chunk.shape))} input; its metadata declares x{s} "
                                       f"({'x'.join(map(str, want))}), so the graph is not what it says")
            outs.append(y[:B - i])
        y = torch.from_numpy(np.concatenate(outs))[:, :, :H * s, :W * s]
        return y.to(x.device)

    def extra_repr(self) -> str:
        return f"{self.path.name}, {self.precision}, batch {self.batch or 'dynamic'}, " \
               f"size {'x'.join(map(str, self.fixed_size)) if self.fixed_size else 'dynamic'}"


def _declared(text: str, label: str) -> dict:
    """The capabilities in a graph's ``swinir_app.capabilities`` metadata, checked; one line if they are not."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        raise ModelLoadError(f"{label}: its {META_CAPABILITIES} metadata is not valid JSON") from None
    missing = [k for k in _CAPABILITY_KEYS if not isinstance(d, dict) or k not in d]
    if missing:
        raise ModelLoadError(f"{label}: its {META_CAPABILITIES} metadata lacks {', '.join(missing)}")
    ints = ("scale", "in_chans", "out_chans", "size_multiple", "minimum")
    if any(not isinstance(d[k], int) or isinstance(d[k], bool) or d[k] < (0 if k == "minimum" else 1)
           or d[k] > 4096 for k in ints) or not isinstance(d["square"], bool) or d["tiling"] not in TILING:
        raise ModelLoadError(f"{label}: its {META_CAPABILITIES} metadata is out of range ({text[:200]})")
    d.setdefault("bytes_per_pixel", 4 * 64 * 24)
    return d


def _run_interruptible(session, feed, cancel: Optional[Callable[[], None]] = None) -> np.ndarray:
    """``session.run`` in a worker thread, waited on in slices: a graph that runs long (or loops for ever)
    is terminated by Ctrl-C or by ``cancel`` raising, which a blocking run would not notice until it ends."""
    import onnxruntime as ort
    options = ort.RunOptions()
    options.log_severity_level = 4  # a terminated run is reported by the caller, not logged as an ORT error
    result: list = []
    done = threading.Event()

    def work():
        try:
            result.append(session.run(None, feed, options)[0])
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            result.append(e)
        finally:
            done.set()

    # An Event, not Thread.join: a join interrupted by Ctrl-C marks a running thread as finished (Python 3.11).
    worker = threading.Thread(target=work, name="onnxruntime", daemon=True)
    try:
        worker.start()
        while not done.wait(POLL):  # a signal (Ctrl-C) interrupts the wait
            if cancel is not None:
                cancel()
    except BaseException:
        options.terminate = True  # ONNX Runtime checks it between nodes and loop iterations
        if worker.ident is not None:  # started: it must not be inside ONNX Runtime when the interpreter exits
            done.wait(10)
        raise
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """Mirror-pad (B, C, H, W) at the bottom and right to exactly h x w, as the network pads."""
    H, W = x.shape[-2:]
    return x.index_select(-2, mirror_index(H, h, x.device)).index_select(-1, mirror_index(W, w, x.device))


def load_onnx(path: Union[str, os.PathLike]) -> OnnxModel:
    """An exported graph as an :class:`OnnxModel`. Raises :class:`ModelLoadError` (one line) for a file that is
    not ONNX, a graph without swinir_app metadata, or a wrong input."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"{path.name}: running ONNX graphs needs onnxruntime (pip install onnxruntime, "
                             f"or onnxruntime-gpu)") from None
    return OnnxModel(path)


def graph_info(path: Union[str, os.PathLike]) -> Dict[str, str]:
    """The metadata of an exported graph (its config or, for another architecture, its capabilities; task,
    scale, channels, name, source)."""
    return dict(inference_session(path).get_modelmeta().custom_metadata_map)


__all__: Sequence[str] = ("INPUT", "META_CAPABILITIES", "META_CONFIG", "OUTPUT", "OnnxModel", "graph_info", "load_onnx")
