"""ONNX export and ONNX Runtime as a backend: ORT against PyTorch at sizes where the public scripts fail."""
import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from conftest import photo
from swinir_app import Restorer, SwinIRConfig, build_network
from swinir_app.deploy import ExportError, export_onnx
from swinir_app.engine import SettingError
from swinir_app.export import main as export_main
from swinir_app.onnx_runtime import OnnxModel, graph_info
from swinir_app.upscale import main as upscale_main
from swinir_app.zoo import ModelLoadError, load_model

SIZES = [(16, 16), (29, 43), (72, 72), (128, 96)]
TINY = dict(embed_dim=12, depths=(2, 2), num_heads=(2, 2), mlp_ratio=2.0, drop_path_rate=0.0)
FAMILIES = {  # every head and input kind of the SwinIR family, small
    "classical": SwinIRConfig(upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle", **TINY),
    "lightweight": SwinIRConfig(upscale=3, img_size=64, window_size=8, upsampler="pixelshuffledirect", **TINY),
    "real-world": SwinIRConfig(upscale=4, img_size=64, window_size=8, upsampler="nearest+conv", **TINY),
    "denoise": SwinIRConfig(upscale=1, img_size=128, window_size=8, upsampler="", **TINY),
    "jpeg-gray-window-7": SwinIRConfig(upscale=1, in_chans=1, img_size=126, window_size=7, img_range=255.0,
                                       upsampler="", **TINY),
    "swin2sr-aux": SwinIRConfig(arch="swin2sr", upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle_aux",
                                **TINY),
    "hat": SwinIRConfig(arch="hat", upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle", compress_ratio=3,
                        squeeze_factor=3, **TINY),
    # DAT: zero-padded windows of 4x8 and 8x4, shifted and not, channel attention; orders and masks in the graph
    "dat": SwinIRConfig(arch="dat", upscale=2, img_size=32, split_size=(4, 8), embed_dim=32, depths=(3,),
                        num_heads=(4,), expansion_factor=2.0, upsampler="pixelshuffledirect", resi_connection="3conv",
                        drop_path_rate=0.0),
}


def random_net(config: SwinIRConfig, seed: int = 0):
    torch.manual_seed(seed)
    net = build_network(config).eval()
    with torch.no_grad():  # biases and tables off zero, so that a misplaced one shows
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return net


def ort_run(path, x: torch.Tensor) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]


def torch_run(net, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return net(x).clamp(0, 1).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_exact_at_every_size(family, tmp_path):
    config = FAMILIES[family]
    net = random_net(config)
    report = export_onnx(net, tmp_path / "m.onnx")
    assert report.max_diff <= 1e-4 and len(report.checks) == 4  # three sizes and a second batch
    for h, w in SIZES:
        x = torch.rand(1, config.in_chans, h, w)
        got, ref = ort_run(tmp_path / "m.onnx", x), torch_run(net, x)
        assert got.shape == (1, config.out_chans, h * config.scale, w * config.scale)
        assert np.abs(got - ref).max() <= 1e-4, (family, h, w)


@pytest.mark.parametrize("example", [None, (64, 64)])
def test_the_training_size_trap(example, tmp_path):
    """img_size 64 and an example at 64x64 (the public scripts' trap): still right at 128x96, where the window
    count is a multiple of the training one, and at 72x72, where a baked-in mask cannot even run."""
    config = FAMILIES["classical"]
    net = random_net(config, seed=1)
    export_onnx(net, tmp_path / "m.onnx", example_size=example)
    for h, w in ((128, 96), (72, 72)):
        x = torch.rand(1, 3, h, w)
        assert np.abs(ort_run(tmp_path / "m.onnx", x) - torch_run(net, x)).max() <= 1e-4


def test_dynamic_batch_is_exact_and_a_fixed_batch_is_refused_by_the_graph(tmp_path):
    net = random_net(FAMILIES["classical"])
    export_onnx(net, tmp_path / "dyn.onnx")
    x = torch.rand(3, 3, 24, 40)
    assert np.abs(ort_run(tmp_path / "dyn.onnx", x) - torch_run(net, x)).max() <= 1e-4
    report = export_onnx(net, tmp_path / "b1.onnx", batch=1)
    assert [c.shape[0] for c in report.checks] == [1, 1, 1]
    with pytest.raises(Exception, match="index: 0 Got: 3 Expected: 1"):
        ort_run(tmp_path / "b1.onnx", x)
    # Through the backend a fixed batch still takes any batch (in chunks).
    assert np.abs(OnnxModel(tmp_path / "b1.onnx")(x).numpy() - torch_run(net, x)).max() <= 1e-4


def test_fixed_size_graph_declares_its_shape_and_folds_no_masks(tmp_path):
    config = FAMILIES["classical"]
    net = random_net(config)
    report = export_onnx(net, tmp_path / "f.onnx", fixed_size=(48, 64), batch=2)
    s = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].shape == [2, 3, 48, 64] and s.get_outputs()[0].shape == [2, 3, 96, 128]
    weights = sum(p.numel() * 4 for p in net.parameters())
    assert report.bytes < weights + 300_000  # no (windows, heads, N, N) constants per block
    x = torch.rand(2, 3, 48, 64)
    assert np.abs(ort_run(tmp_path / "f.onnx", x) - torch_run(net, x)).max() <= 1e-4
    with pytest.raises(ExportError, match="at least the window size"):
        export_onnx(net, tmp_path / "g.onnx", fixed_size=(4, 64))


def test_metadata_and_the_cli(tmp_path, capsys):
    config = FAMILIES["lightweight"]
    path = tmp_path / "light.pth"
    torch.save({"params": random_net(config).state_dict()}, path)
    assert export_main([str(path), str(tmp_path / "light.onnx")]) == 0
    out, err = capsys.readouterr()
    assert "checked 1x3x" in err and "PSNR" in err and out.startswith("wrote ") and "nodes" in out
    meta = graph_info(tmp_path / "light.onnx")
    assert (meta["task"], meta["scale"], meta["window_size"], meta["in_chans"], meta["out_chans"]) == \
        ("sr", "3", "8", "3", "3")
    assert meta["name"] == "light" and meta["source"] == "light.pth" and meta["arch"] == "SwinIR"
    assert json.loads(meta["swinir_app.config"])["upsampler"] == "pixelshuffledirect"
    proto = onnx.load(str(tmp_path / "light.onnx"))
    assert proto.opset_import[0].version == 17
    # Nothing is overwritten by surprise; bf16 is refused in one line; both before any work.
    with pytest.raises(SystemExit) as e:
        export_main([str(path), str(tmp_path / "light.onnx")])
    assert e.value.code == 2 and "exists; --overwrite replaces it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_main([str(path), str(tmp_path / "x.onnx"), "--precision", "bf16"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no bf16 kernels" in err and not (tmp_path / "x.onnx").exists()


def test_a_graph_that_fails_its_check_leaves_no_file(tmp_path):
    net = random_net(FAMILIES["classical"])
    with pytest.raises(ExportError, match="differs from PyTorch at .*nothing was written"):
        export_onnx(net, tmp_path / "m.onnx", tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []


def test_fp16_graph_is_verified_and_keeps_float32_io(tmp_path):
    net = random_net(FAMILIES["classical"])
    report = export_onnx(net, tmp_path / "h.onnx", precision="fp16")
    assert 0 < report.max_diff <= 2e-2 and 0 < report.activation_peak < 65504
    s = ort.InferenceSession(str(tmp_path / "h.onnx"), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].type == s.get_outputs()[0].type == "tensor(float)"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(tmp_path / "h.onnx")).graph.initializer)
    r = Restorer(str(tmp_path / "h.onnx"), device="cpu")
    assert r.precision == "fp16"
    with pytest.raises(SettingError, match="h.onnx is an fp16 graph; export it again with --precision fp32"):
        Restorer(str(tmp_path / "h.onnx"), device="cpu", precision="fp32")


def test_restorer_runs_a_graph_with_tiles_alpha_and_16_bit(tmp_path):
    """The engine's tiles, blending, alpha and 16-bit handling are the same for a graph as for the network."""
    net = random_net(FAMILIES["classical"])
    export_onnx(net, tmp_path / "m.onnx")
    rgb = photo("astronaut")[100:160:, 180:250].astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 40000, np.uint16)])
    for tile in (None, 24):
        a = Restorer(str(tmp_path / "m.onnx"), device="cpu", tile=tile, tile_overlap=8).restore(rgba)
        b = Restorer(net, device="cpu", tile=tile, tile_overlap=8, precision="fp32").restore(rgba)
        assert a.dtype == np.uint16 and a.shape == (120, 140, 4)
        # The graph clamps to [0, 1] before the engine blends tiles and channels: a random network's few
        # out-of-range values differ by a little (at most 67 of 65535 here); everything else is exact.
        assert psnr(a / 257, b / 257) >= 70 and np.mean(a != b) < 0.01


def test_fixed_size_graph_in_the_engine_tiles_at_its_size(tmp_path):
    net = random_net(FAMILIES["classical"])
    export_onnx(net, tmp_path / "f.onnx", fixed_size=(32, 32))
    r = Restorer(str(tmp_path / "f.onnx"), device="cpu")
    assert r.tile == 32
    image = photo("coffee")[:70, :90]
    out = r.restore(image)
    ref = Restorer(net, device="cpu", tile=32, tile_overlap=r.tile_overlap, precision="fp32").restore(image)
    assert out.shape == (140, 180, 3) and np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def test_upscale_with_a_graph_gives_the_checkpoints_images(ckpt, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(name)[:48, :64]).save(src / f"{name}.png")
    assert export_main([str(ckpt), str(tmp_path / "m.onnx")]) == 0
    assert upscale_main([str(src), "-o", str(tmp_path / "onnx"), "--model", str(tmp_path / "m.onnx")]) == 0
    assert upscale_main([str(src), "-o", str(tmp_path / "pth"), "--model", str(ckpt), "--precision", "fp32",
                         "--device", "cpu"]) == 0
    for name in ("astronaut", "coffee", "chelsea"):
        a, b = (np.asarray(Image.open(tmp_path / d / f"{name}.png")) for d in ("onnx", "pth"))
        assert a.shape == b.shape == (96, 128, 3) and psnr(a, b) >= 50
    capsys.readouterr()


def test_evaluate_scores_a_graph_as_its_checkpoint(ckpt, tmp_path):
    from swinir_app.protocol.evaluation import evaluate
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("astronaut", "chelsea"):
        Image.fromarray(photo(name)[:96, :128]).save(gt / f"{name}.png")
    export_onnx(str(ckpt), tmp_path / "m.onnx")
    a = evaluate(str(tmp_path / "m.onnx"), gt, progress=False, precision="auto")
    b = evaluate(str(ckpt), gt, progress=False, device="cpu")
    assert abs(a.summary["psnr"] - b.summary["psnr"]) < 0.01 and a.protocol.task == "sr"


def foreign_graph(path, rank: int = 4, metadata: bool = False):
    """A valid ONNX graph that is not ours: an Identity, optionally with our metadata key."""
    from onnx import TensorProto, helper
    shape = ["b", 3, "h", "w"][:rank]
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    if metadata:
        m.metadata_props.add(key="swinir_app.config", value=json.dumps(FAMILIES["denoise"].to_dict()))
    onnx.save(m, str(path))


def test_corrupt_and_foreign_graphs_get_one_line(tmp_path, capsys):
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07not a protobuf at all")
    foreign_graph(tmp_path / "foreign.onnx")
    foreign_graph(tmp_path / "rank3.onnx", rank=3, metadata=True)
    expected = {"corrupt.onnx": "ONNX Runtime cannot load it", "foreign.onnx": "without swinir_app metadata",
                "rank3.onnx": "its input has rank 3"}
    for name, reason in expected.items():
        with pytest.raises(ModelLoadError, match=reason):
            load_model(tmp_path / name)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for name, reason in expected.items():
        code = upscale_main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and name in err and reason in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_web_app_runs_a_graph_from_its_models_folder(ckpt, tmp_path, monkeypatch):
    import threading

    from swinir_app.webui.service import AppConfig, RunSettings, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    models = tmp_path / "weights"
    models.mkdir()
    export_onnx(str(ckpt), models / "tiny.onnx")
    Image.fromarray(photo("coffee")[:40, :56]).save(tmp_path / "small.png")
    app = WebApp(AppConfig(model=str(ckpt), device="cpu"))
    assert "tiny.onnx" in app.catalogue.files  # offered on the page, and allowed by the models-folder policy
    r = app.restore_file(str(tmp_path / "small.png"), RunSettings("tiny.onnx"), threading.Event())
    ref = Restorer(str(ckpt), device="cpu", precision="fp32").restore(photo("coffee")[:40, :56])
    assert r.output.shape == (80, 112, 3) and psnr(r.output, ref) >= 50


def toy_graph(path, scale: int = 4, declared: int = 4, loop: bool = False, nan: bool = False):
    """A graph with our metadata declaring x``declared`` that upscales by ``scale`` (nearest); with ``loop``,
    a Loop of 2**62 iterations runs first (it never ends on its own); with ``nan``, its output is all NaN."""
    from onnx import TensorProto as T, helper as oh
    nodes, src, inits = [], "lq", [oh.make_tensor("scales", T.FLOAT, [4], [1, 1, scale, scale])]
    if loop:
        body = oh.make_graph([oh.make_node("Identity", ["c"], ["c_out"]), oh.make_node("Add", ["v", "one"], ["v_out"])],
                             "body", [oh.make_tensor_value_info("i", T.INT64, []),
                                      oh.make_tensor_value_info("c", T.BOOL, []),
                                      oh.make_tensor_value_info("v", T.FLOAT, [])],
                             [oh.make_tensor_value_info("c_out", T.BOOL, []),
                              oh.make_tensor_value_info("v_out", T.FLOAT, [])],
                             [oh.make_tensor("one", T.FLOAT, [], [1.0])])
        nodes += [oh.make_node("Loop", ["trips", "cond", "zero"], ["count"], body=body),
                  oh.make_node("Mul", ["count", "zero"], ["nothing"]), oh.make_node("Add", ["lq", "nothing"], ["x"])]
        inits += [oh.make_tensor("trips", T.INT64, [], [2 ** 62]), oh.make_tensor("cond", T.BOOL, [], [True]),
                  oh.make_tensor("zero", T.FLOAT, [], [0.0])]
        src = "x"
    if nan:
        nodes.append(oh.make_node("Mul", [src, "nan"], ["x_nan"]))
        inits.append(oh.make_tensor("nan", T.FLOAT, [], [float("nan")]))
        src = "x_nan"
    nodes.append(oh.make_node("Resize", [src, "", "scales"], ["output"], mode="nearest"))
    g = oh.make_graph(nodes, "toy", [oh.make_tensor_value_info("lq", T.FLOAT, ["b", 3, "h", "w"])],
                      [oh.make_tensor_value_info("output", T.FLOAT, ["b", 3, "H", "W"])], inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    config = FAMILIES["real-world"].replace(upscale=declared)
    m.metadata_props.add(key="swinir_app.config", value=json.dumps(config.to_dict() | {"arch": config.arch}))
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def test_a_graph_that_does_not_upscale_as_declared_or_outputs_nan_is_refused_in_one_line(tmp_path, capsys):
    toy_graph(tmp_path / "x4.onnx", scale=4)
    toy_graph(tmp_path / "fake_x4.onnx", scale=1)  # returns the input's size, says x4
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(load_model(tmp_path / "x4.onnx")(x), x.repeat_interleave(4, 2).repeat_interleave(4, 3))
    Image.fromarray(photo("coffee")[:8, :8]).save(tmp_path / "a.png")
    code = upscale_main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model",
                         str(tmp_path / "fake_x4.onnx")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert "a.png" in errors[0] and "fake_x4.onnx returned 1x3x8x8" in errors[0] and "declares x4" in errors[0]
    assert not (tmp_path / "out" / "a.png").exists()
    toy_graph(tmp_path / "nan.onnx", nan=True)  # the right shape, all NaN: it would be written black
    code = upscale_main([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nan.onnx")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "a.png" in errors[0] and "nan.onnx" in errors[0] \
        and "NaN or Inf" in errors[0]
    assert not (tmp_path / "out" / "a.png").exists()


def test_a_looping_graph_stops_on_cancel(tmp_path):
    import threading
    import time
    toy_graph(tmp_path / "loop.onnx", loop=True)
    restorer = Restorer(str(tmp_path / "loop.onnx"), device="cpu")
    pressed = threading.Event()
    threading.Timer(0.5, pressed.set).start()

    class Cancelled(Exception):
        pass

    def cancel():
        if pressed.is_set():
            raise Cancelled

    start = time.perf_counter()
    with pytest.raises(Cancelled):
        restorer.restore(np.zeros((8, 8, 3), np.uint8), cancel=cancel)
    assert time.perf_counter() - start < 3
    for worker in [t for t in threading.enumerate() if t.name == "onnxruntime"]:
        worker.join(2)
        assert not worker.is_alive()  # the graph's run was terminated too, not left looping


def test_ctrl_c_stops_a_looping_graph_with_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO
    toy_graph(tmp_path / "loop.onnx", loop=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "swinir_app.upscale", str(tmp_path / "a.png"), "-o", str(out),
                             "--model", str(tmp_path / "loop.onnx"), "--device", "cpu"], stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.time() + 120
    while time.time() < deadline and not out.exists() and proc.poll() is None:  # made once the model is loaded
        time.sleep(0.05)
    time.sleep(1.0)  # the graph is running now
    assert proc.poll() is None, proc.communicate()[1]  # still looping
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()  # never left looping
        proc.communicate()
        pytest.fail("Ctrl-C did not stop the run within 5 s")
    assert proc.returncode == 130 and [line for line in err.splitlines() if line.strip()] == [
        "interrupted: finished outputs are complete; no partial files were left"], err


def test_fp16_overflow_is_named_and_fp32_is_offered(tmp_path):
    net = random_net(FAMILIES["classical"])
    with torch.no_grad():  # an MLP whose activations pass fp16's 65504; fine in fp32
        block = net.layers[0].residual_group.blocks[0]
        block.mlp.fc1.weight.mul_(3000)
        block.mlp.fc2.weight.mul_(1000)
    with pytest.raises(ExportError) as e:
        export_onnx(net, tmp_path / "h.onnx", precision="fp16")
    assert "fp16 overflowed" in str(e.value) and "--precision fp32 works" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    export_onnx(net, tmp_path / "f.onnx")  # as the message says


def test_dat_exports_from_an_official_style_file_through_the_cli(tmp_path, capsys):
    """A params-only DAT file (config inferred from its tensors) -> swinir-app export -> a graph the engine's
    ONNX backend runs, equal to PyTorch at a size that needs padding to the 8-pixel windows."""
    net = random_net(FAMILIES["dat"], seed=2)
    torch.save({"params": net.state_dict()}, tmp_path / "DAT_tiny_x2.pth")
    assert export_main([str(tmp_path / "DAT_tiny_x2.pth"), str(tmp_path / "dat.onnx")]) == 0
    assert "DAT sr x2" in capsys.readouterr().out
    graph = OnnxModel(tmp_path / "dat.onnx")
    assert graph.config.arch == "dat" and graph.config.split_size == (4, 8)
    x = torch.rand(1, 3, 21, 26)
    assert np.abs(graph(x).numpy() - torch_run(net, x)).max() <= 1e-4
    # fp16: the LayerNorms after fp16 linears (the gate's, the position-bias MLP's) take fp32, as under autocast
    report = export_onnx(net, tmp_path / "dat16.onnx", precision="fp16")
    assert report.max_diff <= 2e-2 and len(report.checks) == 4


# Other architectures, through spandrel: the network exported as spandrel calls it, the padding done by OnnxModel.
SPANDREL_EXPORTS = {"Compact": {}, "ESRGAN-new": {}, "SPAN": {},
                    "DRCT": {"batch": 1}}  # multiple of 16: the runner pads; DRCT's trace freezes the batch


def _spandrel_file(tmp_path, name):
    pytest.importorskip("spandrel")
    from test_spandrel import CASES
    torch.manual_seed(0)
    path = tmp_path / f"4x-{name}.pth"
    torch.save(CASES[name][0](), path)
    return path


@pytest.mark.parametrize("name", SPANDREL_EXPORTS)
def test_other_architectures_export_and_run_as_in_pytorch(tmp_path, name):
    """A spandrel model exports, checks out against PyTorch, loads back with its capabilities as the graph's,
    and gives the PyTorch model's output at 29x37 (which needs padding where the network has a multiple),
    directly and through the engine."""
    from swinir_app.deploy import check_input
    path = _spandrel_file(tmp_path, name)
    model = load_model(path)
    report = export_onnx(path, tmp_path / "m.onnx", **SPANDREL_EXPORTS[name])
    assert report.config is None and report.architecture == model.architecture and report.max_diff <= 1e-4
    meta = graph_info(tmp_path / "m.onnx")
    assert "swinir_app.config" not in meta and meta["architecture"] == model.architecture
    assert meta["source"] == path.name and meta["name"] == path.stem
    graph = load_model(tmp_path / "m.onnx")
    assert isinstance(graph, OnnxModel) and graph.config is None and graph.window_size is None
    caps, want = graph.capabilities, model.capabilities
    assert caps.arch == f"ONNX graph of {want.arch}" and caps.own_precision == "fp32"
    assert (caps.task, caps.scale, caps.in_chans, caps.out_chans, caps.size_multiple, caps.tiling) == \
        (want.task, want.scale, want.in_chans, want.out_chans, want.size_multiple, want.tiling)
    x = check_input(1, 3, 29, 37, seed=5)
    with torch.inference_mode():
        ref = model(x).clamp(0, 1).numpy()
    got = graph(x).numpy()
    assert got.shape == ref.shape == (1, 3, 29 * caps.scale, 37 * caps.scale)
    assert np.abs(got - ref).max() <= 1e-4
    image = photo("coffee")[100:129, 200:237]
    a = Restorer(str(tmp_path / "m.onnx"), device="cpu").restore(image)
    b = Restorer(model, device="cpu", precision="fp32").restore(image)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_another_architecture_through_the_cli(tmp_path, capsys):
    path = _spandrel_file(tmp_path, "Compact")
    assert export_main([str(path), str(tmp_path / "c.onnx"), "--precision", "fp16"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote ") and "RealESRGAN Compact sr x2, fp16" in out and "checked 2x3x" in err
    declared = json.loads(graph_info(tmp_path / "c.onnx")["swinir_app.capabilities"])
    assert declared["arch"] == "RealESRGAN Compact" and declared["scale"] == 2 and declared["precision"] == "fp16"
    assert {"size_multiple", "minimum", "square", "tiling", "in_chans", "out_chans", "task"} <= set(declared)
    assert export_main([str(path), str(tmp_path / "f.onnx"), "--fixed-size", "24", "32", "--batch", "1"]) == 0
    graph = load_model(tmp_path / "f.onnx")
    assert graph.fixed_size == (24, 32) and graph.batch == 1 and graph.capabilities.fixed_size == (24, 32)
    capsys.readouterr()


def test_an_untraceable_architecture_is_refused_in_one_line(tmp_path, capfd):
    """ATD sorts tokens (torch.onnx has no Sort with an out parameter): one line naming it, no traceback, no
    graph dump from the exporter's C++ side, and no file."""
    path = _spandrel_file(tmp_path, "ATD")
    with pytest.raises(SystemExit) as e:
        export_main([str(path), str(tmp_path / "a.onnx")])
    out, err = capfd.readouterr()
    assert e.value.code == 2 and out == ""
    lines = [line for line in err.splitlines() if not line.endswith(" ...")]  # progress lines end with ...
    assert len(lines) == 1 and lines[0].startswith("error: ATD cannot be exported to ONNX: torch.onnx cannot trace")
    assert "Sort" in lines[0] and not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".export-*"))


def test_a_graph_with_shapes_frozen_by_the_tracer_is_refused(tmp_path):
    """RealPLKSR's DySample computes its sampling grid from the input's size: traced, that size is a constant,
    so the graph is wrong at every other size. The checks find it; a fixed-size graph of it is right."""
    path = _spandrel_file(tmp_path, "RealPLKSR-DySample")
    with pytest.raises(ExportError, match="RealPLKSR has size-dependent code that the tracer froze"):
        export_onnx(path, tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()
    assert export_onnx(path, tmp_path / "d.onnx", fixed_size=(24, 24)).max_diff <= 1e-4
