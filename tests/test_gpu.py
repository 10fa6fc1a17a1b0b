"""The CUDA paths, on a GPU only: every test here is marked ``gpu`` and skipped without CUDA (conftest.py).

``scripts/gpu_check.sh`` runs them (``pytest -m gpu``) with the GPU benchmark table; see
docs/performance.md#gpu-check. On a CPU machine, tests/test_threads.py checks that they are collected and skip.
"""
import numpy as np
import pytest
import torch

from swinir_app import SwinIR, SwinIRConfig
from swinir_app.engine import Restorer
from swinir_app.precision import resolve_precision

pytestmark = pytest.mark.gpu


def small(preset: str = "lightweight-x2", seed: int = 0) -> SwinIR:
    torch.manual_seed(seed)
    config = SwinIRConfig.preset(preset).replace(depths=(2, 2), num_heads=(4, 4), embed_dim=32, drop_path_rate=0.0)
    return SwinIR(config).eval()


def image(h: int = 40, w: int = 52, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_cuda_fp32_matches_the_cpu():
    net, img = small(), image()
    on_cpu = Restorer(net, precision="fp32", device="cpu").restore(img)
    on_gpu = Restorer(small(), precision="fp32", device="cuda").restore(img)
    assert on_gpu.shape == on_cpu.shape
    assert np.abs(on_gpu.astype(int) - on_cpu.astype(int)).max() <= 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_run_on_cuda_close_to_fp32(precision):
    from swinir_app.errors import SettingError
    try:
        resolve_precision(precision, torch.device("cuda"))
    except SettingError as e:
        pytest.skip(f"{precision}: {e.reason}")
    torch.manual_seed(0)
    net = SwinIR(SwinIRConfig.preset("classical-x4")).cuda().eval()
    x = torch.rand(1, 3, 48, 48, device="cuda")
    with torch.inference_mode():
        want = net(x)
        with torch.autocast("cuda", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision]):
            got = net(x).float()
    assert torch.isfinite(got).all()
    assert (got - want).abs().max().item() < 5e-2


def test_auto_precision_on_cuda_is_a_half_precision():
    assert resolve_precision("auto", torch.device("cuda")) in ("bf16", "fp16")


def test_non_finite_fp16_tile_is_redone_in_fp32():
    net = small().cuda()

    def poison(module, inputs, output):  # a half-precision overflow, simulated under autocast only
        return output.fill_(float("nan")) if torch.is_autocast_enabled("cuda") else output

    img = image()
    handle = net.layers[0].register_forward_hook(poison)
    try:
        with pytest.warns(RuntimeWarning, match="redoing it in fp32"):
            out = Restorer(net, precision="fp16", device="cuda").restore(img)
    finally:
        handle.remove()
    assert np.array_equal(out, Restorer(net, precision="fp32", device="cuda").restore(img))


def test_tiled_on_cuda_reports_peak_memory():
    torch.cuda.reset_peak_memory_stats()
    out = Restorer(small(), tile=32, tile_overlap=8, precision="auto", device="cuda").restore(image(96, 80))
    assert out.shape == (192, 160, 3)
    assert torch.cuda.max_memory_allocated() > 0


def test_the_upscale_cli_on_cuda(tmp_path, ckpt):
    from PIL import Image

    from swinir_app.upscale import main
    Image.fromarray(image()).save(tmp_path / "in.png")
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(ckpt),
                 "--device", "cuda"]) == 0
    assert Image.open(tmp_path / "out" / "in.png").size == (104, 80)
