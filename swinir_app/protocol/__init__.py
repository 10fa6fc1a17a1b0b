"""The SwinIR paper's evaluation protocol, as one library: no argparse, no YAML.

- :mod:`.inputs`: images read as the official test script reads them; benchmark file names.
- :mod:`.degrade`: MATLAB bicubic, Gaussian noise and JPEG, made from the GT.
- :mod:`.runner`: pad, model, crop, round (``official_pad``, ``run_official``).
- :mod:`.metrics`: PSNR/SSIM (basicsr's), PSNR-B, LPIPS on uint8 images.
- :mod:`.evaluation`: ``evaluate()`` over a folder, with the protocol recorded beside the numbers.

Evaluation, training's validation and dataset preparation all use it, so their numbers agree.
"""
from .evaluation import EvalError, EvalResult, ImageResult, Protocol, evaluate
from .metrics import LPIPS, METRICS, compute_metrics, to_uint8

__all__ = ["EvalError", "EvalResult", "ImageResult", "LPIPS", "METRICS", "Protocol", "compute_metrics", "evaluate",
           "to_uint8"]
