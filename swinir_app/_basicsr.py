"""The one door to basicsr. Import basicsr only through this module.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, which current torchvision
no longer has; an alias module is registered before basicsr is first imported.
"""
import sys
import types
import warnings


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
from basicsr.metrics.niqe import calculate_niqe  # noqa: E402  (ships the pristine-image parameters)
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils.matlab_functions import imresize  # noqa: E402  (MATLAB bicubic)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class OfficialReference(torch.nn.Module):
    """The official network (basicsr's copy) with the official forward's reflect pad and crop.

    The reference for equivalence tests and for the benchmark.
    """

    def __init__(self, config):
        super().__init__()
        c = config
        with warnings.catch_warnings():  # basicsr calls torch.meshgrid without indexing=
            warnings.simplefilter("ignore", UserWarning)
            self.net = self._build(c)
        self.window_size, self.scale = c.window_size, c.upscale

    @staticmethod
    def _build(c):
        return OfficialSwinIR(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size,
                              window_size=c.window_size, img_range=c.img_range, depths=list(c.depths),
                              embed_dim=c.embed_dim, num_heads=list(c.num_heads), mlp_ratio=c.mlp_ratio,
                              upsampler=c.upsampler, resi_connection=c.resi_connection,
                              qkv_bias=c.qkv_bias, qk_scale=c.qk_scale, drop_rate=c.drop_rate,
                              attn_drop_rate=c.attn_drop_rate, drop_path_rate=c.drop_path_rate,
                              ape=c.ape, patch_norm=c.patch_norm, use_checkpoint=c.use_checkpoint)

    def forward(self, x):
        h, w = x.shape[-2:]
        ws = self.window_size
        x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), "reflect")
        return self.net(x)[..., :h * self.scale, :w * self.scale]


__all__ = ["OfficialReference", "OfficialSwinIR", "calculate_niqe", "calculate_psnr", "calculate_ssim", "imresize"]
