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
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..checkpoint import ModelLoadError, check_finite, check_state, read_file, unwrap
from ..engine import SettingError, resolve_precision
from ..network.hardware import autocast
from ..images import atomic_write, remove_stale_parts, write_image
from ..protocol.metrics import compute_metrics
from ..protocol.runner import run_official
from ..network import SwinIR, build_network, state_shapes
from .. import distributed
from .data import RestorationDataset
from .experiment import (Experiment, Interrupted, Resume, TrainingError, cpu_state, resume_from, rng_state,
                         set_rng_state, to_bytes)
from .gan import build_discriminator, build_gan_loss, build_perceptual, perceptual_value
from .pool import PairPool
from .sampler import train_loader
from .schedule import EMA, lr_schedule, make_loss
from ..distributed import Dist
from ..options import Options, OptionsError, random_seed

log = logging.getLogger("swinir_app.train")


def format_eta(seconds: float) -> str:
    s = int(max(seconds, 0))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s" if m else f"{s}s"


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

    Setting up checks everything before it writes anything: the options, the data (every header
    read once, the first sample made), ``train.amp`` against the hardware, ``pretrain_network_g``
    against the network, ``lq_cache``, and allocates the pair pool (``queue_size``).
    Only then is the experiment folder prepared (a new run archives an old one), the model, EMA and
    optimizer built, and a resume state applied. :meth:`run` then steps to ``train.total_iter``,
    logging, validating and saving as the options say; a kill at any moment leaves complete files,
    and ``--auto_resume`` continues exactly. :meth:`close` releases the log and TensorBoard.

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
        self.tb = None
        self._log_handlers: List[logging.Handler] = []
        if opts.train.amp:
            try:
                resolve_precision(opts.train.amp, self.device)
            except SettingError as e:  # the engine's advice names its own settings
                raise OptionsError(f"{opts.source}: train.amp {opts.train.amp}: {e.reason}; leave train.amp "
                                   f"empty to train in fp32") from None
        try:  # the network, built on the meta device: a config that cannot be built fails before any write
            state_shapes(self.cfg)
        except (RuntimeError, ValueError) as e:
            raise OptionsError(f"{opts.source}: network_g cannot be built: {str(e).splitlines()[0]}") from None
        resume = self._find_resume(auto_resume)
        if resume is not None:  # a network_g changed since: one line now, not load_state_dict's after the folder
            try:
                check_state(resume.weights["params"], self.cfg, str(Experiment(resume.path.parent.parent).weights(
                    resume.state["iter"])), "network_g")
            except ModelLoadError as e:
                raise TrainingError(f"cannot resume from {resume.path}: {e}") from None
        checked = self._check_data()  # before anything is written or archived
        self._pretrained = self._read_pretrained() if resume is None and opts.path.pretrain_network_g else None
        # GAN losses load VGG weights and pretrain_network_d is read: both fail, in one line, before any write.
        self._gan_parts = self._read_gan_parts(resume) if opts.network_d is not None else None
        self.pool = self._allocate_pool(resume)
        self._prepare_folder(resume is not None, argv)
        if dist.main:
            import yaml

            dump = yaml.safe_dump(opts.to_dict(), sort_keys=False, default_flow_style=None).rstrip()
            log.debug("options (%s):\n%s", opts.source, dump)
            log.info("options: %s, copied to %s; every value, defaults included, is in the log file", opts.source,
                     self.exp.root / f"{opts.name}.yml")
        log.info(checked)
        for note in (note for ds in (self.train_set, *self.val_sets) for note in ds.warnings):
            log.warning("%s", note)
        self.seed = self._seed(resume)
        self._make_loader(resume)
        self._build_model(resume)

    # ---- setup ---------------------------------------------------------------------------

    def _find_resume(self, auto: bool) -> Optional[Resume]:
        explicit = self.opts.path.resume_state
        path = None
        if self.dist.main:
            if explicit:
                path = str(explicit)
            elif auto:
                found = self.exp.latest_resume()
                path = str(found.path) if found else None
        path = distributed.broadcast(self.dist, path)
        return resume_from(Path(path)) if path else None

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
            self._setup_logging()
            if archived_note:
                log.info(archived_note)
            for folder in (self.exp.models, self.exp.states):
                for part in remove_stale_parts(folder):
                    log.info("removed %s, left by an interrupted run", part)
            self._copy_options(argv)
        else:
            log.setLevel(logging.ERROR)  # as BasicSR: the other ranks only report errors
        distributed.barrier(self.dist)

    def _setup_logging(self) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        handlers = [logging.FileHandler(self.exp.root / f"train_{self.opts.name}_{stamp}.log"),
                    logging.StreamHandler(sys.stdout)]
        handlers[1].setLevel(logging.INFO)  # the console: progress; the log file also has the options dump
        for h in handlers:
            h.setFormatter(fmt)
            log.addHandler(h)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        self._log_handlers = handlers

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        for h in self._log_handlers:
            log.removeHandler(h)
            h.close()
        self._log_handlers = []

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

    def _check_data(self) -> str:
        """The datasets, every header read once on rank 0: a bad file is an error now, not in an hour."""
        o, d = self.opts, self.dist
        common = dict(scale=o.scale, in_chans=self.cfg.in_chans)
        self.train_set = RestorationDataset(o.train_set, cache_dir=self._cache(o.train_set), key="train", **common)
        self.val_sets = [RestorationDataset(ds, cache_dir=None, key=k, **common)
                         for k, ds in o.datasets.items() if k != "train"]
        for k, ds in o.datasets.items():
            self._check_cache(k, ds)
        summary = ""
        if d.main:
            t = time.perf_counter()
            n = self.train_set.check(o.train_set.gt_size)
            for v in self.val_sets:
                v.check()
            summary = (f"checked {n} training images" + "".join(f", {len(v)} in {v.opts.name}" for v in self.val_sets)
                       + f" in {time.perf_counter() - t:.1f}s")
        distributed.barrier(d)
        # The first sample, read and degraded now: a failure is one line before any write, and its
        # shapes size the pair pool (queue_size).
        self._sample_shapes = self.train_set.probe()
        return summary

    def _check_cache(self, key: str, ds) -> None:
        """A given lq_cache must be a folder (or one that can be made) this process can write: the bicubic
        LR is first written there at the first step."""
        if not ds.lq_cache:
            return
        cache = Path(ds.lq_cache)
        existing = next(p for p in (cache, *cache.parents) if p.exists() or p == p.parent)
        where = f"{self.opts.source}: datasets.{key}.lq_cache: {ds.lq_cache}"
        if not existing.is_dir():
            what = "is a file" if existing == cache else f"is under {existing}, a file"
            raise OptionsError(f"{where} {what}, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OptionsError(f"{where} cannot be made or written: {existing} is not writable")

    def _allocate_pool(self, resume: Optional[Resume]) -> Optional[PairPool]:
        """The pair pool (queue_size) of this process, allocated or restored before the experiment folder is
        touched. Sets ``_pool_note``, a warning for the log."""
        o = self.opts
        self._pool_note = None
        if not o.queue_size:
            return None
        pool = PairPool(o.queue_size, 0, self.dist.rank)  # the seed is set with the run's
        if resume is not None:
            path = Experiment(resume.path.parent.parent).pool(int(resume.state["iter"]), self.dist.rank)
            try:
                pool.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), self.device)
            except FileNotFoundError:
                self._pool_note = (f"{path} is missing (the state was saved without queue_size): the pair pool "
                                   f"starts empty")
            except ValueError as e:
                raise TrainingError(f"{path}: {e}") from None
            saved = None if pool.lq is None else (tuple(pool.lq.shape[1:]), tuple(pool.gt.shape[1:]))
            if saved is not None and saved != self._sample_shapes:
                raise TrainingError(f"{path}: the saved pool holds pairs of {saved[0]} + {saved[1]}, this run "
                                    f"makes {self._sample_shapes[0]} + {self._sample_shapes[1]}")
        if pool.lq is None:
            try:
                pool.allocate(*self._sample_shapes, self.device)
            except ValueError as e:
                raise OptionsError(f"{o.source}: queue_size: {e}; lower queue_size") from None
        return pool

    def _make_loader(self, resume: Optional[Resume]) -> None:
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
        if self._pool_note:
            log.warning("%s", self._pool_note)

    def _cache(self, ds) -> Path:
        return Path(ds.lq_cache) if ds.lq_cache else self.exp.cache

    def _build_model(self, resume: Optional[Resume]) -> None:
        t = self.opts.train
        torch.manual_seed(self.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        model = build_network(self.cfg)
        if self._pretrained is not None:
            self._apply_pretrained(model, *self._pretrained)
            self._pretrained = None
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
        self.best: Dict[str, Dict[str, Tuple[float, int]]] = {}
        self.net_d = None
        if self._gan_parts is not None:
            self._build_discriminator(resume)
        torch.manual_seed(self.seed + self.dist.rank)  # training randomness (drop path) differs by rank
        if resume is not None:
            s = resume.state
            self.optimizer.load_state_dict(s["optimizers"][0])
            if self.scaler is not None and s.get("scaler"):
                self.scaler.load_state_dict(s["scaler"])
            self.nan_streak = int(s.get("nan_streak", 0))
            self.best = {k: {m: (float(v[0]), int(v[1])) for m, v in d.items()} for k, d in s.get("best", {}).items()}
            states = s.get("rng", [])
            if len(states) == self.dist.world_size:
                set_rng_state(states[self.dist.rank])
            log.info("resumed from %s at iteration %d", resume.path, self.start_iter)
        n = sum(p.numel() for p in self.params)
        log.info("network %s %s: %.3fM parameters, %s", self.cfg.name, self.cfg.upsampler or "restoration", n / 1e6,
                 ", ".join(f"{k}={v}" for k, v in self.cfg.to_dict().items()))

    def _read_gan_parts(self, resume: Optional[Resume]):
        """(discriminator weights to start from or None, GAN loss, perceptual loss or None), checked now."""
        o = self.opts
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

    def _build_discriminator(self, resume: Optional[Resume]) -> None:
        o, t = self.opts, self.opts.train
        start, gan, perceptual = self._gan_parts
        torch.manual_seed(self.seed + 1)  # D's initial weights: the same on every rank
        d = build_discriminator(o.network_d, self.cfg.out_chans)
        state = resume.weights_d["params"] if resume is not None else start
        if state is not None:
            try:
                d.load_state_dict(state, strict=o.path.strict_load_d or resume is not None)
            except RuntimeError as e:
                first = str(e).splitlines()[0]
                raise TrainingError(f"the discriminator weights do not fit network_d ({o.network_d.type}): "
                                    f"{first}") from None
        d.to(self.device).train()
        self.model_d = d
        if self.dist.enabled:
            self.net_d = nn.parallel.DistributedDataParallel(
                d, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        else:
            self.net_d = d
        self.params_d = [p for p in d.parameters() if p.requires_grad]
        self.optimizer_d = getattr(torch.optim, t.optim_d.type)(self.params_d, **t.optim_d.args)
        self.lr_d_at = lr_schedule(t, base=float(t.optim_d.args["lr"]))
        self.gan_loss = gan.to(self.device)
        self.perceptual_loss = perceptual.to(self.device) if perceptual is not None else None
        if resume is not None:
            self.optimizer_d.load_state_dict(resume.state["optimizers"][1])
        self._gan_parts = None
        log.info("discriminator %s: %.3fM parameters; losses: %s", o.network_d.type,
                 sum(p.numel() for p in self.params_d) / 1e6,
                 ", ".join(["pixel", *(["perceptual"] if perceptual is not None else []),
                            f"gan ({t.gan_opt.args.get('gan_type', 'vanilla')})"]))

    def _read_pretrained(self) -> Tuple[Dict[str, Tensor], List[str]]:
        """path.pretrain_network_g read and checked against network_g before anything is written:
        anything load_model takes; param_key_g and strict_load_g as in BasicSR. Returns the state
        and the warnings to log once logging is set up."""
        if not self.dist.main:
            distributed.barrier(self.dist)  # rank 0 fetches a zoo download first, once
        try:
            return self._read_pretrained_file()
        finally:
            if self.dist.main:
                distributed.barrier(self.dist)

    def _read_pretrained_file(self) -> Tuple[Dict[str, Tensor], List[str]]:
        from ..zoo import latest_weights, resolve

        p = self.opts.path
        spec = p.pretrain_network_g
        path = Path(spec).expanduser()
        notes: List[str] = []
        try:
            if path.is_dir():
                path = latest_weights(path)
            if path.is_file() and path.suffix != ".safetensors":
                raw, _ = read_file(path)
                if isinstance(raw, dict) and isinstance(raw.get(p.param_key_g), dict):
                    raw = raw[p.param_key_g]
                elif isinstance(raw, dict) and any(isinstance(raw.get(k), dict) for k in ("params", "params_ema")):
                    notes.append(f"{path} has no {p.param_key_g}: loading what it has")
                state, _ = unwrap(raw, str(path))
                check_finite(state, str(path))
            else:
                state = resolve(spec).state_dict
        except ModelLoadError as e:
            raise ModelLoadError(f"path.pretrain_network_g: {e}") from None
        own = state_shapes(self.cfg)
        if not p.strict_load_g:  # BasicSR: keys of another shape are reported and skipped
            skipped = [k for k, v in state.items() if k in own and own[k] != tuple(v.shape)]
            notes += [f"pretrained {k} has shape {tuple(state[k].shape)}, the network {own[k]}: not loaded"
                      for k in skipped]
            state = {k: v for k, v in state.items() if k not in skipped}
        else:
            try:
                check_state(state, self.cfg, f"path.pretrain_network_g {spec}", "network_g")
            except ModelLoadError as e:
                raise ModelLoadError(f"{e} (strict_load_g: false loads what fits)") from None
        return state, notes

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
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.exp.tb), purge_step=it + 1 if it else None)
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
                d_mean = distributed.all_mean(d, d_sum / max(d_n, 1)).item() if self.net_d is not None else None
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
        if self.net_d is not None:
            for p in self.params_d:  # G's step sees D frozen, as BasicSR's
                p.requires_grad_(False)
        if amp is not None:
            with amp:
                out = self.net(lq)
        else:
            out = self.net(lq)
        out = out.float()
        result = Step()
        if self.net_d is None or (it % t.net_d_iters == 0 and it > t.net_d_init_iters):
            loss = self.loss_fn(out, gt)
            if self.net_d is not None:
                loss = loss + self._adversarial_terms(out, gt)
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
        if self.net_d is not None:
            result.d_loss = self._discriminator_step(it, out.detach(), gt)
        return result

    def _adversarial_terms(self, out: Tensor, gt: Tensor) -> Tensor:
        """G's perceptual and GAN terms. D runs unwrapped here: its weights are frozen for this step, and
        DDP would wait for D gradients that never come."""
        terms = self.gan_loss(self.model_d(out), True, is_disc=False)
        if self.perceptual_loss is not None:
            value = perceptual_value(self.perceptual_loss, out, gt)
            if value is not None:
                terms = terms + value
        return terms

    def _discriminator_step(self, it: int, fake: Tensor, gt: Tensor) -> Tensor:
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
        if not self.dist.main:
            return
        epoch = self.sampler.epoch_of(it * self.opts.train_set.batch_size_per_gpu - 1)
        extra = f", {skipped} skipped" if skipped else ""
        d_text = f" l_d {d_loss:.4g}" if d_loss is not None else ""
        log.info("[iter %d/%d] loss %.4g%s lr %.1e %.2f it/s eta %s (epoch %d%s)", it, total, loss, d_text, lr,
                 rate, format_eta((total - it) / max(rate, 1e-9)), epoch, extra)
        if self.tb is not None:
            self.tb.add_scalar("losses/l_g" if d_loss is not None else "losses/l_pix", loss, it)
            if d_loss is not None:
                self.tb.add_scalar("losses/l_d", d_loss, it)
            self.tb.add_scalar("lr", lr, it)
            self.tb.flush()

    # ---- validation ----------------------------------------------------------------------

    @torch.no_grad()
    def validate(self, it: int) -> Dict[str, Dict[str, float]]:
        """PSNR/SSIM of every val set, on rank 0, with the evaluation's padding and metric code."""
        results: Dict[str, Dict[str, float]] = {}
        if self.dist.main:
            net = self.ema.module if self.ema is not None else self.model
            was_training = net.training
            net.eval()
            try:
                for ds in self.val_sets:
                    results[ds.opts.name] = self._validate_set(net, ds, it)
            finally:
                net.train(was_training)
            self.result.metrics = results
        distributed.barrier(self.dist)
        return results

    def _validate_set(self, net: nn.Module, ds: RestorationDataset, it: int) -> Dict[str, float]:
        o, s = self.opts, self.cfg.upscale
        metrics = o.val.metrics or {}
        sums: Dict[str, float] = {k: 0.0 for k in metrics}
        start = time.perf_counter()
        for i in range(len(ds)):
            gt, lq = ds.pair(i)
            out = run_official(lambda x: net(x.to(self.device)), lq, s, self.cfg.window_size)
            for key, m in metrics.items():
                scores = compute_metrics(out, gt, crop_border=o.crop_border(m), metrics=(m.metric,),
                                         y_channel=m.test_y_channel)
                y_key = f"{m.metric}_y"
                sums[key] += scores[y_key] if m.test_y_channel and y_key in scores else scores[m.metric]
            if o.val.save_img:
                name = ds.name(i)
                folder = Path(o.path.visualization) if o.path.visualization else self.exp.root / "visualization"
                suffix = f"_{o.val.suffix}" if o.val.suffix else f"_{it}"
                write_image(folder / name / f"{name}{suffix}.png", out)
        means = {k: v / len(ds) for k, v in sums.items()}
        best = self.best.setdefault(ds.opts.name, {})
        parts = []
        for key, value in means.items():
            higher = metrics[key].better == "higher"
            old = best.get(key)
            if old is None or (value > old[0] if higher else value < old[0]):
                best[key] = (value, it)
            parts.append(f"{key} {value:.4f} (best {best[key][0]:.4f} @ {best[key][1]})")
            if self.tb is not None:
                self.tb.add_scalar(f"metrics/{ds.opts.name}/{key}", value, it)
        log.info("validation %s at iteration %d (%d images, %.1fs): %s", ds.opts.name, it, len(ds),
                 time.perf_counter() - start, ", ".join(parts) or "no metrics")
        return means

    # ---- checkpoints ---------------------------------------------------------------------

    def save(self, it: int) -> None:
        """models/net_g_<it>.pth and net_g_latest.pth, then training_states/<it>.state (rank 0); with
        queue_size, each rank's pair pool first."""
        rng = distributed.gather(self.dist, rng_state())
        if self.pool is not None:  # every rank's pool is on disk before the state that needs it
            atomic_write(self.exp.pool(it, self.dist.rank), to_bytes(self.pool.state_dict()))
            self.exp.prune_pools(self.dist.rank, keep=2)
            distributed.barrier(self.dist)
        if self.dist.main:
            weights = {"params": cpu_state(self.model)}
            if self.ema is not None:
                weights["params_ema"] = cpu_state(self.ema.module)
            weights["config"] = self.cfg.to_dict()
            data = to_bytes(weights)
            atomic_write(self.exp.weights(it), data)
            atomic_write(self.exp.models / "net_g_latest.pth", data)
            if self.net_d is not None:  # before the state, which names it: a resume finds both or neither
                atomic_write(self.exp.weights_d(it), to_bytes({"params": cpu_state(self.model_d)}))
            bs = self.opts.train_set.batch_size_per_gpu
            state = {"iter": it, "epoch": self.sampler.epoch_of(it * bs), "seed": self.seed,
                     "world_size": self.dist.world_size, "batch_size": bs, "samples": it * bs,
                     "optimizers": [self.optimizer.state_dict()] + (
                         [self.optimizer_d.state_dict()] if self.net_d is not None else []),
                     "schedulers": [{"type": self.opts.train.scheduler.type if self.opts.train.scheduler else None,
                                     "last_epoch": it}],
                     "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                     "nan_streak": self.nan_streak,
                     "best": {k: {m: list(v) for m, v in d.items()} for k, d in self.best.items()},
                     "rng": rng}
            atomic_write(self.exp.state(it), to_bytes(state))
            self.last_state = self.exp.state(it)
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
