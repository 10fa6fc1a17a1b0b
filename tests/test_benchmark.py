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
