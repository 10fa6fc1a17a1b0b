"""The benchmark's report: its rows (:class:`Row`, :class:`BusyRow`, :class:`Report`), a precision this machine
cannot run (:func:`runnable`, :func:`skipped`), and the tables as text (:func:`format_table`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch

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


def skipped(case: str, reason: str) -> Row:
    """A row for a precision this machine cannot run natively: said, never timed."""
    return Row(case, None, None, None, None, None, None, None, None, None, note=f"not timed: {reason}")


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
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    parts = [f"device {machine}, {threads} of {report.cores} cores, load average {load or '?'}; "
             f"auto precision for this model: {report.auto_precision}; 2048^2 matmul: {ceilings}"]
    parts += ["\n".join(lines)] if report.rows else []
    parts += [format_busy(report)] if report.busy else []
    return "\n".join(parts)


def runnable(precision: str, device: torch.device) -> Optional[str]:
    """None if ``precision`` runs natively on ``device``, else why not (the engine's own check)."""
    from ..errors import SettingError
    from ..precision import resolve_precision

    try:
        resolve_precision(precision, device)
    except SettingError as e:
        return e.reason
    return None
