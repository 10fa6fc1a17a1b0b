"""GAN and perceptual training: basicsr's discriminators and losses, built from the options.

What BasicSR's ``SRGANModel`` / Real-ESRGAN's ``RealESRGANModel`` do in ``optimize_parameters``, on the
pieces basicsr ships: ``archs.discriminator_arch.UNetDiscriminatorSN`` (Real-ESRGAN's U-Net with spectral
norm) and ``VGGStyleDiscriminator``, ``losses.GANLoss`` and ``losses.PerceptualLoss`` (VGG features).
:func:`read_gan_parts` reads and checks them before anything is written; :class:`GanStep` holds D, its
optimizer and losses, and makes D's step and G's adversarial terms.
"""
from __future__ import annotations

import logging
import os
import urllib.error
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import _basicsr  # noqa: F401 - the torchvision alias basicsr needs
from ..options import Options, TypedOptions
from ..checkpoint import ModelLoadError, read_file
from ..distributed import Dist
from .experiment import Resume, TrainingError
from .schedule import lr_schedule

log = logging.getLogger("swinir_app.train")

# (discriminator weights to start from or None, GAN loss, perceptual loss or None)
GanParts = Tuple[Optional[Dict[str, Any]], nn.Module, Optional[nn.Module]]


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


def read_gan_parts(opts: Options, resume: Optional[Resume]) -> GanParts:
    """(discriminator weights to start from or None, GAN loss, perceptual loss or None), checked now."""
    o = opts
    t = o.train
    if resume is not None and resume.weights_d is None:
        raise TrainingError(f"{resume.path} was saved without a discriminator (not a GAN run); start the GAN "
                            f"stage with path.pretrain_network_g instead of resuming")
    start = None
    if resume is None and o.path.pretrain_network_d:
        try:
            raw, _ = read_file(o.path.pretrain_network_d)
        except ModelLoadError as e:
            raise TrainingError(f"path.pretrain_network_d: {e}") from None
        start = raw.get(o.path.param_key_d, raw) if isinstance(raw, dict) else raw
        if not isinstance(start, dict):
            raise TrainingError(f"path.pretrain_network_d: {o.path.pretrain_network_d} holds no state dict")
    gan = build_gan_loss(t.gan_opt)
    perceptual = build_perceptual(t.perceptual_opt) if t.perceptual_opt is not None else None
    return start, gan, perceptual


class GanStep:
    """The discriminator side of a GAN run: D (``model_d``, and ``net_d``, DDP-wrapped where distributed), its
    optimizer and learning rates, the GAN and perceptual losses; :meth:`adversarial_terms` for G's step,
    :meth:`step` for D's. Built from :func:`read_gan_parts`'s parts, and from the resume state's D weights
    and optimizer where there is one. D's initial weights are seeded with ``seed + 1`` on every rank.

    Raises:
        TrainingError: the discriminator weights do not fit ``network_d``.
    """

    def __init__(self, opts: Options, dist: Dist, parts: GanParts, resume: Optional[Resume], seed: int,
                 out_chans: int):
        o, t, device = opts, opts.train, dist.device
        start, gan, perceptual = parts
        torch.manual_seed(seed + 1)  # D's initial weights: the same on every rank
        d = build_discriminator(o.network_d, out_chans)
        state = resume.weights_d["params"] if resume is not None else start
        if state is not None:
            try:
                d.load_state_dict(state, strict=o.path.strict_load_d or resume is not None)
            except RuntimeError as e:
                first = str(e).splitlines()[0]
                raise TrainingError(f"the discriminator weights do not fit network_d ({o.network_d.type}): "
                                    f"{first}") from None
        d.to(device).train()
        self.model_d = d
        if dist.enabled:
            self.net_d = nn.parallel.DistributedDataParallel(
                d, device_ids=[device.index] if device.type == "cuda" else None)
        else:
            self.net_d = d
        self.params_d = [p for p in d.parameters() if p.requires_grad]
        self.optimizer_d = getattr(torch.optim, t.optim_d.type)(self.params_d, **t.optim_d.args)
        self.lr_d_at = lr_schedule(t, base=float(t.optim_d.args["lr"]))
        self.gan_loss = gan.to(device)
        self.perceptual_loss = perceptual.to(device) if perceptual is not None else None
        if resume is not None:
            self.optimizer_d.load_state_dict(resume.state["optimizers"][1])
        log.info("discriminator %s: %.3fM parameters; losses: %s", o.network_d.type,
                 sum(p.numel() for p in self.params_d) / 1e6,
                 ", ".join(["pixel", *(["perceptual"] if perceptual is not None else []),
                            f"gan ({t.gan_opt.args.get('gan_type', 'vanilla')})"]))

    def freeze(self) -> None:
        """D's weights frozen for G's step, as BasicSR's."""
        for p in self.params_d:
            p.requires_grad_(False)

    def adversarial_terms(self, out: Tensor, gt: Tensor) -> Tensor:
        """G's perceptual and GAN terms. D runs unwrapped here: its weights are frozen for this step, and
        DDP would wait for D gradients that never come."""
        terms = self.gan_loss(self.model_d(out), True, is_disc=False)
        if self.perceptual_loss is not None:
            value = perceptual_value(self.perceptual_loss, out, gt)
            if value is not None:
                terms = terms + value
        return terms

    def step(self, it: int, fake: Tensor, gt: Tensor) -> Tensor:
        """D on the real then the fake batch, one backward each (as BasicSR's), then its optimizer step;
        returns the detached real + fake loss. A non-finite D loss skips D's step."""
        for p in self.params_d:
            p.requires_grad_(True)
        for group in self.optimizer_d.param_groups:
            group["lr"] = self.lr_d_at(it)
        self.optimizer_d.zero_grad(set_to_none=True)
        real = self.gan_loss(self.net_d(gt), True, is_disc=True)
        real.backward()
        fake_loss = self.gan_loss(self.net_d(fake), False, is_disc=True)
        fake_loss.backward()
        total = (real + fake_loss).detach()
        if bool(torch.isfinite(total)):
            self.optimizer_d.step()
        else:
            log.warning("iteration %d: non-finite discriminator loss; its step skipped", it)
            self.optimizer_d.zero_grad(set_to_none=True)
        return total


__all__ = ["GanParts", "GanStep", "read_gan_parts",
           "build_discriminator", "build_gan_loss", "build_perceptual", "perceptual_value", "vgg_file"]
