"""A seconds-long smoke of the benchmark on any CPU: it runs, compares against its peers, writes JSON."""
import json
import os

import pytest
import torch


from conftest import CPU
from swinir_app.benchmark import main
from swinir_app.network import hardware


def test_benchmark_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "fp32", "bf16", "int8", "--repeats",
                     "1", "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
        assert torch.get_num_threads() == 1  # --threads 1 was the run's
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and len(report["load_average"]) == 2  # what it ran under, start and end
    assert report["cpu"] == {"name": CPU.name, "isa": CPU.isa, "native_bf16": CPU.bf16, "amx": CPU.amx,
                             "int8_vnni": CPU.vnni}
    fp32, bf16, int8 = report["rows"]
    assert fp32["case"].startswith("fp32") and fp32["max_abs_diff"] <= 1e-4
    assert fp32["ours_ms"] > 0 and fp32["ref_ms"] > 0 and fp32["speedup"] > 0 and fp32["gflop"] > 0
    assert fp32["spandrel_ms"] > 0 and fp32["vs_spandrel"] > 0  # spandrel's SwinIR, the same weights
    assert report["matmul_gflops"]["fp32"] > 0
    if CPU.bf16:
        assert bf16["max_abs_diff"] <= 0.05 and bf16["ours_ms"] > 0
    else:  # listed, never timed
        assert bf16["ours_ms"] is None and bf16["note"].startswith("not timed: ")
        assert "bf16" not in report["matmul_gflops"]
    if CPU.int8:  # our fp32 timed in the same rounds beside the int8 row, and its difference to it
        assert int8["case"].startswith("int8") and int8["fp32_ms"] > 0 and int8["vs_fp32"] > 0
        assert 0 < int8["max_abs_diff_fp32"] <= 0.05 and int8["spandrel_ms"] > 0 and int8["speedup"] > 0
        assert fp32["fp32_ms"] is None and fp32["vs_fp32"] is None
    printed = capsys.readouterr().out
    assert ("vs ours fp32" in printed) == CPU.int8
    assert "speedup" in printed and CPU.isa in printed.splitlines()[0]
    assert "1 thread of" in printed.splitlines()[0] and "load average" in printed.splitlines()[0]


def test_a_precision_without_native_support_is_listed_not_timed(tmp_path):
    out = tmp_path / "bench.json"
    with hardware.override(bf16=False, amx=False):
        assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "bf16", "--train-step", "--batch",
                     "1", "--patch", "8", "--repeats", "1", "--warmup", "0", "--no-peers", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["cpu"]["native_bf16"] is False and report["auto_precision"] == "fp32"
    assert [r["ours_ms"] for r in report["rows"]] == [None, None]
    assert all("would emulate bf16" in r["note"] for r in report["rows"])
    assert list(report["matmul_gflops"]) == ["fp32"]


def test_benchmark_train_step_and_scaling_smoke(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "fp32", "--train-step", "--batch", "2",
                 "--patch", "16", "--scaling", "32", "64", "--tile", "32", "--repeats", "1", "--warmup", "0",
                 "--no-peers", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    train = next(r for r in rows if r["case"].startswith("train"))
    assert train["ours_ms"] > 0 and train["ref_ms"] > 0 and train["speedup"] > 0
    tiled = [r for r in rows if r["case"].startswith("tiled")]
    assert [r["case"].split()[2] for r in tiled] == ["32x32", "64x64"]
    assert all(r["ours_ms"] > 0 and r["ours_peak_mib"] > 0 for r in tiled)  # the process's peak RSS


def test_benchmark_swin2sr_against_the_official_port(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--arch", "swin2sr", "--config", "swin2sr-lightweight-x2", "--size", "16", "--precision", "fp32",
                 "--train-step", "--batch", "1", "--patch", "16", "--repeats", "1", "--warmup", "0",
                 "--json", str(out)]) == 0
    inference, train = json.loads(out.read_text())["rows"]
    assert inference["max_abs_diff"] <= 1e-4 and inference["ref_ms"] > 0 and inference["speedup"] > 0
    assert "official = spandrel's Swin2SR" in inference["note"] and inference["spandrel_ms"] is None
    assert train["case"].startswith("train") and train["ref_ms"] > 0


def test_benchmark_hat_against_the_official_port(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--arch", "hat", "--config", "hat-s-x2", "--size", "16", "--precision", "fp32", "--repeats", "1",
                 "--warmup", "0", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["max_abs_diff"] <= 1e-4 and row["ref_ms"] > 0 and "official = spandrel's HAT" in row["note"]


def test_benchmark_dat_against_spandrels_port(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--arch", "dat", "--size", "16", "--precision", "fp32", "--train-step", "--train-config",
                 "dat-light-x2", "--batch", "2", "--patch", "16", "--repeats", "1", "--warmup", "0",
                 "--json", str(out)]) == 0
    inference, train = json.loads(out.read_text())["rows"]
    assert inference["case"] == "fp32 16x16 x4"  # dat-s-x4, the default for --arch dat
    assert inference["max_abs_diff"] <= 1e-4 and inference["ref_ms"] > 0 and inference["speedup"] > 0
    assert "official = spandrel's DAT" in inference["note"] and inference["spandrel_ms"] is None
    assert train["case"].startswith("train") and train["ref_ms"] > 0
    # --config alone picks its family
    assert main(["--config", "dat-light-x2", "--size", "12", "--precision", "fp32", "--repeats", "1", "--warmup", "0",
                 "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["case"] == "fp32 12x12 x2" and row["max_abs_diff"] <= 1e-4 and "spandrel's DAT" in row["note"]


def test_benchmark_onnxruntime_backend_beside_pytorch_and_the_official_network(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "fp32", "--backend", "pytorch",
                 "onnxruntime", "--repeats", "1", "--warmup", "0", "--no-peers", "--json", str(out)]) == 0
    ort_row, fp32 = json.loads(out.read_text())["rows"]
    assert ort_row["case"].startswith("onnxruntime fp32") and ort_row["max_abs_diff"] <= 1e-4
    assert ort_row["ours_ms"] > 0 and ort_row["ref_ms"] > 0 and "our PyTorch path" in ort_row["note"]
    assert fp32["case"].startswith("fp32")


@pytest.mark.skipif(not CPU.int8, reason="no int8 kernels on this CPU")
def test_benchmark_onnxruntime_int8_beside_our_int8_and_fp32(tmp_path, monkeypatch):
    # ONNX Runtime's int8 graph, timed in the same rounds as our PyTorch int8 and fp32; bf16 has no ORT row.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", os.environ.get("ONEDNN_MAX_CPU_ISA") or "AVX2")
    out = tmp_path / "bench.json"
    assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "int8", "bf16", "--backend",
                 "onnxruntime", "--repeats", "1", "--warmup", "0", "--no-peers", "--json", str(out)]) == 0
    row, bf16 = json.loads(out.read_text())["rows"]
    assert row["case"] == "onnxruntime int8 16x16 x4" and row["ours_ms"] > 0 and row["fp32_ms"] > 0
    assert row["vs_fp32"] > 0 and row["speedup"] > 0
    assert 1e-6 < row["max_abs_diff_fp32"] <= 5e-2  # quantised, within the export's int8 tolerance
    assert "our PyTorch int8" in row["note"] and "ONNX Runtime ignores" in row["note"]
    assert "ONEDNN_MAX_CPU_ISA" in row["note"].split("ignores")[1]
    assert bf16["case"] == "onnxruntime bf16 16x16 x4" and bf16["ours_ms"] is None
    assert bf16["note"].startswith("not timed")


def test_speedup_is_the_median_of_each_rounds_ratio():
    # A machine slowing down 4x mid-run: each round's ratio stays 2, the ratio of the medians does not.
    from swinir_app.benchmark import ratio

    official, ours = [2.0, 8.0, 8.0], [1.0, 1.0, 4.0]
    assert ratio(official, ours) == 2.0
