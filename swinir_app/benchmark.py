"""Speed and memory against the official implementation, measured in the same run.

``python -m swinir_app.benchmark [--config classical-x4] [--size 128] [--precision fp32 bf16]
[--backend pytorch onnxruntime] [--train-step] [--scaling 512 1024 2048] [--threads N] [--busy] [--json OUT]``

``--busy`` times 1 thread against all the allowed cores, quiet and with a CPU-bound process started beside it on
the same cores (the busy-machine policy); ``--gpu-check [OUT.md]`` runs the GPU table (scripts/gpu_check.sh).

Runs are alternated (A B A B ...): times are the medians over rounds, and speedups the medians of each
round's ratio, because this kind of machine drifts by up to 2x within minutes: only the ratios mean
anything across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch

from .network.hardware import autocast
from .precision import DTYPES, PRECISIONS
from .network import ARCH_NAMES, PRESETS, SwinIRConfig, build_network, hardware
from .network.family import capabilities_of
from .threads import allowed_cores, apply_threads, load_average

@dataclass
class Row:
    case: str
    ours_ms: Optional[float]
    ref_ms: Optional[float]
    speedup: Optional[float]
    ours_peak_mib: Optional[float]
    ref_peak_mib: Optional[float]
    gflop: Optional[float]
    ours_gflops: Optional[float]
    ceiling_pct: Optional[float]
    max_abs_diff: Optional[float]
    note: str = ""
    spandrel_ms: Optional[float] = None  # spandrel's SwinIR (what chaiNNer and friends run), same weights
    vs_spandrel: Optional[float] = None
    fp32_ms: Optional[float] = None  # int8 rows: our fp32 forward, timed in the same rounds
    vs_fp32: Optional[float] = None  # int8 rows: our fp32 time / our int8 time (median of the rounds' ratios)
    max_abs_diff_fp32: Optional[float] = None  # int8 rows: max abs difference to our fp32 output


@dataclass
class BusyRow:
    """One precision at one thread count, timed quiet and beside a CPU-bound process (``--busy``)."""
    case: str
    precision: str
    threads: int
    quiet_ms: float
    busy_ms: float
    slowdown: float  # busy / quiet at this thread count (median of the rounds' ratios)
    vs_quiet_default: float  # busy at this count / quiet at the default count: what a user sees
    load_average: List[float] = field(default_factory=list)  # 1-minute load, before and after the busy rounds


@dataclass
class Report:
    device: str
    threads: int
    cpu: dict = field(default_factory=dict)  # name, isa, native_bf16, amx, int8_vnni
    auto_precision: str = "fp32"  # what precision="auto" picks for --config on this device
    matmul_gflops: dict = field(default_factory=dict)
    rows: List[Row] = field(default_factory=list)
    cores: int = 0  # the cores this process may use
    load_average: List[Optional[float]] = field(default_factory=list)  # 1-minute load at the start and the end
    busy: List[BusyRow] = field(default_factory=list)
    busy_competitor: str = ""  # what ran beside the --busy rows


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
    base = _reset_peak(device)
    fn()
    return _peak(device, base)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    (secs,) = interleaved([lambda: a @ a], device, repeats=5, warmup=2)
    return 2 * n ** 3 / secs / 1e9


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def spandrel_network(config: SwinIRConfig) -> Optional[torch.nn.Module]:
    """spandrel's port of the official SwinIR, Swin2SR, HAT or DAT (it pads and crops itself), or None if not
    installed."""
    try:
        from spandrel.architectures.DAT import DAT as SpandrelDAT
        from spandrel.architectures.HAT import HAT as SpandrelHAT
        from spandrel.architectures.Swin2SR import Swin2SR as SpandrelSwin2SR
        from spandrel.architectures.SwinIR import SwinIR as SpandrelSwinIR
    except ImportError:
        return None
    c = config
    if c.arch == "dat":
        return SpandrelDAT(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, img_range=c.img_range,
                           split_size=list(c.split_size), depth=list(c.depths), embed_dim=c.embed_dim,
                           num_heads=list(c.num_heads), expansion_factor=c.expansion_factor, qkv_bias=c.qkv_bias,
                           qk_scale=c.qk_scale, resi_connection=c.resi_connection, upsampler=c.upsampler,
                           drop_path_rate=0.0)
    if c.arch == "hat":
        return SpandrelHAT(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                           img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim,
                           num_heads=list(c.num_heads), mlp_ratio=c.mlp_ratio, upsampler=c.upsampler,
                           resi_connection=c.resi_connection, qkv_bias=c.qkv_bias, qk_scale=c.qk_scale,
                           compress_ratio=c.compress_ratio, squeeze_factor=c.squeeze_factor,
                           conv_scale=c.conv_scale, overlap_ratio=c.overlap_ratio, drop_path_rate=0.0)
    args = dict(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim, num_heads=list(c.num_heads),
                mlp_ratio=c.mlp_ratio, upsampler=c.upsampler, resi_connection=c.resi_connection, qkv_bias=c.qkv_bias,
                ape=c.ape, patch_norm=c.patch_norm, drop_path_rate=0.0)
    if c.arch == "swin2sr":
        return SpandrelSwin2SR(**args)
    return SpandrelSwinIR(**args, qk_scale=c.qk_scale)


def reference(config: SwinIRConfig, state: dict) -> Optional[torch.nn.Module]:
    """The official network holding ``state``: basicsr's SwinIR with the official pad and crop, or for
    Swin2SR, HAT and DAT (whose official code is not on PyPI) spandrel's port; None if that is not installed."""
    if config.arch != "swinir":
        ref = spandrel_network(config)
        if ref is not None:
            ref.load_state_dict(state, strict=True)
        return ref
    from ._basicsr import OfficialReference

    ref = OfficialReference(config)
    ref.net.load_state_dict(state, strict=True)
    return ref


def bench_inference(config: SwinIRConfig, size: int, precision: str, device: torch.device, repeats: int,
                    warmup: int, ceiling: float, peers: bool = True) -> Row:
    """Our forward at ``precision`` against the official network and spandrel's SwinIR, both in fp32. For
    Swin2SR the official network is spandrel's port, so there is no separate spandrel column."""
    torch.manual_seed(0)
    ours = build_network(config).to(device).eval()
    fp32 = ours
    if precision == "int8":  # the transformer linears in int8; our fp32 forward is timed beside it
        from .network.int8 import quantize_linears
        ours = quantize_linears(fp32)
    ref = reference(config, ours.state_dict())  # the same random weights
    if ref is None:
        return skipped(f"{precision} {size}x{size} x{config.upscale}",
                       f"spandrel (the official {config.name}) not installed")
    ref = ref.to(device).eval()
    spandrel = spandrel_network(config) if peers and config.arch == "swinir" else None
    if spandrel is not None:
        spandrel.load_state_dict(ours.state_dict(), strict=True)
        spandrel = spandrel.to(device).eval()
    x = torch.rand(1, config.in_chans, size, size, device=device)
    with torch.inference_mode():
        def run_ours():
            with autocast(device, precision):
                return ours(x)

        runs = [run_ours, lambda: ref(x)]  # the peers always in fp32: the baseline users have today
        if spandrel is not None:
            runs.append(lambda: spandrel(x))
        if fp32 is not ours:
            runs.append(lambda: fp32(x))
        out_ours, out_ref = run_ours().float(), ref(x)
        diff = (out_ours - out_ref).abs().max().item()
        diff_fp32 = (out_ours - fp32(x)).abs().max().item() if fp32 is not ours else None
        per_round = rounds(runs, device, repeats, warmup)
        peak_ours, peak_ref = peak_mib(run_ours, device), peak_mib(runs[1], device)
    t_ours, t_ref, *rest = (statistics.median(t) for t in per_round)
    t_sp = rest[0] if spandrel is not None else None
    t_fp32, vs_fp32 = (rest[-1], ratio(per_round[-1], per_round[0])) if fp32 is not ours else (None, None)
    gflop = forward_flops(ref, x) / 1e9  # counted on the reference: our fused oneDNN calls are opaque to the counter
    achieved = gflop / t_ours
    notes = (["peers in fp32"] if precision != "fp32" else []) + ([] if spandrel is not None or not peers
                                                                 or config.arch != "swinir"
                                                                 else ["spandrel not installed"])
    if config.arch != "swinir":
        notes.append(f"official = spandrel's {config.name}")
    if diff_fp32 is not None:
        notes.append(f"max diff to our fp32 {diff_fp32:.1e}; % of the fp32 matmul")
    return Row(f"{precision} {size}x{size} x{config.upscale}", t_ours * 1e3, t_ref * 1e3,
               ratio(per_round[1], per_round[0]), peak_ours, peak_ref, gflop, achieved, 100 * achieved / ceiling,
               diff, note="; ".join(notes), spandrel_ms=None if t_sp is None else t_sp * 1e3,
               vs_spandrel=None if t_sp is None else ratio(per_round[2], per_round[0]),
               fp32_ms=None if t_fp32 is None else t_fp32 * 1e3, vs_fp32=vs_fp32, max_abs_diff_fp32=diff_fp32)


def bench_onnxruntime(config: SwinIRConfig, size: int, device: torch.device, repeats: int, warmup: int) -> Row:
    """The same weights exported (fp32, verified) and run by ONNX Runtime, interleaved with our PyTorch path and the
    official network; "ours" is ONNX Runtime in this row, and the note gives it against our PyTorch path."""
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from .deploy import export_onnx
    from .onnx_runtime import OnnxModel
    torch.manual_seed(0)
    ours = build_network(config).to(device).eval()
    ref = reference(config, ours.state_dict())
    case = f"onnxruntime fp32 {size}x{size} x{config.upscale}"
    if ref is None:
        return skipped(case, f"spandrel (the official {config.name}) not installed")
    ref = ref.to(device).eval()
    x = torch.rand(1, config.in_chans, size, size, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(ours, Path(tmp) / "model.onnx")
        graph = OnnxModel(Path(tmp) / "model.onnx")
        graph.set_threads(torch.get_num_threads())  # as many as our PyTorch path
        with torch.inference_mode():
            diff = (graph(x) - ref(x).clamp(0, 1)).abs().max().item()
            per_round = rounds([lambda: graph(x), lambda: ours(x), lambda: ref(x)], device, repeats, warmup)
            t_ort, t_ours, t_ref = (statistics.median(t) for t in per_round)
            peak_ort = peak_mib(lambda: graph(x), device)
    provider = graph._session(device.type).get_providers()[0].replace("ExecutionProvider", "")
    note = (f"ours = ONNX Runtime {ort.__version__} ({provider}); our PyTorch path {t_ours * 1e3:.0f} ms, "
            f"{ratio(per_round[0], per_round[1]):.2f}x its time")
    return Row(case, t_ort * 1e3, t_ref * 1e3, ratio(per_round[2], per_round[0]), peak_ort, None, None, None, None,
               diff, note=note)


def bench_train_step(config: SwinIRConfig, batch: int, patch: int, precision: str, device: torch.device,
                     repeats: int, warmup: int) -> Row:
    torch.manual_seed(0)
    config = config.replace(drop_path_rate=0.0)
    ours = build_network(config).to(device).train()
    ref = reference(config, ours.state_dict())
    if ref is None:
        return skipped(f"train {precision} b{batch} p{patch}", f"spandrel (the official {config.name}) not installed")
    ref = ref.to(device).train()
    x = torch.rand(batch, config.in_chans, patch, patch, device=device)
    y = torch.rand(batch, config.out_chans, patch * config.upscale, patch * config.upscale, device=device)
    opt_ours, opt_ref = torch.optim.Adam(ours.parameters(), 2e-4), torch.optim.Adam(ref.parameters(), 2e-4)

    def step(model, opt, prec):
        with autocast(device, prec):
            loss = torch.nn.functional.l1_loss(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_round = rounds([lambda: step(ours, opt_ours, precision), lambda: step(ref, opt_ref, "fp32")],
                       device, repeats, warmup)
    t_ours, t_ref = (statistics.median(t) for t in per_round)
    peak_ours = peak_mib(lambda: step(ours, opt_ours, precision), device)
    peak_ref = peak_mib(lambda: step(ref, opt_ref, "fp32"), device)
    return Row(f"train {precision} b{batch} p{patch}", t_ours * 1e3, t_ref * 1e3, ratio(per_round[1], per_round[0]),
               peak_ours, peak_ref, None, None, None, None, note="forward+backward+Adam; reference in fp32")


def skipped(case: str, reason: str) -> Row:
    """A row for a precision this machine cannot run natively: said, never timed."""
    return Row(case, None, None, None, None, None, None, None, None, None, note=f"not timed: {reason}")


def bench_scaling(config: SwinIRConfig, sizes: List[int], precision: str, device: torch.device, tile: int) -> List[Row]:
    """Tiled restoration of growing images: time per megapixel should stay flat, memory bounded."""
    from .engine import Restorer

    torch.manual_seed(0)
    restorer = Restorer(build_network(config), tile=tile, tile_overlap=32, precision=precision, device=device)
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
        from .network.int8 import quantize_linears
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


def format_busy(report: Report) -> str:
    head = ["case", "threads", "quiet ms", "busy ms", "busy/quiet", "busy/quiet default"]
    rows = [[r.case, str(r.threads), f"{r.quiet_ms:.0f}", f"{r.busy_ms:.0f}", f"{r.slowdown:.2f}x",
             f"{r.vs_quiet_default:.2f}x"] for r in report.busy]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    load = report.busy[0].load_average if report.busy else []
    return (f"busy machine: {report.busy_competitor}; load average {' -> '.join(f'{v:.2f}' for v in load)} "
            f"during the busy rounds\n" + "\n".join(lines))


def format_table(report: Report) -> str:
    head = ["case", "ours ms", "official ms", "speedup", "spandrel ms", "vs spandrel", "ours MiB", "official MiB",
            "GFLOP", "GFLOP/s", "% ceiling", "max diff", "note"]

    def cell(v, fmt, unit=""):
        return "-" if v is None else format(v, fmt) + unit

    rows = [[r.case, cell(r.ours_ms, ".0f"), cell(r.ref_ms, ".0f"), cell(r.speedup, ".2f", "x"),
             cell(r.spandrel_ms, ".0f"), cell(r.vs_spandrel, ".2f", "x"), cell(r.ours_peak_mib, ".0f"),
             cell(r.ref_peak_mib, ".0f"), cell(r.gflop, ".1f"), cell(r.ours_gflops, ".0f"), cell(r.ceiling_pct, ".0f"),
             cell(r.max_abs_diff, ".1e"), r.note] for r in report.rows]
    if any(r.fp32_ms is not None for r in report.rows):  # int8 rows: our fp32 in the same rounds
        head[3:3] = ["ours fp32 ms", "vs ours fp32"]
        for r, row in zip(report.rows, rows):
            row[3:3] = [cell(r.fp32_ms, ".0f"), cell(r.vs_fp32, ".2f", "x")]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.matmul_gflops.items()) or "not measured"
    machine = report.device
    if report.cpu:
        c = report.cpu
        bf16 = "AMX bf16" if c["amx"] else "native bf16" if c["native_bf16"] else "no native bf16"
        vnni = {True: ", int8 VNNI", False: ", int8 without VNNI"}.get(c.get("int8_vnni"), "")
        machine += f": {c['name']} ({c['isa']}, {bf16}{vnni})"
    load = " -> ".join("?" if v is None else f"{v:.2f}" for v in report.load_average)
    parts = [f"device {machine}, {report.threads} threads of {report.cores} cores, load average {load or '?'}; "
             f"auto precision for this model: {report.auto_precision}; 2048^2 matmul: {ceilings}"]
    parts += ["\n".join(lines)] if report.rows else []
    parts += [format_busy(report)] if report.busy else []
    return "\n".join(parts)


def runnable(precision: str, device: torch.device) -> Optional[str]:
    """None if ``precision`` runs natively on ``device``, else why not (the engine's own check)."""
    from .errors import SettingError
    from .precision import resolve_precision

    try:
        resolve_precision(precision, device)
    except SettingError as e:
        return e.reason
    return None


GPU_CHECK_CONFIG, GPU_CHECK_SIZE, GPU_CHECK_SCALING, GPU_CHECK_TILE = "classical-x4", 128, 2048, 256


def gpu_check(out: Path, repeats: int = 10, warmup: int = 3, device: str = "cuda", config: str = GPU_CHECK_CONFIG,
              size: int = GPU_CHECK_SIZE, scaling: int = GPU_CHECK_SCALING, tile: int = GPU_CHECK_TILE,
              matmul_n: int = 2048) -> Report:
    """The GPU table of ``scripts/gpu_check.sh``: SwinIR-M x4 (classical-x4) at 128x128 LR in fp32, bf16 and
    fp16 against the official network (fp32) and spandrel's SwinIR, and a tiled 2048x2048 x4 upscale with its
    peak allocated memory (``torch.cuda.max_memory_allocated``); written to ``out`` as Markdown. (The test runs it
    small on the CPU: ``device``, ``config``, ``size``, ``scaling``, ``tile``, ``matmul_n``.)"""
    import platform

    from .files import atomic_write
    from .precision import auto_precision
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


def main(argv: Optional[List[str]] = None) -> int:
    from .cli import Parser, add_threads
    from .precision import auto_precision

    p = Parser(prog="python -m swinir_app.benchmark", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=list(ARCH_NAMES),
                   help="the network family: swinir, swin2sr, hat or dat; sets the default configs (default: "
                        "--config's family, else swinir)")
    p.add_argument("--config", choices=list(PRESETS),
                   help="the network (default classical-x4; swin2sr-classical-x4, hat-x4 or dat-s-x4 with --arch)")
    p.add_argument("--size", type=int, nargs="+", default=[128], help="LR sizes for inference (default 128)")
    p.add_argument("--precision", nargs="+", choices=[pr for pr in PRECISIONS if pr != "auto"],
                   help="default: fp32, and auto's choice if it differs; a precision this machine cannot run "
                        "natively is listed, not timed; an int8 row also times our fp32 in the same rounds")
    p.add_argument("--backend", nargs="+", choices=["pytorch", "onnxruntime"], default=["pytorch"],
                   help="pytorch (default): our network; onnxruntime: the same weights exported to ONNX (fp32, "
                        "verified) and run by ONNX Runtime, timed against both")
    p.add_argument("--no-peers", action="store_true", help="time the official network only, not spandrel's SwinIR")
    p.add_argument("--train-step", action="store_true", help="also time forward+backward+Adam (lightweight-x4 "
                                                             "by default, batch 16, LR patch 48)")
    p.add_argument("--train-config", choices=list(PRESETS),
                   help="default lightweight-x4; swin2sr-lightweight-x2, hat-s-x4 or dat-light-x4 with --arch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--scaling", type=int, nargs="*", metavar="SIZE",
                   help="also restore SIZE^2 images with tiles (e.g. 512 1024 2048) with --scaling-config")
    p.add_argument("--scaling-config", choices=list(PRESETS),
                   help="default lightweight-x4; swin2sr-lightweight-x2, hat-s-x4 or dat-light-x4 with --arch")
    p.add_argument("--tile", type=int, default=256, help="the tile size of the --scaling rows (default 256)")
    p.add_argument("--repeats", type=int, default=None, help="rounds (default 5; 10 with --gpu-check)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    add_threads(p)
    p.add_argument("--busy", action="store_true",
                   help="the busy-machine policy instead of the usual rows: --config at --size and --precision "
                        "(default fp32) with 1 thread and with --threads (default: the allowed cores), each round "
                        "timed quiet and beside a CPU-bound process on the same cores, interleaved")
    p.add_argument("--busy-threads", type=int, default=None, metavar="N",
                   help="the BLAS threads of --busy's competing process, numpy matmuls (default: the allowed "
                        "cores, like another multi-threaded job)")
    p.add_argument("--gpu-check", nargs="?", const="gpu_check.md", default=None, metavar="OUT.md",
                   help="on a CUDA machine: the GPU table (classical-x4 128^2 fp32/bf16/fp16 against the official "
                        "network, a tiled 2048^2 upscale with peak memory) written to OUT.md (default gpu_check.md); "
                        "refused without CUDA. scripts/gpu_check.sh runs it with the tests marked gpu")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    args = p.parse_args(argv)
    if args.gpu_check is not None:
        if not torch.cuda.is_available():
            print("error: --gpu-check: CUDA is not available on this machine; run it where a GPU is lent "
                  "(docs/performance.md#gpu-check)", file=sys.stderr)
            return 2
        report = gpu_check(Path(args.gpu_check), repeats=args.repeats or 10)
        print(format_table(report))
        if args.json:
            from .files import atomic_write
            atomic_write(Path(args.json), json.dumps(asdict(report), indent=2).encode())
        print(f"written to {args.gpu_check}", file=sys.stderr)
        return 0
    args.repeats = args.repeats or 5
    if args.busy:
        import signal
        if args.busy_threads is not None and not 1 <= args.busy_threads <= 4 * allowed_cores():
            p.error(f"--busy-threads must be 1 to {4 * allowed_cores()}, got {args.busy_threads}")
        if not hasattr(signal, "SIGSTOP"):
            p.error("--busy pauses its competing process with SIGSTOP: Linux or macOS only")
        if args.device != "cpu":
            p.error("--busy measures CPU threads: use --device cpu (the default)")
    threads = apply_threads(args.threads)
    device = torch.device(args.device)
    args.arch = args.arch or (SwinIRConfig.preset(args.config).arch if args.config else "swinir")
    defaults = {"swinir": ("classical-x4", "lightweight-x4"), "hat": ("hat-x4", "hat-s-x4"),
                "swin2sr": ("swin2sr-classical-x4", "swin2sr-lightweight-x2"),
                "dat": ("dat-s-x4", "dat-light-x4")}[args.arch]
    args.config = args.config or defaults[0]
    args.train_config = args.train_config or defaults[1]
    args.scaling_config = args.scaling_config or defaults[1]
    config = SwinIRConfig.preset(args.config)
    if config.arch != args.arch:
        p.error(f"--config {args.config} is a {config.name} network, and --arch is {args.arch}")
    auto = auto_precision(device, capabilities_of(config))
    precisions = args.precision or (["fp32"] if args.busy else list(dict.fromkeys(["fp32", auto])))

    report = Report(device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
                    threads=threads, auto_precision=auto, cores=allowed_cores(), load_average=[load_average()])
    if device.type == "cpu":
        c = hardware.cpu()
        report.cpu = {"name": c.name, "isa": c.isa, "native_bf16": c.bf16, "amx": c.amx, "int8_vnni": c.vnni}
    why_not = {pr: runnable(pr, device) for pr in precisions}
    if args.busy:
        competitor = args.busy_threads or allowed_cores()
        wait = os.environ.get("OMP_WAIT_POLICY", "default")
        report.busy_competitor = (f"a process running numpy fp32 512^2 matmuls on {competitor} threads; "
                                  f"our OMP_WAIT_POLICY {wait}")
        counts = sorted({1, threads})
        for size in args.size:
            report.busy.extend(bench_busy(config, size, [pr for pr in precisions if not why_not[pr]], counts,
                                          device, args.repeats, args.warmup, competitor))
        return _finish(report, args.json)
    report.matmul_gflops["fp32"] = matmul_gflops(device, torch.float32)
    for pr in ("bf16", "fp16"):
        if pr in precisions and why_not[pr] is None:
            report.matmul_gflops[pr] = matmul_gflops(device, DTYPES[pr])
    for size in args.size:
        if "onnxruntime" in args.backend:
            row = bench_onnxruntime(config, size, device, args.repeats, args.warmup)
            report.rows.append(row)
            print(f"  {row.case}: {row.note}", file=sys.stderr)
        for precision in precisions if "pytorch" in args.backend else []:
            case = f"{precision} {size}x{size} x{config.upscale}"
            if why_not[precision]:
                report.rows.append(skipped(case, why_not[precision]))
                continue
            row = bench_inference(config, size, precision, device, args.repeats, args.warmup,
                                  report.matmul_gflops.get(precision, report.matmul_gflops["fp32"]),
                                  peers=not args.no_peers)
            report.rows.append(row)
            print(f"  {row.case}: {row.speedup:.2f}x the official network", file=sys.stderr)
    if args.train_step:
        tconf = SwinIRConfig.preset(args.train_config)
        for precision in precisions:
            if why_not[precision] or precision == "int8":
                report.rows.append(skipped(f"train {precision} b{args.batch} p{args.patch}",
                                           why_not[precision] or "int8 is for inference: training runs fp32 or amp"))
                continue
            report.rows.append(bench_train_step(tconf, args.batch, args.patch, precision, device, args.repeats,
                                                args.warmup))
    if args.scaling:
        sconf = SwinIRConfig.preset(args.scaling_config)
        precision = precisions[-1]
        if why_not[precision]:
            report.rows.append(skipped(f"tiled {precision}", why_not[precision]))
        else:
            report.rows.extend(bench_scaling(sconf, args.scaling, precision, device, args.tile))
    return _finish(report, args.json)


def _finish(report: Report, json_out: Optional[str]) -> int:
    report.load_average.append(load_average())
    print(format_table(report))
    if json_out:
        from .files import atomic_write
        atomic_write(Path(json_out), json.dumps(asdict(report), indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
