"""Validation during training: :class:`Validator`, PSNR/SSIM of every val set with the evaluation's padding
and metric code, the best value of each metric so far (saved in the training state), and the images."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import nn

from .. import distributed
from ..distributed import Dist
from ..images import write_image
from ..options import Options
from ..protocol.metrics import compute_metrics
from ..protocol.runner import run_official
from .data import RestorationDataset
from .logbook import LogBook

log = logging.getLogger("swinir_app.train")

Best = Dict[str, Dict[str, Tuple[float, int]]]  # val set -> metric -> (best value, its iteration)


class Validator:
    """The val sets of ``opts``, run on rank 0 with :meth:`validate`. ``best`` holds every metric's best
    value and iteration; :meth:`best_state` and :meth:`load_best` carry it through a training state.
    Every metric also goes to the log book's TensorBoard, where it has one."""

    def __init__(self, opts: Options, dist: Dist, val_sets: List[RestorationDataset], visualization: Path,
                 book: LogBook):
        self.opts, self.dist, self.val_sets, self.book = opts, dist, val_sets, book
        self.cfg = opts.network_g.config
        self.visualization = visualization
        self.best: Best = {}

    def best_state(self) -> Dict[str, Dict[str, list]]:
        return {k: {m: list(v) for m, v in d.items()} for k, d in self.best.items()}

    def load_best(self, state: Dict[str, Dict[str, list]]) -> None:
        self.best = {k: {m: (float(v[0]), int(v[1])) for m, v in d.items()} for k, d in state.items()}

    @torch.no_grad()
    def validate(self, net: nn.Module, it: int) -> Dict[str, Dict[str, float]]:
        """PSNR/SSIM of every val set, on rank 0, with the evaluation's padding and metric code; ``net`` is
        put in eval mode meanwhile. Every rank returns (the others an empty dict) after a barrier."""
        results: Dict[str, Dict[str, float]] = {}
        if self.dist.main:
            was_training = net.training
            net.eval()
            try:
                for ds in self.val_sets:
                    results[ds.opts.name] = self._validate_set(net, ds, it)
            finally:
                net.train(was_training)
        distributed.barrier(self.dist)
        return results

    def _validate_set(self, net: nn.Module, ds: RestorationDataset, it: int) -> Dict[str, float]:
        o, s, device = self.opts, self.cfg.upscale, self.dist.device
        metrics = o.val.metrics or {}
        sums: Dict[str, float] = {k: 0.0 for k in metrics}
        start = time.perf_counter()
        for i in range(len(ds)):
            gt, lq = ds.pair(i)
            out = run_official(lambda x: net(x.to(device)), lq, s, self.cfg.window_size)
            for key, m in metrics.items():
                scores = compute_metrics(out, gt, crop_border=o.crop_border(m), metrics=(m.metric,),
                                         y_channel=m.test_y_channel)
                y_key = f"{m.metric}_y"
                sums[key] += scores[y_key] if m.test_y_channel and y_key in scores else scores[m.metric]
            if o.val.save_img:
                name = ds.name(i)
                suffix = f"_{o.val.suffix}" if o.val.suffix else f"_{it}"
                write_image(self.visualization / name / f"{name}{suffix}.png", out)
        means = {k: v / len(ds) for k, v in sums.items()}
        best = self.best.setdefault(ds.opts.name, {})
        parts = []
        for key, value in means.items():
            higher = metrics[key].better == "higher"
            old = best.get(key)
            if old is None or (value > old[0] if higher else value < old[0]):
                best[key] = (value, it)
            parts.append(f"{key} {value:.4f} (best {best[key][0]:.4f} @ {best[key][1]})")
            if self.book.tb is not None:
                self.book.tb.add_scalar(f"metrics/{ds.opts.name}/{key}", value, it)
        log.info("validation %s at iteration %d (%d images, %.1fs): %s", ds.opts.name, it, len(ds),
                 time.perf_counter() - start, ", ".join(parts) or "no metrics")
        return means


__all__ = ["Best", "Validator"]
