"""--threads (checked, applied to PyTorch and ONNX Runtime), the benchmark's busy-machine mode, and the GPU
check's CPU side: its one-line refusal and the ``gpu`` marker's tests collected and skipped."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from swinir_app import SwinIR, SwinIRConfig
from swinir_app.engine import Restorer
from swinir_app.errors import SettingError
from swinir_app.threads import allowed_cores, busy_hint, check_threads, default_threads

CORES = allowed_cores()


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def tiny() -> SwinIR:
    torch.manual_seed(0)
    config = SwinIRConfig.preset("lightweight-x2").replace(depths=(2,), num_heads=(2,), embed_dim=16,
                                                           drop_path_rate=0.0)
    return SwinIR(config).eval()


def test_the_default_is_the_cores_this_process_may_use():
    assert CORES == len(os.sched_getaffinity(0))
    torch.set_num_threads(CORES)
    assert default_threads() == CORES
    torch.set_num_threads(1)  # a lower count already set (OMP_NUM_THREADS, torchrun, the caller) is kept
    assert default_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 4 * CORES + 1, 1.5, True, "2"])
def test_bad_counts_are_refused(bad):
    with pytest.raises(SettingError) as e:
        check_threads(bad)
    assert e.value.flag() == (f"--threads {bad}: must be a whole number from 1 to {4 * CORES} "
                              f"(4x the {CORES} cores this process may use)")
    with pytest.raises(SettingError):
        Restorer(tiny(), threads=bad, device="cpu")


def test_the_restorer_sets_the_threads_for_the_run():
    torch.set_num_threads(CORES)
    r = Restorer(tiny(), threads=1, device="cpu")
    assert r.threads == 1 and torch.get_num_threads() == 1
    seen = []
    r.model.register_forward_pre_hook(lambda m, i: seen.append(torch.get_num_threads()))
    r.restore(np.zeros((24, 24, 3), np.uint8))
    assert seen == [1]
    assert Restorer(tiny(), device="cpu").threads == 1  # None keeps a lower count


@pytest.mark.parametrize("command", ["upscale", "evaluate", "benchmark"])
def test_every_cli_refuses_a_bad_count_in_one_line(command, capsys, tmp_path):
    import importlib
    main = importlib.import_module(f"swinir_app.{command}").main
    argv = {"upscale": ["x.png", "-o", str(tmp_path)], "evaluate": ["--model", "bundled-x4"], "benchmark": []}[command]
    for bad in ("0", "-2", str(4 * CORES + 1), "two"):
        with pytest.raises(SystemExit) as e:
            main(argv + ["--threads", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: argument --threads: ") and repr(bad) in err


def test_upscale_threads_1_runs_with_one_thread(tmp_path, capsys):
    torch.set_num_threads(CORES)
    net = tiny()
    torch.save({"params": net.state_dict()}, tmp_path / "tiny.pth")
    Image.fromarray(np.full((20, 28, 3), 128, np.uint8)).save(tmp_path / "in.png")
    from swinir_app.upscale import main
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "tiny.pth"),
                 "--device", "cpu", "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert Image.open(tmp_path / "out" / "in.png").size == (56, 40)
    assert "--threads 1" not in capsys.readouterr().err  # asked for: no hint


def test_upscale_on_a_busy_machine_hints_threads_1(tmp_path, capsys, monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setattr("swinir_app.threads.allowed_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    monkeypatch.setattr("swinir_app.threads.SLOW_RUN", 0.0)  # every run is slow enough for the hint
    torch.save({"params": tiny().state_dict()}, tmp_path / "tiny.pth")
    Image.fromarray(np.full((20, 28, 3), 128, np.uint8)).save(tmp_path / "in.png")
    from swinir_app.upscale import main
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "tiny.pth"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("note: this machine is busy (load average 3.5 on 2 cores); --threads 1 is often faster than "
                       "2 threads on a busy machine")  # after the summary line
    assert err[-2].startswith("done 1, skipped 0, failed 0")


def identity_graph(path, config: SwinIRConfig):
    """A one-node ONNX graph carrying the metadata an exported one has: enough to load, seconds faster to make
    than an export (its output is not x2, so it is never run)."""
    import onnx
    from onnx import TensorProto, helper

    from swinir_app.onnx_runtime import INPUT, META_CONFIG, OUTPUT
    shape = ["batch", config.in_chans, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", [INPUT], [OUTPUT])], "identity",
                              [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {META_CONFIG: json.dumps(config.to_dict() | {"arch": config.arch})})
    onnx.save(model, str(path))


def test_an_onnx_graph_runs_its_sessions_with_the_threads(tmp_path):
    identity_graph(tmp_path / "m.onnx", tiny().config)
    r = Restorer(str(tmp_path / "m.onnx"), threads=1, device="cpu")
    assert r.model.threads == 1 and torch.get_num_threads() == 1
    assert r.model._session("cpu").get_session_options().intra_op_num_threads == 1
    r2 = Restorer(str(tmp_path / "m.onnx"), threads=2, device="cpu")
    assert r2.model._session("cpu").get_session_options().intra_op_num_threads == 2


def test_the_busy_hint(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (CORES + 1.5, 0.0, 0.0))
    assert "--threads 1" in busy_hint(2) and f"on {CORES} cores" in busy_hint(2)
    assert busy_hint(1) is None  # already one thread
    monkeypatch.setattr(os, "getloadavg", lambda: (CORES - 0.5, 0.0, 0.0))
    assert busy_hint(2) is None  # not busier than its cores
    assert busy_hint(2, load=CORES) is not None  # the load taken before the run


@pytest.mark.slow  # starts the competing process
def test_the_busy_mode_times_quiet_and_busy_rounds_and_stops_its_competitor(tmp_path, capsys):
    # One thread: two would take seconds a forward here, beside the competitor (that is what the mode measures).
    from swinir_app.benchmark import main
    assert main(["--config", "lightweight-x4", "--size", "12", "--busy", "--threads", "1", "--busy-threads", "1",
                 "--repeats", "2", "--warmup", "0", "--json", str(tmp_path / "b.json")]) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["threads"] == 1 and report["cores"] == CORES and len(report["load_average"]) == 2
    assert report["rows"] == [] and [(r["precision"], r["threads"]) for r in report["busy"]] == [("fp32", 1)]
    row = report["busy"][0]
    assert row["quiet_ms"] > 0 and row["busy_ms"] > 0 and row["slowdown"] > 0 and len(row["load_average"]) == 2
    out = capsys.readouterr().out
    assert "busy machine: a process running numpy fp32 512^2 matmuls on 1 threads" in out and "busy/quiet" in out
    left = subprocess.run(["pgrep", "-f", "np.random.rand"], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in left if int(pid) != os.getpid()]  # the competitor is gone


def test_the_gpu_check_refuses_without_cuda(monkeypatch, tmp_path, capsys):
    from swinir_app.benchmark import main
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--gpu-check", str(tmp_path / "g.md")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --gpu-check: CUDA is not available on this machine; run it where a GPU is lent "
                   "(docs/performance.md#gpu-check)\n")
    assert not (tmp_path / "g.md").exists()


def test_the_gpu_check_table_runs_small_on_the_cpu(tmp_path):
    # The GPU table's own code path (precisions, peers, the tiled row, the Markdown file), small and on the CPU.
    from swinir_app.benchmark import gpu_check
    torch.set_num_threads(1)  # two threads on a busy machine take 10-50x as long (docs/performance.md#threads)
    report = gpu_check(tmp_path / "g.md", repeats=1, warmup=0, device="cpu", config="lightweight-x4", size=16,
                       scaling=64, tile=48, matmul_n=256)
    cases = [r.case for r in report.rows]
    assert cases == ["fp32 16x16 x4", "bf16 16x16 x4", "fp16 16x16 x4", "tiled fp32 64x64 x4 (tile 48)"]
    fp32, bf16, fp16, tiled = report.rows
    assert fp32.max_abs_diff <= 1e-4 and fp32.speedup > 0 and fp32.spandrel_ms > 0
    assert fp16.ours_ms is None and fp16.note.startswith("not timed: ")  # fp16: GPUs only
    assert tiled.ours_ms > 0 and tiled.ours_peak_mib > 0
    text = (tmp_path / "g.md").read_text()
    assert text.startswith("# GPU check, ") and "```text\n" in text and "tiled fp32 64x64 x4 (tile 48)" in text


@pytest.mark.slow  # starts python
def test_the_gpu_check_script_refuses_without_cuda(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "g.md")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("error: gpu_check: CUDA is not available on this machine; run it where a GPU is lent "
                        "(docs/performance.md#gpu-check)\n")
    assert not (tmp_path / "g.md").exists()


@pytest.mark.slow  # starts pytest
def test_the_gpu_marker_collects_the_cuda_tests_and_they_skip_without_cuda():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/test_gpu.py", "tests/test_threads.py"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    import ast
    tree = ast.parse((REPO / "tests" / "test_gpu.py").read_text())
    tests = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    want = len(tests) + 1  # the half-precision test runs twice (bf16, fp16)
    assert f"{want} skipped" in p.stdout and "passed" not in p.stdout
    assert p.stdout.count("needs CUDA (a GPU): scripts/gpu_check.sh runs these") >= 1
    assert "deselected" in p.stdout  # test_threads.py's own tests are not marked gpu


def test_importing_the_package_makes_openmp_threads_sleep_unless_told_otherwise():
    """OMP_WAIT_POLICY=PASSIVE before torch loads (2 spinning threads on a busy machine ran 2.8-16x slower than 1);
    a user's own setting wins."""
    import os
    import subprocess
    import sys
    code = "import swinir_app, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_WAIT_POLICY="ACTIVE"), capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
