"""``--gpu-check``: the GPU table of ``scripts/gpu_check.sh``, written as Markdown."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ..network import SwinIRConfig, hardware
from ..network.family import capabilities_of
from ..precision import DTYPES
from ..threads import allowed_cores, load_average
from .clock import matmul_gflops
from .report import Report, format_table, runnable, skipped
from .timing import bench_inference, bench_scaling

GPU_CHECK_CONFIG, GPU_CHECK_SIZE, GPU_CHECK_SCALING, GPU_CHECK_TILE = "classical-x4", 128, 2048, 256


def gpu_check(out: Path, repeats: int = 10, warmup: int = 3, device: str = "cuda", config: str = GPU_CHECK_CONFIG,
              size: int = GPU_CHECK_SIZE, scaling: int = GPU_CHECK_SCALING, tile: int = GPU_CHECK_TILE,
              matmul_n: int = 2048) -> Report:
    """The GPU table of ``scripts/gpu_check.sh``: SwinIR-M x4 (classical-x4) at 128x128 LR in fp32, bf16 and
    fp16 against the official network (fp32) and spandrel's SwinIR, and a tiled 2048x2048 x4 upscale with its
    peak allocated memory (``torch.cuda.max_memory_allocated``); written to ``out`` as Markdown. (The test runs it
    small on the CPU: ``device``, ``config``, ``size``, ``scaling``, ``tile``, ``matmul_n``.)"""
    import platform

    from ..files import atomic_write
    from ..precision import auto_precision
    dev = torch.device(device)
    net = SwinIRConfig.preset(config)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev} ({hardware.cpu().name})"
    report = Report(device=name, threads=torch.get_num_threads(), cores=allowed_cores(),
                    auto_precision=auto_precision(dev, capabilities_of(net)), load_average=[load_average()])
    started = time.perf_counter()
    for pr in ("fp32", "bf16", "fp16"):
        why = runnable(pr, dev)
        report.matmul_gflops[pr] = None if why else matmul_gflops(dev, DTYPES[pr], matmul_n)
        case = f"{pr} {size}x{size} x{net.upscale}"
        report.rows.append(skipped(case, why) if why else bench_inference(
            net, size, pr, dev, repeats, warmup, report.matmul_gflops[pr]))
        print(f"  {case}: done", file=sys.stderr)
    report.matmul_gflops = {k: v for k, v in report.matmul_gflops.items() if v is not None}
    report.rows.extend(bench_scaling(net, [scaling], report.auto_precision, dev, tile))
    report.load_average.append(load_average())
    seconds = time.perf_counter() - started
    memory = "torch.cuda.max_memory_allocated" if dev.type == "cuda" else "the peak RSS"
    text = (f"# GPU check, {time.strftime('%Y-%m-%d %H:%M')}\n\n"
            f"{report.device}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"Python {platform.python_version()}; {seconds:.0f} s. {net.name} ({config}) at {size}x{size} LR against "
            f"the official network (fp32), medians of {repeats}; the tiled row's MiB is {memory} (tile {tile}, "
            f"{report.auto_precision}).\n\n```text\n{format_table(report)}\n```\n")
    atomic_write(Path(out), text.encode())
    return report
