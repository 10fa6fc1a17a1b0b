"""GAN and perceptual training: basicsr's discriminators and losses, built from the options.

What BasicSR's ``SRGANModel`` / Real-ESRGAN's ``RealESRGANModel`` do in ``optimize_parameters``, on the
pieces basicsr ships: ``archs.discriminator_arch.UNetDiscriminatorSN`` (Real-ESRGAN's U-Net with spectral
norm) and ``VGGStyleDiscriminator``, ``losses.GANLoss`` and ``losses.PerceptualLoss`` (VGG features).
The step itself lives in the trainer; here is what it is made of.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .. import _basicsr  # noqa: F401 - the torchvision alias basicsr needs
from ..options import TypedOptions
from ..checkpoint import ModelLoadError


def build_discriminator(opts: TypedOptions, in_chans: int) -> nn.Module:
    """``network_d``: basicsr's UNetDiscriminatorSN or VGGStyleDiscriminator (``num_in_ch`` defaults to the
    images' channels)."""
    from basicsr.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator
    cls = {"UNetDiscriminatorSN": UNetDiscriminatorSN, "VGGStyleDiscriminator": VGGStyleDiscriminator}[opts.type]
    args = {"num_in_ch": in_chans, "num_feat": 64, **opts.args}
    return cls(**args)


def vgg_file(vgg_type: str) -> Tuple[str, Path]:
    """(download URL, where torchvision keeps it) of the ImageNet weights of a torchvision VGG."""
    import torchvision
    weights = getattr(torchvision.models, vgg_type.upper() + "_Weights").IMAGENET1K_V1
    return weights.url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def build_perceptual(opts: TypedOptions) -> nn.Module:
    """basicsr's PerceptualLoss. Its VGG weights come from torchvision's cache (downloaded on first use, as
    torchvision does); where they cannot be had, one line names the file and the place to put it.

    Raises:
        ModelLoadError: the VGG weights are missing and cannot be downloaded, or do not load.
    """
    from basicsr.losses.basic_loss import PerceptualLoss
    args = dict(opts.args)
    vgg_type = args.get("vgg_type", "vgg19")
    url, path = vgg_file(vgg_type)
    try:
        return PerceptualLoss(**args)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        if path.is_file():  # a file that is there but does not load: say so, do not blame the network
            raise ModelLoadError(f"train.perceptual_opt: {path} does not load as {vgg_type}: "
                                f"{str(e).splitlines()[0]}") from None
        raise ModelLoadError(f"train.perceptual_opt needs the ImageNet weights of {vgg_type}, "
                            f"{path.name}, which could not be downloaded ({type(e).__name__}); place the file "
                            f"from {url} at {path}") from None


def build_gan_loss(opts: TypedOptions) -> nn.Module:
    """basicsr's GANLoss (vanilla, lsgan, hinge, wgan, wgan_softplus) with its loss_weight."""
    from basicsr.losses.gan_loss import GANLoss
    args = {"gan_type": "vanilla", **opts.args}
    return GANLoss(**args)


def perceptual_value(loss: nn.Module, out: Tensor, target: Tensor) -> Optional[Tensor]:
    """The perceptual plus style terms of basicsr's PerceptualLoss (either may be None)."""
    percep, style = loss(out, target)
    terms = [t for t in (percep, style) if t is not None]
    return sum(terms) if terms else None


__all__ = ["build_discriminator", "build_gan_loss", "build_perceptual", "perceptual_value", "vgg_file"]
