"""Every check a run makes before it writes anything, in one function: :func:`preflight`.

The options against the hardware (``train.amp``) and the network, the resume state against
``network_g``, the data (every header read once on rank 0, the first sample made), ``lq_cache``,
``pretrain_network_g`` and the GAN's parts (its VGG weights, ``pretrain_network_d``), and the pair pool
(``queue_size``), allocated or restored. It returns what it found, a :class:`Preflight`; nothing of the
experiment folder is touched until it has returned, so "no write before every check" holds by
construction: the trainer prepares the folder from what it gets back.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .. import distributed
from ..checkpoint import ModelLoadError, check_finite, check_state, read_file, unwrap
from ..distributed import Dist
from ..errors import SettingError
from ..precision import resolve_precision
from ..network import state_shapes
from ..options import Options, OptionsError
from .data import RestorationDataset
from .experiment import Experiment, Resume, TrainingError, resume_from
from .gan import GanParts, read_gan_parts
from .pool import PairPool

Pretrained = Tuple[Dict[str, Tensor], List[str]]  # (state, warnings to log once logging is set up)


@dataclass
class Preflight:
    """What the checks found: the resume state (or None), the datasets, a summary line of the data check,
    the pretrained G weights, the GAN's parts, and this process's pair pool (with a note for the log)."""

    resume: Optional[Resume]
    train_set: RestorationDataset
    val_sets: List[RestorationDataset]
    summary: str
    sample_shapes: Tuple[tuple, tuple]
    pretrained: Optional[Pretrained] = None
    gan_parts: Optional[GanParts] = None
    pool: Optional[PairPool] = None
    notes: List[str] = field(default_factory=list)  # warnings for the log, once it is set up


def preflight(opts: Options, dist: Dist, exp: Experiment, *, auto_resume: bool = False) -> Preflight:
    """Every check, in order, before anything is written or archived; returns what they found.

    Raises:
        OptionsError, DataError, ModelLoadError, TrainingError: one line, and nothing written.
    """
    cfg = opts.network_g.config
    if opts.train.amp:
        try:
            resolve_precision(opts.train.amp, dist.device)
        except SettingError as e:  # the engine's advice names its own settings
            raise OptionsError(f"{opts.source}: train.amp {opts.train.amp}: {e.reason}; leave train.amp "
                               f"empty to train in fp32") from None
    try:  # the network, built on the meta device: a config that cannot be built fails before any write
        state_shapes(cfg)
    except (RuntimeError, ValueError) as e:
        raise OptionsError(f"{opts.source}: network_g cannot be built: {str(e).splitlines()[0]}") from None
    resume = find_resume(opts, dist, exp, auto_resume)
    if resume is not None:  # a network_g changed since: one line now, not load_state_dict's after the folder
        try:
            check_state(resume.weights["params"], cfg, str(Experiment(resume.path.parent.parent).weights(
                resume.state["iter"])), "network_g")
        except ModelLoadError as e:
            raise TrainingError(f"cannot resume from {resume.path}: {e}") from None
    train_set, val_sets, summary, shapes = check_data(opts, dist, exp)
    found = Preflight(resume, train_set, val_sets, summary, shapes)
    if resume is None and opts.path.pretrain_network_g:
        found.pretrained = read_pretrained(opts, dist)
    # GAN losses load VGG weights and pretrain_network_d is read: both fail, in one line, before any write.
    if opts.network_d is not None:
        found.gan_parts = read_gan_parts(opts, resume)
    found.pool = allocate_pool(opts, dist, resume, shapes, found.notes)
    return found


def find_resume(opts: Options, dist: Dist, exp: Experiment, auto: bool) -> Optional[Resume]:
    """``path.resume_state``, else with ``auto`` the latest state that loads (rank 0 decides for all)."""
    explicit = opts.path.resume_state
    path = None
    if dist.main:
        if explicit:
            path = str(explicit)
        elif auto:
            found = exp.latest_resume()
            path = str(found.path) if found else None
    path = distributed.broadcast(dist, path)
    return resume_from(Path(path)) if path else None


def check_data(opts: Options, dist: Dist, exp: Experiment):
    """The datasets, every header read once on rank 0: a bad file is an error now, not in an hour.
    Returns (train set, val sets, a summary line, the first sample's (lq, gt) shapes)."""
    o, d = opts, dist
    common = dict(scale=o.scale, in_chans=o.network_g.config.in_chans)
    cache = Path(o.train_set.lq_cache) if o.train_set.lq_cache else exp.cache
    train_set = RestorationDataset(o.train_set, cache_dir=cache, key="train", **common)
    val_sets = [RestorationDataset(ds, cache_dir=None, key=k, **common)
                for k, ds in o.datasets.items() if k != "train"]
    for k, ds in o.datasets.items():
        check_cache(o, k, ds)
    summary = ""
    if d.main:
        t = time.perf_counter()
        n = train_set.check(o.train_set.gt_size)
        for v in val_sets:
            v.check()
        summary = (f"checked {n} training images" + "".join(f", {len(v)} in {v.opts.name}" for v in val_sets)
                   + f" in {time.perf_counter() - t:.1f}s")
    distributed.barrier(d)
    # The first sample, read and degraded now: a failure is one line before any write, and its
    # shapes size the pair pool (queue_size).
    return train_set, val_sets, summary, train_set.probe()


def check_cache(opts: Options, key: str, ds) -> None:
    """A given lq_cache must be a folder (or one that can be made) this process can write: the bicubic
    LR is first written there at the first step."""
    if not ds.lq_cache:
        return
    cache = Path(ds.lq_cache)
    existing = next(p for p in (cache, *cache.parents) if p.exists() or p == p.parent)
    where = f"{opts.source}: datasets.{key}.lq_cache: {ds.lq_cache}"
    if not existing.is_dir():
        what = "is a file" if existing == cache else f"is under {existing}, a file"
        raise OptionsError(f"{where} {what}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionsError(f"{where} cannot be made or written: {existing} is not writable")


def allocate_pool(opts: Options, dist: Dist, resume: Optional[Resume], shapes, notes: List[str]
                  ) -> Optional[PairPool]:
    """The pair pool (queue_size) of this process, allocated or restored before the experiment folder is
    touched; a warning for the log goes to ``notes``."""
    o, device = opts, dist.device
    if not o.queue_size:
        return None
    pool = PairPool(o.queue_size, 0, dist.rank)  # the seed is set with the run's
    if resume is not None:
        path = Experiment(resume.path.parent.parent).pool(int(resume.state["iter"]), dist.rank)
        try:
            pool.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), device)
        except FileNotFoundError:
            notes.append(f"{path} is missing (the state was saved without queue_size): the pair pool "
                         f"starts empty")
        except ValueError as e:
            raise TrainingError(f"{path}: {e}") from None
        saved = None if pool.lq is None else (tuple(pool.lq.shape[1:]), tuple(pool.gt.shape[1:]))
        if saved is not None and saved != shapes:
            raise TrainingError(f"{path}: the saved pool holds pairs of {saved[0]} + {saved[1]}, this run "
                                f"makes {shapes[0]} + {shapes[1]}")
    if pool.lq is None:
        try:
            pool.allocate(*shapes, device)
        except ValueError as e:
            raise OptionsError(f"{o.source}: queue_size: {e}; lower queue_size") from None
    return pool


def read_pretrained(opts: Options, dist: Dist) -> Pretrained:
    """path.pretrain_network_g read and checked against network_g before anything is written:
    anything load_model takes; param_key_g and strict_load_g as in BasicSR. Returns the state
    and the warnings to log once logging is set up."""
    if not dist.main:
        distributed.barrier(dist)  # rank 0 fetches a zoo download first, once
    try:
        return _read_pretrained_file(opts)
    finally:
        if dist.main:
            distributed.barrier(dist)


def _read_pretrained_file(opts: Options) -> Pretrained:
    from ..zoo import latest_weights, resolve

    p, cfg = opts.path, opts.network_g.config
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
    own = state_shapes(cfg)
    if not p.strict_load_g:  # BasicSR: keys of another shape are reported and skipped
        skipped = [k for k, v in state.items() if k in own and own[k] != tuple(v.shape)]
        notes += [f"pretrained {k} has shape {tuple(state[k].shape)}, the network {own[k]}: not loaded"
                  for k in skipped]
        state = {k: v for k, v in state.items() if k not in skipped}
    else:
        try:
            check_state(state, cfg, f"path.pretrain_network_g {spec}", "network_g")
        except ModelLoadError as e:
            raise ModelLoadError(f"{e} (strict_load_g: false loads what fits)") from None
    return state, notes


__all__ = ["Pretrained", "Preflight", "allocate_pool", "check_cache", "check_data", "find_resume", "preflight",
           "read_pretrained"]
