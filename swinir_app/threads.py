"""CPU threads: how many this process may use, checking a requested count, and applying it.

PyTorch's intra-op pool (``torch.set_num_threads``, process-wide) and ONNX Runtime's sessions
(``intra_op_num_threads``, see :class:`~swinir_app.onnx_runtime.OnnxModel`) take the same number. The
default is the cores this process may use (``os.sched_getaffinity``), never more than PyTorch already has
(``OMP_NUM_THREADS``, torchrun's one thread per process, a caller's ``torch.set_num_threads``). On a machine
already busy with other work, one thread is faster than two: see ``docs/performance.md#threads``.
"""
from __future__ import annotations

import os
from typing import Optional

from .errors import SettingError

MAX_FACTOR = 4  # more threads than 4x the allowed cores is a typo, not a setting


def allowed_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: object) -> int:
    """``threads`` as a count, or :class:`SettingError` (``--threads 0: must be ...``) if it is not 1 to 4x the
    allowed cores."""
    most = MAX_FACTOR * allowed_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most:
        raise SettingError("threads", threads, f"must be a whole number from 1 to {most} "
                                               f"({MAX_FACTOR}x the {allowed_cores()} cores this process may use)")
    return threads


def default_threads() -> int:
    """The count a run takes when none is asked for: the allowed cores, or PyTorch's current count if lower."""
    import torch
    return max(1, min(allowed_cores(), torch.get_num_threads()))


def resolve_threads(threads: Optional[int] = None) -> int:
    """``threads`` checked, or :func:`default_threads` for None."""
    return default_threads() if threads is None else check_threads(threads)


def apply_threads(threads: Optional[int] = None) -> int:
    """Set PyTorch's intra-op threads to ``threads`` (None: :func:`default_threads`); returns the count."""
    import torch
    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def load_average() -> Optional[float]:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


SLOW_RUN = 10.0  # seconds: a run shorter than this gets no hint


def busy_hint(threads: int, load: Optional[float] = None) -> Optional[str]:
    """A one-line hint when other work already filled the cores (``load``, the 1-minute load average taken
    before the run, default now, at least the allowed cores) and the run used more than one thread: --threads 1
    is then several times faster (measured in docs/performance.md#threads). None otherwise."""
    load = load_average() if load is None else load
    cores = allowed_cores()
    if threads <= 1 or load is None or load < cores:
        return None
    return (f"note: this machine is busy (load average {load:.1f} on {cores} cores); --threads 1 is often faster "
            f"than {threads} threads on a busy machine")
