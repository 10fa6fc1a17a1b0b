"""Speed and memory against the official implementation, measured in the same run.

``python -m swinir_app.benchmark [--config classical-x4] [--size 128] [--precision fp32 bf16]
[--train-step] [--scaling 512 1024 2048] [--json OUT]``

Pairs are alternated (A B A B ...) and medians compared, because this kind of machine drifts by up to
2x within minutes: only the ratios mean anything across runs.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import torch

from .network import SwinIR, SwinIRConfig

CONFIGS = {"classical-x4": "classical-x4", "lightweight-x4": "lightweight-x4", "color-dn": "color-dn"}


@dataclass
class Row:
    case: str
    ours_ms: float
    ref_ms: Optional[float]
    speedup: Optional[float]
    ours_peak_mib: Optional[float]
    ref_peak_mib: Optional[float]
    gflop: Optional[float]
    ours_gflops: Optional[float]
    ceiling_pct: Optional[float]
    max_abs_diff: Optional[float]
    note: str = ""


@dataclass
class Report:
    device: str
    threads: int
    matmul_gflops: dict = field(default_factory=dict)
    rows: List[Row] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> int:
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


def _peak(device: torch.device, baseline: int) -> float:
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


def interleaved(a: Callable, b: Optional[Callable], device: torch.device, repeats: int, warmup: int):
    """Median seconds of a and b, alternated A B A B after warm-up."""
    for _ in range(warmup):
        a()
        if b:
            b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(a, device))
        if b:
            tb.append(timed(b, device))
    return statistics.median(ta), (statistics.median(tb) if tb else None)


def peak_mib(fn: Callable, device: torch.device) -> float:
    base = _reset_peak(device)
    fn()
    return _peak(device, base)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    secs, _ = interleaved(lambda: a @ a, None, device, repeats=5, warmup=2)
    return 2 * n ** 3 / secs / 1e9


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])


def bench_inference(config: SwinIRConfig, size: int, precision: str, device: torch.device, repeats: int,
                    warmup: int, ceiling: float, reference: Optional[torch.nn.Module]) -> Row:
    from ._basicsr import OfficialReference

    torch.manual_seed(0)
    ours = SwinIR(config).to(device).eval()
    ref = reference
    if ref is None:
        ref = OfficialReference(config).to(device).eval()
        ref.net.load_state_dict(ours.state_dict(), strict=True)  # the same random weights
    x = torch.rand(1, config.in_chans, size, size, device=device)
    with torch.inference_mode():
        def run_ours():
            with autocast(device, precision):
                return ours(x)

        def run_ref():  # the reference always in fp32: the baseline users have today
            return ref(x)

        out_ours, out_ref = run_ours().float(), run_ref()
        diff = (out_ours - out_ref).abs().max().item()
        t_ours, t_ref = interleaved(run_ours, run_ref, device, repeats, warmup)
        peak_ours, peak_ref = peak_mib(run_ours, device), peak_mib(run_ref, device)
    gflop = forward_flops(ref, x) / 1e9  # counted on the reference: our fused oneDNN calls are opaque to the counter
    achieved = gflop / t_ours
    return Row(f"{precision} {size}x{size} x{config.upscale}", t_ours * 1e3, t_ref * 1e3, t_ref / t_ours,
               peak_ours, peak_ref, gflop, achieved, 100 * achieved / ceiling, diff,
               note="reference in fp32" if precision != "fp32" else "")


def bench_train_step(config: SwinIRConfig, batch: int, patch: int, precision: str, device: torch.device,
                     repeats: int, warmup: int) -> Row:
    from ._basicsr import OfficialReference

    torch.manual_seed(0)
    ours = SwinIR(config.replace(drop_path_rate=0.0)).to(device).train()
    ref = OfficialReference(config.replace(drop_path_rate=0.0)).to(device).train()
    ref.net.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(batch, config.in_chans, patch, patch, device=device)
    y = torch.rand(batch, config.out_chans, patch * config.upscale, patch * config.upscale, device=device)
    opt_ours, opt_ref = torch.optim.Adam(ours.parameters(), 2e-4), torch.optim.Adam(ref.parameters(), 2e-4)

    def step(model, opt, prec):
        with autocast(device, prec):
            loss = torch.nn.functional.l1_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_ours, t_ref = interleaved(lambda: step(ours, opt_ours, precision), lambda: step(ref, opt_ref, "fp32"),
                                device, repeats, warmup)
    peak_ours = peak_mib(lambda: step(ours, opt_ours, precision), device)
    peak_ref = peak_mib(lambda: step(ref, opt_ref, "fp32"), device)
    return Row(f"train {precision} b{batch} p{patch}", t_ours * 1e3, t_ref * 1e3, t_ref / t_ours, peak_ours,
               peak_ref, None, None, None, None, note="forward+backward+Adam; reference in fp32")


def bench_scaling(config: SwinIRConfig, sizes: List[int], precision: str, device: torch.device, tile: int) -> List[Row]:
    """Tiled restoration of growing images: time per megapixel should stay flat, memory bounded."""
    from .engine import Restorer

    torch.manual_seed(0)
    restorer = Restorer(SwinIR(config), tile=tile, tile_overlap=32, precision=precision, device=device)
    rows = []
    for size in sizes:
        img = torch.rand(1, config.in_chans, size, size)
        _reset_peak(device)
        secs = timed(lambda: restorer.restore_tensor(img), device)
        # The whole process's peak (CPU: RSS high-water mark), input and output images included.
        peak = _peak(device, 0)
        rows.append(Row(f"tiled {precision} {size}x{size} x{config.upscale} (tile {tile})", secs * 1e3, None, None,
                        peak, None, None, None, None, None,
                        note=f"{secs / (size * size / 1e6):.2f} s per input megapixel; peak of the process"))
    return rows


def format_table(report: Report) -> str:
    head = ["case", "ours ms", "ref ms", "speedup", "ours MiB", "ref MiB", "GFLOP", "GFLOP/s", "% ceiling",
            "max diff", "note"]

    def cell(v, fmt):
        return "-" if v is None else format(v, fmt)

    rows = [[r.case, cell(r.ours_ms, ".0f"), cell(r.ref_ms, ".0f"), cell(r.speedup, ".2f") + ("x" if r.speedup else ""),
             cell(r.ours_peak_mib, ".0f"), cell(r.ref_peak_mib, ".0f"), cell(r.gflop, ".1f"), cell(r.ours_gflops, ".0f"),
             cell(r.ceiling_pct, ".0f"), cell(r.max_abs_diff, ".1e"), r.note] for r in report.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.matmul_gflops.items())
    return f"device {report.device}, {report.threads} threads; 2048^2 matmul: {ceilings}\n" + "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swinir_app.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="classical-x4", choices=list(CONFIGS))
    p.add_argument("--size", type=int, nargs="+", default=[128], help="LR sizes for inference (default 128)")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--train-step", action="store_true", help="also time forward+backward+Adam (lightweight-x4 "
                                                             "by default, batch 16, LR patch 48)")
    p.add_argument("--train-config", default="lightweight-x4", choices=list(CONFIGS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--scaling", type=int, nargs="*", metavar="SIZE",
                   help="also restore SIZE^2 images with tiles (e.g. 512 1024 2048) with --scaling-config")
    p.add_argument("--scaling-config", default="lightweight-x4", choices=list(CONFIGS))
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    args = p.parse_args(argv)
    device = torch.device(args.device)

    report = Report(device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
                    threads=torch.get_num_threads())
    report.matmul_gflops["fp32"] = matmul_gflops(device, torch.float32)
    if any(pr != "fp32" for pr in args.precision):
        report.matmul_gflops["bf16"] = matmul_gflops(device, torch.bfloat16)
    config = SwinIRConfig.preset(CONFIGS[args.config])
    for size in args.size:
        for precision in args.precision:
            ceiling = report.matmul_gflops["fp32" if precision == "fp32" else "bf16"]
            row = bench_inference(config, size, precision, device, args.repeats, args.warmup, ceiling, None)
            report.rows.append(row)
            print(f"  {row.case}: {row.speedup:.2f}x", file=sys.stderr)
    if args.train_step:
        tconf = SwinIRConfig.preset(CONFIGS[args.train_config])
        for precision in args.precision:
            report.rows.append(bench_train_step(tconf, args.batch, args.patch, precision, device, args.repeats,
                                                args.warmup))
    if args.scaling:
        sconf = SwinIRConfig.preset(CONFIGS[args.scaling_config])
        report.rows.extend(bench_scaling(sconf, args.scaling, args.precision[-1], device, args.tile))
    print(format_table(report))
    if args.json:
        from pathlib import Path

        from .imageio import atomic_write
        atomic_write(Path(args.json), json.dumps(asdict(report), indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
