"""The SwinIR paper's evaluation protocol, as one library: no argparse, no YAML.

- :mod:`.inputs`: images read as the official test script reads them; benchmark file names.
- :mod:`.degrade`: MATLAB bicubic, Gaussian noise and JPEG, made from the GT.
- :mod:`.runner`: pad, model, crop, round (``official_pad``, ``run_official``).
- :mod:`.metrics`: PSNR/SSIM (basicsr's), PSNR-B, LPIPS on uint8 images.
- :mod:`.evaluation`: ``evaluate()`` over a folder, with the protocol recorded beside the numbers.

Evaluation, training's validation and dataset preparation all use it, so their numbers agree.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Loaded on first use (PEP 562), so that importing one submodule (a DataLoader worker's ``protocol.degrade``)
# loads only what it imports: not the engine and the zoo that ``evaluate`` needs.
_EXPORTS = {"EvalError": "evaluation", "EvalResult": "evaluation", "ImageResult": "evaluation",
            "Protocol": "evaluation", "evaluate": "evaluation",
            "LPIPS": "metrics", "METRICS": "metrics", "compute_metrics": "metrics", "to_uint8": "metrics"}

__all__ = ["EvalError", "EvalResult", "ImageResult", "LPIPS", "METRICS", "Protocol", "compute_metrics", "evaluate",
           "to_uint8"]

if TYPE_CHECKING:
    from .evaluation import EvalError, EvalResult, ImageResult, Protocol, evaluate
    from .metrics import LPIPS, METRICS, compute_metrics, to_uint8


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
