"""The one door to basicsr. Import basicsr only through this module.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, which current torchvision
no longer has; an alias module is registered before basicsr is first imported.
"""
import sys
import types


def _alias_functional_tensor() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        __import__(name)
    except ImportError:
        from torchvision.transforms.functional import rgb_to_grayscale

        module = types.ModuleType(name)
        module.rgb_to_grayscale = rgb_to_grayscale
        sys.modules[name] = module


_alias_functional_tensor()

from basicsr.archs.swinir_arch import SwinIR as OfficialSwinIR  # noqa: E402  (a copy of the official network)
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils.matlab_functions import imresize  # noqa: E402  (MATLAB bicubic)

__all__ = ["OfficialSwinIR", "calculate_psnr", "calculate_ssim", "imresize"]
