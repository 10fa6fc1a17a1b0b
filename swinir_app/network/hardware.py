"""What this machine's kernels can do, asked in one place.

Every kernel and precision choice reads :func:`cpu` or :func:`gpu`: the fused oneDNN linears
(``layers.fusable``), the engine's ``precision="auto"`` and its refusals, training's ``train.amp``
and the benchmark's report. :func:`override` forces a capability off, so that the paths of other
machines (an AVX2 CPU without native bf16, say) run and are tested anywhere.

The CPU answers come from oneDNN itself, so they honour ``ONEDNN_MAX_CPU_ISA``: with
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` an AVX-512/AMX machine behaves as an AVX2 one.
"""
from __future__ import annotations

import dataclasses
import functools
import platform
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple, Union

import torch

__all__ = ["CPU", "DTYPES", "GPU", "autocast", "cpu", "gpu", "native_bf16", "override"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # precision name -> dtype


def autocast(device: Union[str, torch.device], precision: str):
    """The autocast context of a precision name on ``device``: off for fp32 and int8 (its int8 linears are
    modules of their own, :mod:`.int8`), else that dtype."""
    device_type = torch.device(device).type
    if precision in ("fp32", "int8"):
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=DTYPES[precision])


@dataclass(frozen=True)
class CPU:
    """The CPU as the kernels see it.

    Attributes:
        name: the model name, e.g. "AMD EPYC 7B13" (from /proc/cpuinfo where there is one).
        isa: ATen's vector ISA, ``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", "DEFAULT"...
        bf16: oneDNN has native bf16 kernels here (AVX512-BF16, AMX-BF16 or AVX-NE-CONVERT). Without
            them bf16 is emulated, about 100x slower than fp32, and the fused bf16 linear has no kernel.
        amx: AMX-BF16 tiles, where bf16 matmuls run several times faster than fp32.
        fused_linear: this torch build has oneDNN's fused linear + pointwise op (``_linear_pointwise``).
        int8: oneDNN's int8 linear (``onednn::qlinear_pointwise``) runs here with vector kernels (x86-64 with
            AVX2 or better): ``precision="int8"`` (:mod:`.int8`) is offered.
        vnni: its u8 x s8 products are summed exactly (AVX512-VNNI, AVX-VNNI, AMX). Without VNNI, oneDNN
            sums pairs of products in 16 bits, which saturate for 8-bit activations and weights, so the int8
            linears keep their weights to 7 bits there. Probed by running the kernel, so it honours
            ``ONEDNN_MAX_CPU_ISA``.
    """

    name: str
    isa: str
    bf16: bool
    amx: bool
    fused_linear: bool
    int8: bool = False
    vnni: bool = False

    def describe(self) -> str:
        """One line, e.g. 'AMD EPYC 7B13 (AVX2, no native bf16)'."""
        bf16 = "AMX bf16" if self.amx else "native bf16" if self.bf16 else "no native bf16"
        return f"{self.name} ({self.isa}, {bf16})"


@dataclass(frozen=True)
class GPU:
    """A CUDA device: its name, compute capability and whether bf16 is native (sm80 and newer)."""

    name: str
    capability: Tuple[int, int]
    bf16: bool

    def describe(self) -> str:
        return f"{self.name} (compute capability {self.capability[0]}.{self.capability[1]})"


_forced: dict = {}


@functools.lru_cache(maxsize=None)
def _probe_cpu() -> CPU:
    mkldnn = torch.backends.mkldnn.is_available()
    bf16 = bool(mkldnn and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    amx = False
    if bf16:
        try:
            amx = bool(torch.cpu._is_amx_tile_supported())
        except AttributeError:  # older torch: no AMX query
            amx = False
    fused = mkldnn and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    isa = torch.backends.cpu.get_cpu_capability()
    int8 = bool(mkldnn and isa.startswith(("AVX2", "AVX512")) and hasattr(torch.ops.onednn, "qlinear_pointwise"))
    vnni = _exact_u8s8() if int8 else None
    return CPU(_cpu_name(), isa, bf16, amx, fused, vnni is not None, bool(vnni))


def _exact_u8s8() -> Optional[bool]:
    """Whether oneDNN's int8 linear sums 255 * 127 products exactly (VNNI) rather than saturating pairs of
    them at 32767 (AVX2's vpmaddubsw), found by running it once; None if it does not run at all."""
    try:
        with torch.inference_mode(False), torch.no_grad():
            x = torch.full((64, 64), 255, dtype=torch.uint8)
            w = torch.ops.onednn.qlinear_prepack(torch.full((64, 64), 127, dtype=torch.int8), None)
            y = torch.ops.onednn.qlinear_pointwise(x, 1.0, 0, w, torch.ones(64), torch.zeros(64, dtype=torch.long),
                                                   None, 1.0, 0, torch.float32, "none", [], "")
    except RuntimeError:
        return None
    return bool(y[0, 0] == 64 * 255 * 127)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu() -> CPU:
    """This machine's CPU capabilities (probed once), with any :func:`override` applied."""
    probed = _probe_cpu()
    return dataclasses.replace(probed, **_forced) if _forced else probed


def gpu(device: Union[int, str, torch.device, None] = None) -> GPU:
    """The CUDA device's capabilities. Raises RuntimeError when CUDA is not available."""
    major, minor = torch.cuda.get_device_capability(device)
    return GPU(torch.cuda.get_device_name(device), (major, minor), major >= 8)


def native_bf16(device: Union[str, torch.device]) -> bool:
    """bf16 runs natively (not emulated) on ``device``: a CPU with AVX512-BF16/AMX, or CUDA sm80+."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu().bf16
    if device.type == "cuda":
        return gpu(device).bf16
    return False


@contextmanager
def override(**changes: Optional[bool]) -> Iterator[CPU]:
    """Pretend the CPU lacks (or has) some capabilities, e.g. ``override(bf16=False, amx=False)``.

    For tests and measurements: every kernel choice made inside the block sees the changed values.
    """
    unknown = set(changes) - {f.name for f in dataclasses.fields(CPU)}
    if unknown:
        raise TypeError(f"unknown CPU capabilities: {', '.join(sorted(unknown))}")
    saved = dict(_forced)
    _forced.update(changes)
    try:
        yield cpu()
    finally:
        _forced.clear()
        _forced.update(saved)
