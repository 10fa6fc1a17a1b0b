"""A seconds-long smoke of the benchmark: it runs, compares against the reference, writes JSON."""
import json

from swinir_app.benchmark import main


def test_benchmark_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "fp32", "bf16", "--repeats", "1",
                 "--warmup", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    fp32, bf16 = report["rows"]
    assert fp32["case"].startswith("fp32") and fp32["max_abs_diff"] <= 1e-4
    assert bf16["max_abs_diff"] <= 0.05
    for row in (fp32, bf16):
        assert row["ours_ms"] > 0 and row["ref_ms"] > 0 and row["speedup"] > 0 and row["gflop"] > 0
    assert report["matmul_gflops"]["fp32"] > 0
    assert "speedup" in capsys.readouterr().out


def test_benchmark_train_step_and_scaling_smoke(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--config", "lightweight-x4", "--size", "16", "--precision", "bf16", "--train-step", "--batch", "2",
                 "--patch", "16", "--scaling", "32", "64", "--tile", "32", "--repeats", "1", "--warmup", "0",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    train = next(r for r in rows if r["case"].startswith("train"))
    assert train["ours_ms"] > 0 and train["ref_ms"] > 0 and train["speedup"] > 0
    tiled = [r for r in rows if r["case"].startswith("tiled")]
    assert [r["case"].split()[2] for r in tiled] == ["32x32", "64x64"]
    assert all(r["ours_ms"] > 0 and r["ours_peak_mib"] > 0 for r in tiled)  # the process's peak RSS
