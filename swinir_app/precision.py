"""Precisions in one place: their names, dtypes, what ``auto`` picks, and what is refused, and why.

Used by the engine (inference), training (``train.amp``), the benchmark and the ONNX export, so a precision
is spelled, chosen and refused the same way everywhere. What a machine can do comes from
:mod:`swinir_app.network.hardware`; what a model can run comes from its
:class:`~swinir_app.network.capabilities.Capabilities`.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import SettingError
from .network import hardware
from .network.capabilities import Capabilities

__all__ = ["AMP_PRECISIONS", "DTYPES", "EXPORT_PRECISIONS", "PRECISIONS", "auto_precision", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # inference: the engine, the CLIs, the web app, evaluation
AMP_PRECISIONS = ("bf16", "fp16")  # training's mixed precision (train.amp); fp32 is "no amp"
EXPORT_PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # an exported graph's (bf16 is refused: ONNX Runtime cannot
# run it; int8 is ONNX Runtime's dynamic quantisation of the fp32 graph)
DTYPES = hardware.DTYPES  # precision name -> torch dtype


def auto_precision(device: Union[str, torch.device], model: Optional[Capabilities] = None) -> str:
    """The precision ``"auto"`` picks for a model on ``device``: the fastest accurate one there.

    - a model with its own precision (an exported graph): that one;
    - CUDA: bf16 on sm80 and newer, else fp16 (a tile that overflows is redone in fp32);
    - CPU with AMX-BF16: bf16 for models measured faster in it (``amx_bf16_faster``: transformers with
      ``embed_dim >= 96``, docs/performance.md), else fp32;
    - other CPUs (AVX2, AVX512-BF16 without AMX: not measured faster) and MPS: fp32.

    Only precisions the model declares are picked; fp32 is always among them. int8 is never picked: it
    changes the numbers (``bundled-x4``'s output lies about 55 dB PSNR from its fp32 output), so the user asks.
    """
    device = torch.device(device)
    if model is not None and model.own_precision:
        return model.own_precision
    if device.type == "cuda":
        pick = "bf16" if hardware.gpu(device).bf16 else "fp16"
    elif device.type == "cpu" and hardware.cpu().amx and (model is None or model.amx_bf16_faster):
        pick = "bf16"
    else:
        pick = "fp32"
    return pick if model is None or pick in model.precisions else "fp32"


def resolve_precision(precision: str, device: Union[str, torch.device], model: Optional[Capabilities] = None,
                      *, label: str = "the model") -> str:
    """'auto', 'fp32', 'bf16', 'fp16' or 'int8' -> the precision that will run ``model`` on ``device``.

    A half precision this device cannot run natively is refused with :class:`SettingError` (one line
    saying why and what to use), never left to fail inside a kernel or to run emulated and slow; so is a
    precision the model does not declare (``label`` names it in the message).
    """
    if precision not in PRECISIONS:
        raise SettingError("precision", precision, f"not one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if model is not None and model.own_precision:  # the graph's runtime runs it, not torch's kernels
        if precision not in ("auto", model.own_precision):
            article = "a" if model.own_precision == "bf16" else "an"  # an fp32, fp16 or int8 graph
            raise SettingError("precision", precision, f"{label} is {article} {model.own_precision} graph",
                               f"export it again with --precision {precision}, or use auto"
                               if precision in ("fp32", "fp16") else "use auto")
        if model.own_precision == "int8" and device.type != "cpu":  # ONNX Runtime's int8 kernels are CPU ones
            raise SettingError("device", device.type, f"{label} is an int8 graph, which runs on CPUs only",
                               "use --device cpu, or export an fp32 or fp16 graph for the GPU")
        return model.own_precision
    if precision == "auto":
        return auto_precision(device, model)
    if precision == "bf16":
        if device.type == "cpu" and not hardware.cpu().bf16:
            raise SettingError("precision", precision, f"this CPU ({hardware.cpu().describe()}) would emulate "
                                                       f"bf16, about 100x slower than fp32", "use fp32 or auto")
        if device.type == "cuda" and not hardware.gpu(device).bf16:
            raise SettingError("precision", precision, f"this GPU ({hardware.gpu(device).describe()}) has no "
                                                       f"native bf16 (sm80 and newer have it)", "use fp16 or auto")
        if device.type == "mps":
            raise SettingError("precision", precision, "not supported on MPS", "use fp16, fp32 or auto")
    if precision == "int8":
        if device.type != "cpu":
            raise SettingError("precision", precision, f"int8 runs on CPUs only, not on {device.type.upper()}",
                               "use auto, or --device cpu")
        if not hardware.cpu().int8:
            raise SettingError("precision", precision, f"this CPU ({hardware.cpu().describe()}) has no oneDNN "
                                                       f"int8 kernels (x86-64 with AVX2 or newer needed)",
                               "use fp32 or auto")
    if precision == "fp16" and device.type == "cpu":
        other = "fp32, bf16 (native on this CPU)" if hardware.cpu().bf16 else "fp32"
        raise SettingError("precision", precision, "fp16 is for GPUs", f"on this CPU use {other} or auto")
    if model is not None and precision not in model.precisions:
        raise SettingError("precision", precision, f"{label} ({model.arch}) does not run in {precision}",
                           f"use {' or '.join(model.precisions)} or auto")
    return precision
