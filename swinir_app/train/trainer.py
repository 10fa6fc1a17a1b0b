"""The training loop: EMA, AMP, clipping, a NaN guard, validation, atomic checkpoints, exact resume, DDP.

Outputs, BasicSR's layout, in ``experiments/<name>/`` (``path.experiments_root``):

    models/net_g_<iter>.pth, models/net_g_latest.pth   {params, params_ema, config}: load_model() reads them
    training_states/<iter>.state                       iteration, optimizer, scheduler, scaler, RNG states
    train_<name>_<time>.log, <name>.yml                the log and a copy of the options
    tb_logger/, visualization/, cache/                 TensorBoard, validation images, bicubic LR cache

Every checkpoint and state file is written to a temp file and renamed: a kill at any moment
leaves complete files only, and the latest state that loads (with its weights) is where
``--auto_resume`` continues, with the same data order, crops, RNG streams, optimizer and EMA.
"""
from __future__ import annotations

import datetime
import inspect
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..network.hardware import autocast
from ..files import atomic_write, remove_stale_parts
from ..network import SwinIR, build_network
from .. import distributed
from .experiment import Experiment, Interrupted, Resume, TrainingError, cpu_state, rng_state, set_rng_state
from .gan import GanStep
from .logbook import LogBook, format_eta
from .preflight import Preflight, preflight
from .sampler import train_loader
from .schedule import EMA, lr_schedule, make_loss
from .validate import Validator
from ..distributed import Dist
from ..options import Options, random_seed

log = logging.getLogger("swinir_app.train")


@dataclass
class Result:
    """What a run did: the last iteration, and the last validation of every val set."""

    iter: int
    experiment: Path
    metrics: Dict[str, Dict[str, float]] = field(default_factory=dict)
    losses: List[Tuple[int, float]] = field(default_factory=list)  # (iter, mean loss) at every log line


@dataclass
class Step:
    """What one iteration did: G's detached loss (None if G did not step), whether its step was
    skipped (non-finite gradients), and D's detached loss (None without a D)."""

    loss: Optional[Tensor] = None
    skipped: int = 0
    d_loss: Optional[Tensor] = None


class Trainer:
    """One training run of ``opts`` on this process (one rank of ``dist``).

    Setting up first calls :func:`.preflight.preflight`, which checks everything before anything is
    written: the options, the data (every header read once, the first sample made), ``train.amp``
    against the hardware, ``pretrain_network_g`` against the network, ``lq_cache``, the GAN's parts, and
    allocates the pair pool (``queue_size``). Only then is the experiment folder prepared (a new run
    archives an old one) and the run built from what the checks found: the model (``model``; ``net``,
    DDP-wrapped where distributed), its EMA, optimizer, learning rates, loss and AMP scaler, the
    :class:`.gan.GanStep` (``gan``, None without ``network_d``), the :class:`.validate.Validator` and the
    :class:`.logbook.LogBook`; a resume state is applied to all of them.

    :meth:`run` then steps (:meth:`step`) to ``train.total_iter``, logging, validating and saving as the
    options say; a kill at any moment leaves complete files, and ``--auto_resume`` continues exactly.
    :meth:`close` releases the log and TensorBoard.

    Raises:
        OptionsError, DataError, ModelLoadError: during setup, before anything is written.
        TrainingError: a run that cannot go on (diverged, or an unusable resume state).
    """

    def __init__(self, opts: Options, dist: Dist, *, auto_resume: bool = False, argv: Optional[List[str]] = None):
        self.opts, self.dist = opts, dist
        self.exp = Experiment(opts.experiments_root)
        self.cfg = opts.network_g.config
        self.device = dist.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch sizes: as BasicSR
        self.result = Result(0, self.exp.root)
        self.book = LogBook(self.exp, opts.name)
        found = preflight(opts, dist, self.exp, auto_resume=auto_resume)  # every check; nothing written yet
        resume = found.resume
        self.train_set, self.val_sets, self.pool = found.train_set, found.val_sets, found.pool
        visualization = Path(opts.path.visualization) if opts.path.visualization else self.exp.root / "visualization"
        self.validator = Validator(opts, dist, self.val_sets, visualization, self.book)
        self._prepare_folder(resume is not None, argv)
        if dist.main:
            import yaml

            dump = yaml.safe_dump(opts.to_dict(), sort_keys=False, default_flow_style=None).rstrip()
            log.debug("options (%s):\n%s", opts.source, dump)
            log.info("options: %s, copied to %s; every value, defaults included, is in the log file", opts.source,
                     self.exp.root / f"{opts.name}.yml")
        log.info(found.summary)
        for note in (note for ds in (self.train_set, *self.val_sets) for note in ds.warnings):
            log.warning("%s", note)
        self.seed = self._seed(resume)
        self._make_loader(resume, found.notes)
        self._build_model(found)

    @property
    def model_d(self) -> Optional[nn.Module]:
        """The discriminator (unwrapped), None without ``network_d``."""
        return self.gan.model_d if self.gan is not None else None

    # ---- setup ---------------------------------------------------------------------------

    def _prepare_folder(self, resuming: bool, argv: Optional[List[str]]) -> None:
        root = self.exp.root
        if self.dist.main:
            if not resuming and root.exists() and any(root.iterdir()):
                stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
                archived = root.with_name(f"{root.name}_archived_{stamp}")
                n = 1
                while archived.exists():  # twice in a second
                    archived, n = root.with_name(f"{root.name}_archived_{stamp}_{n}"), n + 1
                root.rename(archived)
                archived_note = f"the previous {root} was renamed {archived}"
            else:
                archived_note = None
            for folder in (root, self.exp.models, self.exp.states):
                folder.mkdir(parents=True, exist_ok=True)
            self.book.open()
            if archived_note:
                log.info(archived_note)
            for folder in (self.exp.models, self.exp.states):
                for part in remove_stale_parts(folder):
                    log.info("removed %s, left by an interrupted run", part)
            self._copy_options(argv)
        else:
            self.book.quiet()
        distributed.barrier(self.dist)

    def close(self) -> None:
        self.book.close()

    def _copy_options(self, argv: Optional[List[str]]) -> None:
        source = Path(self.opts.source) if self.opts.source else None
        text = source.read_text() if source and source.is_file() else ""
        head = (f"# Copied at {datetime.datetime.now():%Y-%m-%d %H:%M:%S} from {source}\n"
                f"# Command: {' '.join(argv) if argv is not None else ' '.join(sys.argv)}\n")
        atomic_write(self.exp.root / f"{self.opts.name}.yml", (head + text).encode())

    def _seed(self, resume: Optional[Resume]) -> int:
        if resume is not None:
            seed = int(resume.state["seed"])
            if self.opts.manual_seed is not None and self.opts.manual_seed != seed:
                log.warning("manual_seed %d differs from the resumed run's %d: keeping %d", self.opts.manual_seed,
                            seed, seed)
            return seed
        seed = self.opts.manual_seed if self.opts.manual_seed is not None else random_seed()
        return int(distributed.broadcast(self.dist, seed))

    def _make_loader(self, resume: Optional[Resume], notes: List[str]) -> None:
        o, d = self.opts, self.dist
        for ds in (self.train_set, *self.val_sets):
            ds.seed = self.seed
        start = int(resume.state["iter"]) if resume else 0
        if resume and (resume.state.get("world_size") != d.world_size
                       or resume.state.get("batch_size") != o.train_set.batch_size_per_gpu):
            log.warning("resuming with %d process(es) x batch %d, the state was saved with %s x %s: the data "
                        "order continues, but not exactly as one run would", d.world_size,
                        o.train_set.batch_size_per_gpu, resume.state.get("world_size"),
                        resume.state.get("batch_size"))
        self.loader, self.sampler = train_loader(self.train_set, seed=self.seed, rank=d.rank,
                                                 world_size=d.world_size, start_iter=start,
                                                 pin_memory=self.device.type == "cuda")
        self.start_iter = self.iter = start
        self.last_state = resume.path if resume is not None else None
        if self.pool is not None:
            self.pool.seed = self.seed
        for note in notes:
            log.warning("%s", note)

    def _build_model(self, found: Preflight) -> None:
        t, resume = self.opts.train, found.resume
        torch.manual_seed(self.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        model = build_network(self.cfg)
        if found.pretrained is not None:
            self._apply_pretrained(model, *found.pretrained)
        if resume is not None:
            model.load_state_dict(resume.weights["params"], strict=True)
        model.to(self.device).train()
        self.model = model
        self.ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
        if self.ema is not None and resume is not None:
            ema_weights = resume.weights.get("params_ema")
            if ema_weights is None:
                log.warning("%s has no params_ema: the EMA restarts from params", resume.path)
            else:
                self.ema.module.load_state_dict(ema_weights, strict=True)
        if self.dist.enabled:
            ddp = nn.parallel.DistributedDataParallel
            # The buffers (window masks, position indexes) are derived and equal everywhere: no sync per forward.
            no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters
                       else "broadcast_buffers")
            self.net = ddp(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                           **{no_sync: False})
        else:
            self.net = model
        optim_cls = getattr(torch.optim, t.optim_g.type)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = optim_cls(self.params, **t.optim_g.args)
        self.lr_at = lr_schedule(t)
        self.loss_fn = make_loss(t.pixel_opt)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=True) if t.amp == "fp16" else None
        self.nan_streak = 0
        self.gan: Optional[GanStep] = None
        if found.gan_parts is not None:
            self.gan = GanStep(self.opts, self.dist, found.gan_parts, resume, self.seed, self.cfg.out_chans)
        torch.manual_seed(self.seed + self.dist.rank)  # training randomness (drop path) differs by rank
        if resume is not None:
            s = resume.state
            self.optimizer.load_state_dict(s["optimizers"][0])
            if self.scaler is not None and s.get("scaler"):
                self.scaler.load_state_dict(s["scaler"])
            self.nan_streak = int(s.get("nan_streak", 0))
            self.validator.load_best(s.get("best", {}))
            states = s.get("rng", [])
            if len(states) == self.dist.world_size:
                set_rng_state(states[self.dist.rank])
            log.info("resumed from %s at iteration %d", resume.path, self.start_iter)
        n = sum(p.numel() for p in self.params)
        log.info("network %s %s: %.3fM parameters, %s", self.cfg.name, self.cfg.upsampler or "restoration", n / 1e6,
                 ", ".join(f"{k}={v}" for k, v in self.cfg.to_dict().items()))

    def _apply_pretrained(self, model: SwinIR, state: Dict[str, Tensor], notes: List[str]) -> None:
        p = self.opts.path
        for note in notes:
            log.warning("%s", note)
        missing, unexpected = model.load_state_dict(state, strict=p.strict_load_g)
        if missing or unexpected:
            log.warning("pretrained %s: missing %s; unexpected %s", p.pretrain_network_g, missing or "none",
                        unexpected or "none")
        log.info("loaded pretrained weights %s (%s)", p.pretrain_network_g, p.param_key_g)

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> Result:
        o, t, d = self.opts, self.opts.train, self.dist
        total = t.total_iter
        it = self.start_iter
        self.result.iter = it
        if it >= total:
            log.info("nothing to do: the state is at iteration %d of %d", it, total)
            return self.result
        if d.main and o.logger.use_tb_logger:
            self.book.open_tb(it)
        bs = o.train_set.batch_size_per_gpu
        per_epoch = max(self.sampler.per_rank // bs, 1)
        log.info("training %d iterations from %d: %d process(es) on %s, batch %d per process, %d images, "
                 "%d iterations per epoch, seed %d%s", total - it, it, d.world_size, self.device, bs,
                 len(self.train_set), per_epoch, self.seed, f", AMP {t.amp}" if t.amp else "")
        amp = autocast(self.device, t.amp) if t.amp else None
        batches = iter(self.loader)
        loss_sum, loss_n, skipped = torch.zeros((), device=self.device), 0, 0
        d_sum, d_n = torch.zeros((), device=self.device), 0
        window_start, window_it = time.perf_counter(), it
        # Lines after 1, 10 and 50 iterations too, so a run shows its speed and ETA from the start; by
        # iteration count, never by time, so that every process logs (and all-reduces) together.
        early = {it + n for n in (1, 10, 50)}
        while it < total:
            it += 1
            self.iter = it
            lq, gt = next(batches)
            lq, gt = lq.to(self.device, non_blocking=True), gt.to(self.device, non_blocking=True)
            if self.pool is not None:
                lq, gt = self.pool.swap(lq, gt, it)
            step = self.step(it, lq, gt, amp)
            if step.loss is not None:
                loss_sum += step.loss
                loss_n += 1
            skipped += step.skipped
            if step.d_loss is not None:
                d_sum += step.d_loss
                d_n += 1
            if it % o.logger.print_freq == 0 or it == total or (it in early and it < o.logger.print_freq):
                mean = distributed.all_mean(d, loss_sum / max(loss_n, 1)).item()
                d_mean = distributed.all_mean(d, d_sum / max(d_n, 1)).item() if self.gan is not None else None
                now = time.perf_counter()
                rate = (it - window_it) / max(now - window_start, 1e-9)
                self._log_line(it, total, mean, self.lr_at(it), rate, skipped, d_mean)
                loss_sum.zero_()
                d_sum.zero_()
                loss_n, skipped, d_n = 0, 0, 0
                window_start, window_it = now, it
            if o.val is not None and self.val_sets and it % o.val.val_freq == 0:
                self.validate(it)
            if it % o.logger.save_checkpoint_freq == 0 or it == total:
                self.save(it)
        self.result.iter = it
        log.info("end of training at iteration %d; models in %s", it, self.exp.models)
        return self.result

    def step(self, it: int, lq: Tensor, gt: Tensor, amp=None) -> "Step":
        """Iteration ``it`` on one batch (on the training device): G's forward, loss and optimizer step
        (skipped when the gradients are not finite; every ``net_d_iters`` with a D, after
        ``net_d_init_iters``), EMA, then D's step where there is a D."""
        t = self.opts.train
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(it)
        if self.gan is not None:
            self.gan.freeze()  # G's step sees D frozen, as BasicSR's
        if amp is not None:
            with amp:
                out = self.net(lq)
        else:
            out = self.net(lq)
        out = out.float()
        result = Step()
        if self.gan is None or (it % t.net_d_iters == 0 and it > t.net_d_init_iters):
            loss = self.loss_fn(out, gt)
            if self.gan is not None:
                loss = loss + self.gan.adversarial_terms(out, gt)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if self._step_ok(it):
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                if self.ema is not None:
                    self.ema.update()
                result.loss = loss.detach()
            else:
                result.skipped = 1
        if self.gan is not None:
            result.d_loss = self.gan.step(it, out.detach(), gt)
        return result

    def _step_ok(self, it: int) -> bool:
        """Clip; False (and the step skipped) when the gradients are not finite — NaN/Inf loss included.

        The gradients are all-reduced, so every rank takes the same decision.
        """
        t = self.opts.train
        if t.grad_clip is not None or not hasattr(torch.nn.utils, "get_total_norm"):  # torch < 2.6: clip at inf
            norm = torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip or math.inf, foreach=True)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None], foreach=True)
        if bool(torch.isfinite(norm)):
            self.nan_streak = 0
            return True
        if self.scaler is not None:
            self.scaler.update()  # fp16 overflow: a smaller scale next time, as GradScaler does
        self.optimizer.zero_grad(set_to_none=True)
        self.nan_streak += 1
        log.warning("iteration %d: non-finite loss or gradients (norm %s); step skipped (%d in a row)", it,
                    float(norm), self.nan_streak)
        if self.nan_streak >= t.nan_tolerance:
            raise TrainingError(f"{self.nan_streak} non-finite steps in a row (train.nan_tolerance "
                                f"{t.nan_tolerance}) at iteration {it}: the training diverged; lower the "
                                f"learning rate, set train.grad_clip, or resume from an earlier state")
        return False

    def _log_line(self, it: int, total: int, loss: float, lr: float, rate: float, skipped: int,
                  d_loss: Optional[float] = None) -> None:
        self.result.losses.append((it, loss))
        if self.dist.main:
            epoch = self.sampler.epoch_of(it * self.opts.train_set.batch_size_per_gpu - 1)
            self.book.line(it, total, loss, lr, rate, skipped, epoch, d_loss)

    # ---- validation and checkpoints ------------------------------------------------------

    def validate(self, it: int) -> Dict[str, Dict[str, float]]:
        """PSNR/SSIM of every val set (of the EMA where there is one), on rank 0: :class:`.validate.Validator`."""
        results = self.validator.validate(self.ema.module if self.ema is not None else self.model, it)
        if self.dist.main:
            self.result.metrics = results
        return results

    def save(self, it: int) -> None:
        """models/net_g_<it>.pth and net_g_latest.pth, then training_states/<it>.state (rank 0); with
        queue_size, each rank's pair pool first."""
        rng = distributed.gather(self.dist, rng_state())
        if self.pool is not None:  # every rank's pool is on disk before the state that needs it
            self.exp.write_pool(it, self.dist.rank, self.pool.state_dict())
            distributed.barrier(self.dist)
        if self.dist.main:
            weights = {"params": cpu_state(self.model)}
            if self.ema is not None:
                weights["params_ema"] = cpu_state(self.ema.module)
            weights["config"] = self.cfg.to_dict()
            gan = self.gan
            bs = self.opts.train_set.batch_size_per_gpu
            state = {"iter": it, "epoch": self.sampler.epoch_of(it * bs), "seed": self.seed,
                     "world_size": self.dist.world_size, "batch_size": bs, "samples": it * bs,
                     "optimizers": [self.optimizer.state_dict()] + (
                         [gan.optimizer_d.state_dict()] if gan is not None else []),
                     "schedulers": [{"type": self.opts.train.scheduler.type if self.opts.train.scheduler else None,
                                     "last_epoch": it}],
                     "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                     "nan_streak": self.nan_streak,
                     "best": self.validator.best_state(),
                     "rng": rng}
            self.last_state = self.exp.write_checkpoint(
                it, weights, state, {"params": cpu_state(gan.model_d)} if gan is not None else None)
            log.info("saved models/net_g_%d.pth and training_states/%d.state", it, it)
        distributed.barrier(self.dist)


def train(opts: Options, *, launcher: str = "none", auto_resume: bool = False,
          argv: Optional[List[str]] = None) -> Result:
    """Run the training that ``opts`` describes; returns what it did."""
    d = distributed.setup(launcher, opts.num_gpu)
    trainer = None
    try:
        trainer = Trainer(opts, d, auto_resume=auto_resume, argv=argv)
        return trainer.run()
    except KeyboardInterrupt:
        if trainer is None:
            raise
        raise Interrupted(trainer.iter, trainer.last_state) from None
    finally:
        if trainer is not None:
            trainer.close()
        distributed.cleanup(d)


__all__ = ["Interrupted", "Result", "Trainer", "TrainingError", "format_eta", "train"]
