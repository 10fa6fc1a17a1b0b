"""Timing and memory: synchronised clocks, interleaved rounds and their ratios, peak memory (CUDA's allocator or the
process's RSS high-water mark), a matmul ceiling and FLOP counts."""
from __future__ import annotations

import statistics
import time
from typing import Callable, List, Sequence

import torch

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> int:
    """Reset the peak-memory counter; returns the current baseline in bytes."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:  # Linux: writing 5 to clear_refs resets VmHWM (peak RSS)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss("VmRSS")


def peak_mib_since(device: torch.device, baseline: int) -> float:
    if device.type == "cuda":
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2 ** 20
    return (_rss("VmHWM") - baseline) / 2 ** 20


def _rss(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def rounds(fns: Sequence[Callable], device: torch.device, repeats: int, warmup: int) -> List[List[float]]:
    """Seconds of each function in each round, alternated A B C A B C after warm-up."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t.append(timed(fn, device))
    return times


def interleaved(fns: Sequence[Callable], device: torch.device, repeats: int, warmup: int) -> List[float]:
    """Median seconds of each function, alternated A B C A B C after warm-up."""
    return [statistics.median(t) for t in rounds(fns, device, repeats, warmup)]


def ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """The median over rounds of slow / fast. The two times of a round were taken seconds apart, so a
    machine's drift (up to 2x within minutes on shared CPUs) cancels in each ratio, and the median of
    the ratios is steadier than the ratio of the medians."""
    return statistics.median(a / b for a, b in zip(slow, fast))


def peak_mib(fn: Callable, device: torch.device) -> float:
    base = reset_peak(device)
    fn()
    return peak_mib_since(device, base)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    (secs,) = interleaved([lambda: a @ a], device, repeats=5, warmup=2)
    return 2 * n ** 3 / secs / 1e9


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()
