"""--precision int8: the transformer linears in int8 on a CPU (network/int8.py), its refusals, and the int8 export."""
import logging
import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import photo
from swinir_app import Restorer, SwinIRConfig, build_network
from swinir_app.deploy import export_onnx
from swinir_app.errors import SettingError
from swinir_app.network import hardware
from swinir_app.network.capabilities import Capabilities
from swinir_app.network.int8 import INT8_LINEARS, Int8Linear, quantize_activation, quantize_linears, quantize_weight
from swinir_app.precision import PRECISIONS, auto_precision, resolve_precision
from swinir_app.upscale import main as upscale_main
from swinir_app.zoo import load_model

pytestmark = pytest.mark.skipif(not hardware.cpu().int8, reason=f"no oneDNN int8 kernels on this CPU "
                                                                f"({hardware.cpu().describe()})")

TINY = dict(embed_dim=24, depths=(2, 2), num_heads=(2, 2), mlp_ratio=2.0, drop_path_rate=0.0)
CONFIGS = {
    "swinir": SwinIRConfig(upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle", **TINY),
    "swin2sr": SwinIRConfig(arch="swin2sr", upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle", **TINY),
    "hat": SwinIRConfig(arch="hat", upscale=2, img_size=64, window_size=8, upsampler="pixelshuffle", compress_ratio=3,
                        squeeze_factor=3, **TINY),
    "dat": SwinIRConfig(arch="dat", upscale=2, img_size=32, split_size=(4, 8), embed_dim=32, depths=(2,),
                        num_heads=(4,), expansion_factor=2.0, upsampler="pixelshuffledirect", drop_path_rate=0.0),
}


def random_net(config: SwinIRConfig, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = build_network(config).eval()
    with torch.no_grad():  # biases off zero, so that a dropped one shows
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return net


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


def crop(h: int = 40, w: int = 48) -> torch.Tensor:
    return torch.from_numpy(photo("astronaut")[100:100 + h, 180:180 + w].copy()).permute(2, 0, 1)[None].float() / 255


def test_a_linear_is_int8_arithmetic_exactly():
    """One Int8Linear against the same sum done by hand in float64 from its int8 weights and uint8 input: the
    kernel really multiplies int8 by uint8 (and fuses bias and residual)."""
    torch.manual_seed(0)
    layer = nn.Linear(48, 40)
    x, residual = torch.randn(3, 50, 48), torch.randn(3, 50, 40)
    q = quantize_linears(nn.ModuleDict({"fc1": layer}))["fc1"]
    assert isinstance(q, Int8Linear) and type(layer) is nn.Linear  # a converted copy
    w8, ws = quantize_weight(layer.weight.detach(), 127 if hardware.cpu().vnni else 63)
    assert w8.dtype == torch.int8 and w8.abs().max() <= 127
    xq, s, zp = quantize_activation(x.reshape(-1, 48))
    assert xq.dtype == torch.uint8 and (s * (xq.double() - zp) - x.reshape(-1, 48)).abs().max() <= s / 2 + 1e-6
    ref = (s * (xq.double() - zp)) @ (w8.double() * ws.double()[:, None]).T + layer.bias.double()
    with torch.inference_mode():
        got = q(x).reshape(-1, 40).double()
        fused = q.run(x, residual=residual).reshape(-1, 40).double()
    assert (got - ref).abs().max() < 1e-4
    assert (fused - ref - residual.reshape(-1, 40).double()).abs().max() < 1e-4
    assert (got - layer(x).detach().reshape(-1, 40).double()).abs().max() > 1e-4  # not fp32 in disguise


@pytest.mark.parametrize("arch", CONFIGS)
def test_every_family_in_int8_is_close_to_fp32(arch):
    net = random_net(CONFIGS[arch])
    q = quantize_linears(net)
    linears = [m for m in q.modules() if isinstance(m, Int8Linear)]
    names = {n.rsplit(".", 1)[-1] for n, m in q.named_modules() if isinstance(m, Int8Linear)}
    assert linears and names <= set(INT8_LINEARS) and not any(isinstance(m, Int8Linear) for m in net.modules())
    left = [n for n, m in q.named_modules() if type(m) is nn.Linear]  # only the position-bias MLPs stay fp32
    assert all("cpb_mlp" in n or ".pos" in n for n in left), left
    assert q.state_dict().keys() == net.state_dict().keys()
    x = crop(32, 32)
    with torch.inference_mode():
        ref, got = net(x), q(x)
    assert got.shape == ref.shape and torch.isfinite(got).all()
    assert (got - ref).abs().max() < 0.05 and psnr(got, ref) > 40, (float((got - ref).abs().max()), psnr(got, ref))
    assert not torch.equal(got, ref)
    if arch == "swinir":  # the rest is the same code for every family
        with torch.no_grad(), hardware.override(vnni=False):  # the 7-bit weights of a CPU without VNNI
            assert psnr(q(x), ref) > 35
        with torch.enable_grad():  # training and tracing see the fp32 linears underneath
            assert torch.allclose(q(x), ref, atol=1e-5)


def test_bundled_x4_in_int8_through_the_restorer():
    image = photo("astronaut")[80:112, 160:200]
    model = load_model("bundled-x4")
    threads = torch.get_num_threads()
    try:  # one thread: two would spin against each other on a busy machine
        fp32 = Restorer(model, precision="fp32", device="cpu", threads=1).restore(image)
        restorer = Restorer(model, precision="int8", device="cpu", threads=1)
        assert restorer.precision == "int8" and any(isinstance(m, Int8Linear) for m in restorer.model.modules())
        assert not any(isinstance(m, Int8Linear) for m in model.modules())  # the caller's model is left as it was
        int8 = restorer.restore(image)
        # A model already converted runs as it is: not copied, its packed weights kept (the web app's cache).
        again = Restorer(restorer.model, precision="int8", device="cpu", threads=1)
        assert again.model is restorer.model and quantize_linears(restorer.model) is restorer.model
        np.testing.assert_array_equal(again.restore(image), int8)
    finally:
        torch.set_num_threads(threads)
    assert int8.shape == fp32.shape == (128, 160, 3)
    diff = int8.astype(float) - fp32.astype(float)
    assert 10 * np.log10(255 ** 2 / (diff ** 2).mean()) > 45 and np.abs(diff).max() <= 12


def test_int8_is_refused_in_one_line_where_it_cannot_run_and_never_picked_by_auto():
    with pytest.raises(SettingError) as e:
        resolve_precision("int8", "cuda")
    assert "\n" not in str(e.value) and "CPUs only" in str(e.value)
    with hardware.override(int8=False):
        with pytest.raises(SettingError) as e:
            resolve_precision("int8", "cpu")
        assert "\n" not in str(e.value) and "int8" in str(e.value)
        with pytest.raises(RuntimeError):
            quantize_linears(random_net(CONFIGS["swinir"]))
    assert "int8" in PRECISIONS and resolve_precision("int8", "cpu") == "int8"
    fp32_only = Capabilities(arch="other", task="sr", scale=2, in_chans=3, out_chans=3, bytes_per_pixel=1,
                             precisions=("fp32", "bf16"))
    with pytest.raises(SettingError, match="does not run in int8"):
        resolve_precision("int8", "cpu", fp32_only)
    wide = random_net(CONFIGS["swinir"]).capabilities
    for caps in (None, wide, fp32_only):
        for amx in (False, True):
            with hardware.override(amx=amx, bf16=amx):
                assert auto_precision("cpu", caps) != "int8"
                assert resolve_precision("auto", "cpu", caps) != "int8"
    # An exported int8 graph runs in ONNX Runtime's CPU kernels: a GPU is refused in one line, auto or not.
    graph = Capabilities(arch="onnx", task="sr", scale=2, in_chans=3, out_chans=3, bytes_per_pixel=1,
                         precisions=("int8",), own_precision="int8")
    assert resolve_precision("auto", "cpu", graph) == "int8"
    for precision in ("auto", "int8"):
        with pytest.raises(SettingError, match="int8 graph, which runs on CPUs only") as e:
            resolve_precision(precision, "cuda", graph)
        assert "\n" not in str(e.value) and "--device cpu" in e.value.flag()
    with pytest.raises(ValueError, match="fp32 model on the CPU"):
        quantize_linears(random_net(CONFIGS["swinir"]).to(torch.bfloat16))


def test_int8_export_is_verified_and_runs_in_the_engine_and_the_cli(tmp_path, capsys, caplog):
    net = random_net(CONFIGS["swinir"])
    path = tmp_path / "m8.onnx"
    with caplog.at_level(logging.INFO):
        report = export_onnx(net, path, precision="int8")
    assert not [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname]  # its advice is not ours
    assert report.precision == "int8" and report.checks and report.max_diff < 0.05
    assert all(c.psnr > 40 for c in report.checks)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops, ops
    restorer = Restorer(str(path), device="cpu")
    assert restorer.precision == "int8"
    x = crop()
    with torch.inference_mode():
        ref = net(x).clamp(0, 1)
    assert psnr(restorer.restore_tensor(x), ref) > 40

    src = tmp_path / "in.png"
    Image.fromarray(photo("coffee")[:24, :32]).save(src)
    assert upscale_main([str(src), "-o", str(tmp_path / "out"), "--model", "bundled-x4", "--precision", "int8"]) == 0
    assert Image.open(tmp_path / "out" / "in.png").size == (128, 96)
    capsys.readouterr()
    assert upscale_main([str(src), "-o", str(tmp_path / "bad"), "--model", str(path), "--precision", "fp32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "int8 graph" in err and "--precision" in err, err
