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
import sys
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional

import torch

from ..network import ARCH_NAMES, PRESETS, SwinIRConfig, hardware
from ..network.family import capabilities_of
from ..precision import DTYPES, PRECISIONS
from ..threads import allowed_cores, apply_threads, load_average
from .busy import bench_busy
from .clock import matmul_gflops
from .gpu import gpu_check
from .report import Report, format_table, runnable, skipped
from .timing import bench_inference, bench_onnxruntime, bench_scaling, bench_train_step

ORT_PRECISIONS = ("fp32", "int8")  # the graphs --backend onnxruntime times (what CPUs run in ONNX Runtime)

def main(argv: Optional[List[str]] = None) -> int:
    from ..cli import Parser, add_threads
    from ..precision import auto_precision

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
                   help="pytorch (default): our network; onnxruntime: the same weights exported to ONNX "
                        "(verified) and run by ONNX Runtime, timed against both, for --precision fp32 and int8 "
                        "(ONNX Runtime's dynamic int8, timed beside our int8 and fp32)")
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
            from ..files import atomic_write
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
        for precision in precisions if "onnxruntime" in args.backend else []:
            if precision not in ORT_PRECISIONS or why_not[precision]:
                report.rows.append(skipped(f"onnxruntime {precision} {size}x{size} x{config.upscale}",
                                           why_not[precision] or "ONNX Runtime rows are fp32 and int8"))
                continue
            row = bench_onnxruntime(config, size, device, args.repeats, args.warmup, precision)
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
        from ..files import atomic_write
        atomic_write(Path(json_out), json.dumps(asdict(report), indent=2).encode())
    return 0
