"""``--busy``: the busy-machine thread policy, our forward timed quiet and beside a CPU-bound process."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import List, Sequence

import torch

from ..network import SwinIRConfig, build_network
from ..network.hardware import autocast
from ..threads import load_average
from .clock import ratio, timed
from .report import BusyRow

# The competitor of --busy: fp32 matmuls in numpy (its own BLAS threads) for as long as it runs, paused and resumed
# by the benchmark with SIGSTOP and SIGCONT; it says "ready" once its first matmul has run.
_SPIN = """import sys, numpy as np
a = np.random.rand(512, 512).astype(np.float32)
a @ a
print("ready", flush=True)
while True:
    a @ a
"""


def busy_process(threads: int):
    """Start the ``--busy`` competitor on ``threads`` BLAS threads, paused; returns the Popen."""
    import signal
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    # Its own defaults (spinning waits), as another job would have, whatever ours are.
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    child = subprocess.Popen([sys.executable, "-c", _SPIN], env=env, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the --busy competitor exited (code {child.wait()}) before it started")
        child.send_signal(signal.SIGSTOP)
    except BaseException:
        child.kill()
        child.wait()
        raise
    return child


def bench_busy(config: SwinIRConfig, size: int, precisions: Sequence[str], thread_counts: Sequence[int],
               device: torch.device, repeats: int, warmup: int, competitor_threads: int) -> List[BusyRow]:
    """The busy-machine policy: our forward at each precision and thread count, each round timed quiet and
    then beside a CPU-bound process (:func:`busy_process`, on the same cores, started, resumed, paused and
    stopped here), all interleaved. The last of ``thread_counts`` is the one ``vs_quiet_default`` compares
    against (the default count)."""
    import signal

    torch.manual_seed(0)
    model = build_network(config).to(device).eval()
    models = {pr: model for pr in precisions}
    if "int8" in models:
        from ..network.int8 import quantize_linears
        models["int8"] = quantize_linears(model)
    x = torch.rand(1, config.in_chans, size, size, device=device)
    cases = [(pr, n) for pr in precisions for n in thread_counts]

    def run(pr: str, n: int):
        def fn():
            torch.set_num_threads(n)
            with autocast(device, pr):
                return models[pr](x)
        return fn

    fns = [run(pr, n) for pr, n in cases]
    quiet: List[List[float]] = [[] for _ in fns]
    busy: List[List[float]] = [[] for _ in fns]
    child = busy_process(competitor_threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                for fn in fns:
                    fn()
            loads = [load_average()]
            for _ in range(repeats):
                for state, times in ((False, quiet), (True, busy)):
                    if state:
                        child.send_signal(signal.SIGCONT)
                        time.sleep(0.1)  # let it take the cores
                    for fn, t in zip(fns, times):
                        t.append(timed(fn, device))
                    if state:
                        child.send_signal(signal.SIGSTOP)
            loads.append(load_average())
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    rows = []
    for i, (pr, n) in enumerate(cases):
        default = cases.index((pr, thread_counts[-1]))
        rows.append(BusyRow(f"{pr} {size}x{size} x{config.upscale}", pr, n, statistics.median(quiet[i]) * 1e3,
                            statistics.median(busy[i]) * 1e3, ratio(busy[i], quiet[i]),
                            ratio(busy[i], quiet[default]), [v for v in loads if v is not None]))
    return rows
