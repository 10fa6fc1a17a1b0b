"""What a training step is made of, with no state of its own: BasicSR's learning-rate schedules,
its pixel losses and its EMA of the weights."""
from __future__ import annotations

import copy
import math
from bisect import bisect_left, bisect_right
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..options import LOSSES, TrainOptions, TypedOptions

__all__ = ["EMA", "lr_schedule", "make_loss"]


def lr_schedule(opts: TrainOptions, base: Optional[float] = None) -> Callable[[int], float]:
    """The learning rate of iteration ``it`` (1-based), as BasicSR's schedulers and warmup give it.

    BasicSR steps its schedulers at the start of every iteration but the first, so iteration ``it``
    runs at scheduler epoch ``it - 1``; during warmup (it < warmup_iter) it sets base * it /
    warmup_iter instead. Its MultiStepRestartLR is chained (each milestone multiplies the rate in
    place), so after a warmup the rate goes on from the last warmup value, base * (w - 1) / w, until a
    restart resets it: reproduced here in closed form, and tested against basicsr's own classes. ``base``
    is optim_g's lr unless given (the discriminator's optimizer follows the same schedule from its own lr).
    """
    base = float(opts.optim_g.args["lr"]) if base is None else base
    warmup = opts.warmup_iter if opts.warmup_iter > 1 else 0
    s = opts.scheduler
    if s is None:
        scheduled = lambda epoch: base  # noqa: E731
    elif s.type in ("MultiStepLR", "MultiStepRestartLR"):
        milestones = sorted(s.args.get("milestones", ()))
        gamma = s.args.get("gamma", 0.1)
        weight_at = dict(zip(s.args.get("restarts", (0,)), s.args.get("restart_weights", (1.0,))))
        # The first epoch whose step acts on a rate that is kept (warmup overwrites the ones before).
        first = max(warmup - 1, 1)
        start_lr = base * (warmup - 1) / warmup if warmup else base

        def scheduled(epoch: int) -> float:
            restarts = [r for r in weight_at if first <= r <= epoch]
            if restarts:  # a restart sets initial_lr * weight; later milestones decay it
                r = max(restarts)
                rate, lo = base * weight_at[r], r + 1
            else:
                rate, lo = start_lr, first
            count = bisect_right(milestones, epoch) - bisect_left(milestones, lo)
            return rate * gamma ** max(count, 0)
    else:  # CosineAnnealingRestartLR: closed form in BasicSR too
        periods = s.args["periods"]
        weights = s.args.get("restart_weights", (1.0,) * len(periods))
        eta_min = s.args.get("eta_min", 0.0)
        cumulative = np.cumsum(periods).tolist()

        def scheduled(epoch: int) -> float:
            idx = min(bisect_left(cumulative, epoch), len(periods) - 1)
            restart = 0 if idx == 0 else cumulative[idx - 1]
            return eta_min + weights[idx] * 0.5 * (base - eta_min) * (
                1 + math.cos(math.pi * (epoch - restart) / periods[idx]))

    def lr(it: int) -> float:
        return base * it / warmup if it < warmup else scheduled(it - 1)
    return lr


def make_loss(opts: TypedOptions) -> Callable[[Tensor, Tensor], Tensor]:
    """BasicSR's L1Loss / MSELoss / CharbonnierLoss (sqrt(d^2 + eps), eps 1e-12) with loss_weight."""
    kind = LOSSES[opts.type]
    weight = float(opts.args.get("loss_weight", 1.0))
    reduction = opts.args.get("reduction", "mean")
    eps = float(opts.args.get("eps", 1e-12))

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        if kind == "l1":
            value = F.l1_loss(pred, target, reduction=reduction)
        elif kind == "mse":
            value = F.mse_loss(pred, target, reduction=reduction)
        else:
            d = torch.sqrt((pred - target) ** 2 + eps)
            value = d.mean() if reduction == "mean" else d.sum()
        return value * weight if weight != 1.0 else value
    return loss


class EMA:
    """BasicSR's ``model_ema``: after every step, ema = decay * ema + (1 - decay) * weights.

    Normalisation statistics (BatchNorm's running mean and variance, DAT's) are copied from the model at every
    update. BasicSR's leaves every buffer as it was when the EMA was made: for the SwinIR family's derived
    buffers (indices, masks) the same thing, but DAT's BatchNorm statistics would stay at their initial values
    (mean 0, variance 1) in ``params_ema``, the weights that validation, the saved models and ``load_model`` use.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self._ema = list(self.module.parameters())
        self._src = list(model.parameters())
        # Only the statistics that training changes (the derived buffers, masks among them, never change).
        stats = lambda net: [b for m in net.modules() if isinstance(m, nn.modules.batchnorm._NormBase)  # noqa: E731
                             for b in m.buffers(recurse=False)]
        self._ema_buffers, self._src_buffers = stats(self.module), stats(model)

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_mul_(self._ema, self.decay)
        torch._foreach_add_(self._ema, self._src, alpha=1.0 - self.decay)
        for ema, src in zip(self._ema_buffers, self._src_buffers):
            ema.copy_(src)
