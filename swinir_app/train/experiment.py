"""An experiment folder in BasicSR's layout, its resume states, and the process state they hold.

    experiments/<name>/models/net_g_<iter>.pth, net_g_latest.pth   {params, params_ema, config}
    experiments/<name>/training_states/<iter>.state                iteration, optimizer, scaler, RNG states
    experiments/<name>/training_states/<iter>.pool_rank<r>         with queue_size: each process's pair pool

:class:`Experiment` is the one place that knows the layout; resuming reads a state and the weights of
its iteration through it.
"""
from __future__ import annotations

import io
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from ..checkpoint import ModelLoadError, read_file
from ..files import atomic_write

log = logging.getLogger("swinir_app.train")
STATE_SUFFIX = ".state"


class TrainingError(UserError):
    """Training cannot go on (diverged, unusable resume state); one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training: where it stopped, and the state a resume continues from."""

    def __init__(self, iteration: int, last_state: Optional[Path]):
        self.iteration, self.last_state = iteration, last_state
        if last_state is None:
            resume = "there is no checkpoint yet, so a new run starts from the beginning"
        else:
            resume = f"the last checkpoint is {last_state.stem} ({last_state}); resume with --auto_resume"
        super().__init__(f"interrupted at iteration {iteration}; {resume}")


@dataclass
class Resume:
    """A training state, the file it came from, and the weights of its iteration."""

    path: Path
    state: Dict[str, Any]
    weights: Dict[str, Any]
    weights_d: Optional[Dict[str, Any]] = None  # GAN training: the discriminator of that iteration


@dataclass(frozen=True)
class Experiment:
    """``experiments/<name>``: where a run writes, and where a resume is found."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def states(self) -> Path:
        return self.root / "training_states"

    @property
    def tb(self) -> Path:
        return self.root / "tb_logger"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def weights(self, it: int) -> Path:
        return self.models / f"net_g_{it}.pth"

    def weights_d(self, it: int) -> Path:
        return self.models / f"net_d_{it}.pth"

    def state(self, it: int) -> Path:
        return self.states / f"{it}{STATE_SUFFIX}"

    def pool(self, it: int, rank: int) -> Path:
        """Rank ``rank``'s training-pair pool (``queue_size``) at iteration ``it``, written before the state."""
        return self.states / f"{it}.pool_rank{rank}"

    def prune_pools(self, rank: int, keep: int) -> None:
        """Remove rank ``rank``'s pools but the newest ``keep``: each can hold hundreds of MB, and only the
        states a resume would pick (the latest, or the one before if it is damaged) need theirs."""
        pools = sorted(self.states.glob(f"*.pool_rank{rank}"), key=lambda p: int(p.name.split(".")[0]))
        for old in pools[:-keep]:
            old.unlink(missing_ok=True)

    def write_pool(self, it: int, rank: int, pool_state: Dict[str, Any]) -> None:
        """The pair pool of process ``rank`` at iteration ``it``; the two latest are kept."""
        atomic_write(self.pool(it, rank), to_bytes(pool_state))
        self.prune_pools(rank, keep=2)

    def write_checkpoint(self, it: int, weights: Dict[str, Any], state: Dict[str, Any],
                         weights_d: Optional[Dict[str, Any]] = None) -> Path:
        """models/net_g_<it>.pth and net_g_latest.pth, net_d_<it>.pth with a D (before the state, which names
        it: a resume finds both or neither), then training_states/<it>.state; each atomically. Returns the
        state's path."""
        data = to_bytes(weights)
        atomic_write(self.weights(it), data)
        atomic_write(self.models / "net_g_latest.pth", data)
        if weights_d is not None:
            atomic_write(self.weights_d(it), to_bytes(weights_d))
        atomic_write(self.state(it), to_bytes(state))
        return self.state(it)

    def load_resume(self, path: Path) -> Resume:
        """The state at ``path`` and the weights of its iteration. Raises :class:`TrainingError`."""
        if not Path(path).is_file():  # a FIFO (path.resume_state) would block torch.load forever
            reason = "not a regular file" if Path(path).exists() else "no such file"
            raise TrainingError(f"cannot read training state {path}: {reason}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - damaged files raise many kinds
            raise TrainingError(f"cannot read training state {path}: {type(e).__name__}: {e}") from None
        if not isinstance(state, dict) or "iter" not in state:
            raise TrainingError(f"{path} is not a training state (no 'iter')")
        weights_path = self.weights(state["iter"])
        try:
            weights, _ = read_file(weights_path)
        except ModelLoadError as e:
            raise TrainingError(f"the weights of {path} cannot be read: {e}") from None
        if not isinstance(weights, dict) or "params" not in weights:
            raise TrainingError(f"{weights_path} has no 'params'")
        weights_d = None
        if len(state.get("optimizers", ())) > 1:  # a GAN run: its discriminator was saved beside G
            try:
                weights_d, _ = read_file(self.weights_d(state["iter"]))
            except ModelLoadError as e:
                raise TrainingError(f"the discriminator of {path} cannot be read: {e}") from None
            if not isinstance(weights_d, dict) or "params" not in weights_d:
                raise TrainingError(f"{self.weights_d(state['iter'])} has no 'params'")
        return Resume(Path(path), state, weights, weights_d)

    def latest_resume(self) -> Optional[Resume]:
        """The highest-numbered state that loads, with its weights; None if there is none."""
        found = sorted(((int(p.stem), p) for p in self.states.glob(f"*{STATE_SUFFIX}") if p.stem.isdigit()),
                       reverse=True) if self.states.is_dir() else []
        for _, path in found:
            try:
                return self.load_resume(path)
            except TrainingError as e:
                log.warning("skipping %s", e)
        return None


def resume_from(path: Path) -> Resume:
    """The state file at ``path`` (``<experiment>/training_states/<iter>.state``), with its weights."""
    return Experiment(Path(path).parent.parent).load_resume(path)


# ---- the state of the process ---------------------------------------------------------------------


def rng_state() -> Dict[str, Any]:
    """Every RNG stream of this process, as plain data and tensors (weights-only loadable)."""
    np_state = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_py, np_state[2:])],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


def _py(x):
    return x.item() if hasattr(x, "item") else x


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def cpu_state(module: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
