"""The rows of the usual table: inference against the peers, ONNX Runtime, a training step and tiled scaling."""
from __future__ import annotations

import os
import statistics
from typing import List

import torch

from ..network import SwinIRConfig, build_network
from ..network.hardware import autocast
from .clock import forward_flops, peak_mib, peak_mib_since, ratio, reset_peak, rounds, timed
from .peers import reference, spandrel_network
from .report import Row, skipped

def bench_inference(config: SwinIRConfig, size: int, precision: str, device: torch.device, repeats: int,
                    warmup: int, ceiling: float, peers: bool = True) -> Row:
    """Our forward at ``precision`` against the official network and spandrel's SwinIR, both in fp32. For
    Swin2SR the official network is spandrel's port, so there is no separate spandrel column."""
    torch.manual_seed(0)
    ours = build_network(config).to(device).eval()
    fp32 = ours
    if precision == "int8":  # the transformer linears in int8; our fp32 forward is timed beside it
        from ..network.int8 import quantize_linears
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


def bench_onnxruntime(config: SwinIRConfig, size: int, device: torch.device, repeats: int, warmup: int,
                      precision: str = "fp32") -> Row:
    """The same weights exported (verified) and run by ONNX Runtime, interleaved with our PyTorch path and the
    official network; "ours" is ONNX Runtime in this row, and the note gives it against our PyTorch path.

    ``precision`` "int8": the exported graph with its linears quantised by ONNX Runtime (dynamic, what
    ``swinir-app export --precision int8`` writes), timed in the same rounds as our PyTorch int8 and fp32
    forwards; ``fp32_ms`` / ``vs_fp32`` are then our PyTorch fp32 against the graph, and ``max_abs_diff_fp32``
    the graph's distance to it.
    """
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    from ..deploy import export_onnx
    from ..onnx_runtime import OnnxModel
    torch.manual_seed(0)
    ours = build_network(config).to(device).eval()
    ref = reference(config, ours.state_dict())
    case = f"onnxruntime {precision} {size}x{size} x{config.upscale}"
    if ref is None:
        return skipped(case, f"spandrel (the official {config.name}) not installed")
    ref = ref.to(device).eval()
    x = torch.rand(1, config.in_chans, size, size, device=device)
    int8 = precision == "int8"
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(ours, Path(tmp) / "model.onnx", precision=precision)
        graph = OnnxModel(Path(tmp) / "model.onnx")
        graph.set_threads(torch.get_num_threads())  # as many as our PyTorch path
        runs = [lambda: graph(x), lambda: ours(x), lambda: ref(x)]
        if int8:
            from ..network.int8 import quantize_linears
            ours8 = quantize_linears(ours)
            runs.append(lambda: ours8(x))
        with torch.inference_mode():
            out_graph = graph(x)
            diff = (out_graph - ref(x).clamp(0, 1)).abs().max().item()
            diff_fp32 = (out_graph - ours(x).clamp(0, 1)).abs().max().item() if int8 else None
            per_round = rounds(runs, device, repeats, warmup)
            peak_ort = peak_mib(lambda: graph(x), device)
    t_ort, t_ours, t_ref, *rest = (statistics.median(t) for t in per_round)
    provider = graph._session(device.type).get_providers()[0].replace("ExecutionProvider", "")
    note = (f"ours = ONNX Runtime {ort.__version__} ({provider}); our PyTorch {'fp32 ' if int8 else ''}path "
            f"{t_ours * 1e3:.0f} ms, {ratio(per_round[0], per_round[1]):.2f}x its time")
    capped = sorted(k for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
                    if os.environ.get(k))
    if capped and device.type == "cpu":  # MLAS has no such switch: the graph runs the CPU's best ISA
        note += f"; ONNX Runtime ignores {'/'.join(capped)}: it ran at this CPU's own ISA"
    if int8:
        note += (f"; our PyTorch int8 {rest[0] * 1e3:.0f} ms, {ratio(per_round[0], per_round[3]):.2f}x its time; "
                 f"max diff to our fp32 {diff_fp32:.1e}; peers in fp32")
    return Row(case, t_ort * 1e3, t_ref * 1e3, ratio(per_round[2], per_round[0]), peak_ort, None, None, None, None,
               diff, note=note, fp32_ms=t_ours * 1e3 if int8 else None,
               vs_fp32=ratio(per_round[1], per_round[0]) if int8 else None, max_abs_diff_fp32=diff_fp32)


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


def bench_scaling(config: SwinIRConfig, sizes: List[int], precision: str, device: torch.device, tile: int) -> List[Row]:
    """Tiled restoration of growing images: time per megapixel should stay flat, memory bounded."""
    from ..engine import Restorer

    torch.manual_seed(0)
    restorer = Restorer(build_network(config), tile=tile, tile_overlap=32, precision=precision, device=device)
    rows = []
    for size in sizes:
        img = torch.rand(1, config.in_chans, size, size)
        reset_peak(device)
        secs = timed(lambda: restorer.restore_tensor(img), device)
        # The whole process's peak (CPU: RSS high-water mark), input and output images included.
        peak = peak_mib_since(device, 0)
        rows.append(Row(f"tiled {precision} {size}x{size} x{config.upscale} (tile {tile})", secs * 1e3, None, None,
                        peak, None, None, None, None, None,
                        note=f"{secs / (size * size / 1e6):.2f} s per input megapixel; peak of the process"))
    return rows
