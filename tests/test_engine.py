"""The Restorer: channels, depths, tiling without seams, precision, self-ensemble, memory retries."""

import numpy as np
import pytest
import torch

from conftest import native_bf16, photo
from oracle import small
from swinir_app import Restorer, SwinIR, SwinIRConfig
from swinir_app.network.family import capabilities_of
from swinir_app.engine import SettingError, auto_precision, blend_ramp, resolve_device, tile_starts
from swinir_app.network import hardware


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


@pytest.fixture(scope="module")
def lr_photo():
    return photo("coffee")[100:196:, 150:278]  # 96 x 128 crop of a real photo


def direct(model, img_u8):
    x = torch.from_numpy(img_u8).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(y * 255).astype(np.uint8)


def test_whole_image_equals_direct_model(trained_x2, lr_photo):
    out = Restorer(trained_x2, device="cpu").restore(lr_photo)
    assert out.dtype == np.uint8 and out.shape == (192, 256, 3)
    assert np.array_equal(out, direct(trained_x2, lr_photo))


def test_tiles_are_seamless(trained_x2, lr_photo):
    whole = Restorer(trained_x2, device="cpu").restore(lr_photo)
    tiled = Restorer(trained_x2, tile=48, tile_overlap=32, device="cpu").restore(lr_photo)
    hard = Restorer(trained_x2, tile=48, tile_overlap=0, device="cpu").restore(lr_photo)
    assert psnr(tiled, whole) >= 45.0
    assert psnr(hard, whole) < psnr(tiled, whole)  # the blend is what removes the seams
    # Tiles must be whole windows: 45 rounds up to 48 and gives the same result.
    assert np.array_equal(Restorer(trained_x2, tile=45, tile_overlap=32, device="cpu").restore(lr_photo), tiled)


def test_restorer_made_and_used_under_inference_mode(lr_photo):
    # How Python users often call it: the model is then loaded under inference_mode too.
    want = Restorer("bundled-x4", device="cpu").restore(lr_photo)
    with torch.inference_mode():
        got = Restorer("bundled-x4", device="cpu").restore(lr_photo)
    assert np.array_equal(got, want)


def test_tile_grid_and_weights():
    assert tile_starts(100, 48, 16) == [0, 32, 52]
    assert tile_starts(40, 48, 16) == [0]
    w = blend_ramp(64, 32, at_start=False, at_end=False)
    assert w[0] < 1e-3 and w[31] == 1 and w[-1] < 1e-3
    # Opposite fades over one overlap sum to one.
    a, b = blend_ramp(64, 32, True, False), blend_ramp(64, 32, False, True)
    assert torch.allclose(a[32:] + b[:32], torch.ones(32), atol=1e-5)


def test_16bit_stays_16bit(trained_x2, lr_photo):
    noise = np.random.default_rng(0).integers(0, 257, lr_photo.shape, dtype=np.uint16)
    img16 = lr_photo.astype(np.uint16) * 257 + noise
    out = Restorer(trained_x2, device="cpu").restore(img16)
    assert out.dtype == np.uint16 and out.shape == (192, 256, 3)
    x = torch.from_numpy(img16.astype(np.float32) / 65535).permute(2, 0, 1)[None]
    with torch.no_grad():
        ref = np.round(trained_x2(x)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 65535).astype(np.uint16)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert np.mean(out % 257 != 0) > 0.9  # not an 8-bit image in disguise


def test_float_in_float_out(trained_x2, lr_photo):
    out = Restorer(trained_x2, device="cpu").restore(lr_photo.astype(np.float32) / 255)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_gray_and_alpha(trained_x2, lr_photo):
    r = Restorer(trained_x2, device="cpu")
    gray = lr_photo.mean(axis=2).astype(np.uint8)
    out = r.restore(gray)
    assert out.shape == (192, 256)
    x3 = torch.from_numpy(gray.astype(np.float32) / 255)[None, None].repeat(1, 3, 1, 1)
    ref = np.round(r.restore_tensor(x3)[0].mean(0).clamp(0, 1).numpy() * 255)
    assert np.abs(out - ref).max() <= 1.0

    alpha = np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1))
    rgba = np.dstack([lr_photo, alpha])
    out = r.restore(rgba)
    assert out.shape == (192, 256, 4)
    assert np.array_equal(out[:, :, :3], r.restore(lr_photo))
    assert np.abs(out[:, :, 3].astype(int) - np.tile(np.linspace(0, 255, 256), (192, 1))).max() <= 3  # bicubic
    model = Restorer(trained_x2, device="cpu", alpha="model").restore(rgba)
    assert np.array_equal(model[:, :, :3], out[:, :, :3])
    assert np.array_equal(model[:, :, 3], r.restore(alpha))  # alpha="model": the alpha as a gray image

    la = np.dstack([gray, alpha])
    assert r.restore(la).shape == (192, 256, 2)


def test_color_image_in_gray_model(lr_photo):
    model = SwinIR(small("gray-dn")).eval()
    out = Restorer(model, device="cpu").restore(lr_photo)
    assert out.shape == lr_photo.shape and out.dtype == np.uint8


def test_tiny_images(trained_x2):
    r = Restorer(trained_x2, tile=16, device="cpu")
    for shape in [(1, 1, 3), (3, 5, 3), (1, 40, 3)]:
        assert r.restore(np.zeros(shape, np.uint8)).shape == (shape[0] * 2, shape[1] * 2, 3)


@native_bf16
def test_bf16_on_cpu_close_to_fp32(trained_x2, lr_photo):
    fp32 = Restorer(trained_x2, precision="fp32", device="cpu").restore(lr_photo.astype(np.float32) / 255)
    bf16 = Restorer(trained_x2, precision="bf16", device="cpu").restore(lr_photo.astype(np.float32) / 255)
    assert psnr(bf16, fp32, peak=1.0) >= 40.0


def test_fp16_on_cpu_is_refused_in_one_line(trained_x2):
    with pytest.raises(SettingError, match="fp16 is for GPUs") as e:
        Restorer(trained_x2, precision="fp16", device="cpu")
    assert "\n" not in str(e.value) and e.value.flag().startswith("--precision fp16: ")


def test_bf16_without_native_bf16_is_refused_before_loading(trained_x2, tmp_path):
    with hardware.override(bf16=False, amx=False):
        with pytest.raises(SettingError, match="would emulate bf16") as e:
            Restorer(trained_x2, precision="bf16", device="cpu")
        assert "use fp32 or auto" in str(e.value) and "\n" not in str(e.value)
        # The setting is the error, not the model: nothing is loaded, even a missing file.
        with pytest.raises(SettingError):
            Restorer(str(tmp_path / "missing.pth"), precision="bf16", device="cpu")
        assert Restorer(trained_x2, precision="auto", device="cpu").precision == "fp32"


def test_auto_precision_follows_the_hardware_and_the_model():
    wide, narrow = (capabilities_of(SwinIRConfig.preset(p)) for p in ("classical-x4", "lightweight-x4"))
    cpu = torch.device("cpu")
    with hardware.override(bf16=True, amx=True):  # an AMX CPU: bf16 where it pays (README, Performance)
        assert auto_precision(cpu, wide) == "bf16" and auto_precision(cpu, narrow) == "fp32"
    with hardware.override(bf16=True, amx=False):  # AVX512-BF16 without AMX: not measured faster
        assert auto_precision(cpu, wide) == "fp32"
    with hardware.override(bf16=False, amx=False):  # AVX2
        assert auto_precision(cpu, wide) == "fp32"


def test_device_errors_name_the_device():
    if not torch.cuda.is_available():
        with pytest.raises(SettingError, match="CUDA is not available on this machine") as e:
            resolve_device("cuda")
        assert e.value.flag() == "--device cuda: CUDA is not available on this machine"
    with pytest.raises(SettingError, match="not a device"):
        resolve_device("gpu")
    with pytest.raises(SettingError, match="tile"):
        Restorer(SwinIR(small("lightweight-x2")), tile=0, device="cpu")


@native_bf16
def test_non_finite_half_precision_tile_is_redone_in_fp32(trained_x2, lr_photo):
    # Simulate a half-precision overflow in the real model: poison its output under autocast only.
    def poison(module, inputs, output):
        return output.fill_(float("nan")) if torch.is_autocast_enabled("cpu") else output

    handle = trained_x2.layers[0].register_forward_hook(poison)
    try:
        with pytest.warns(RuntimeWarning, match="redoing it in fp32"):
            out = Restorer(trained_x2, precision="bf16", device="cpu").restore(lr_photo)
    finally:
        handle.remove()
    assert np.array_equal(out, Restorer(trained_x2, precision="fp32", device="cpu").restore(lr_photo))


def test_auto_tile_retries_smaller_on_out_of_memory(trained_x2, lr_photo):
    # Simulate a device that cannot hold more than 40x40 input pixels.
    def limit(module, inputs):
        if inputs[0].shape[-1] * inputs[0].shape[-2] > 40 * 40:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = trained_x2.register_forward_pre_hook(limit)
    try:
        r = Restorer(trained_x2, tile="auto", device="cpu")
        with pytest.warns(RuntimeWarning, match="out of memory"):
            out = r.restore(lr_photo)
    finally:
        handle.remove()
    assert r._auto_tile <= 40
    whole = Restorer(trained_x2, device="cpu").restore(lr_photo)
    assert psnr(out, whole) >= 40.0
    assert Restorer(trained_x2, tile="auto", device="cpu").auto_tile_size() >= 64


def test_self_ensemble_is_the_mean_of_8_transforms(trained_x2, lr_photo):
    x = torch.from_numpy(lr_photo[:40, :48].astype(np.float32) / 255).permute(2, 0, 1)[None]
    got = Restorer(trained_x2, self_ensemble=True, device="cpu").restore_tensor(x)
    outs = []
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                t = torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))
                y = torch.rot90(trained_x2(t), -k, (-2, -1))
                outs.append(y.flip(-1) if flip else y)
    assert torch.allclose(got, torch.stack(outs).mean(0), atol=1e-5)


def test_bad_arguments(trained_x2):
    with pytest.raises(ValueError):
        Restorer(trained_x2, tile=-3)
    with pytest.raises(ValueError):
        Restorer(trained_x2, precision="int4")
    with pytest.raises(ValueError, match="shape"):
        Restorer(trained_x2, device="cpu").restore(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError):
        Restorer(trained_x2, device="cpu").restore(np.zeros((4, 4, 3), np.int32))


def _wrap_seam(y: np.ndarray, s: int) -> float:
    """The wrap seam of an x``s`` output (last to first column and row) over the mean step inside it at the same
    phase (across input-pixel boundaries, as the wrap step is): about 1 for an output that tiles."""
    y = y.astype(np.float64)
    seam = np.abs(y[:, 0] - y[:, -1]).mean() + np.abs(y[0] - y[-1]).mean()
    inside = np.abs(y[:, s::s] - y[:, s - 1:-1:s]).mean() + np.abs(y[s::s] - y[s - 1:-1:s]).mean()
    return seam / inside


def test_seamless_textures_stay_tileable():
    texture = np.tile(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8), (3, 3, 1))  # 48 x 48
    # What the texture's output is inside a tiling of it: the middle of a 2 x 2 tiling, moved back by half.
    truth = np.roll(Restorer("bundled-x4", device="cpu").restore(np.tile(texture, (2, 2, 1)))[96:288, 96:288],
                    (96, 96), axis=(0, 1))
    assert _wrap_seam(truth, 4) < 1.1
    assert _wrap_seam(Restorer("bundled-x4", device="cpu").restore(texture), 4) > 1.5  # reflected borders
    for tile in (None, 32):
        out = Restorer("bundled-x4", tile=tile, tile_overlap=8, device="cpu", seamless=True).restore(texture)
        assert _wrap_seam(out, 4) < 1.1, tile
        assert psnr(out, truth) > 40, tile


def test_seamless_for_another_architecture():
    pytest.importorskip("spandrel")
    from spandrel.architectures import Compact
    from swinir_app.spandrel_loader import load_spandrel
    from test_spandrel import _random
    model = load_spandrel(_random(Compact.Compact(num_feat=8, num_conv=16, upscale=2)), "compact")
    texture = np.tile(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8), (3, 3, 1))
    truth = Restorer(model, device="cpu").restore(np.tile(texture, (3, 3, 1)))[96:192, 96:192]
    assert not np.array_equal(Restorer(model, device="cpu").restore(texture), truth)
    for tile in (None, 32):
        out = Restorer(model, tile=tile, tile_overlap=8, device="cpu", seamless=True).restore(texture)
        assert np.abs(out.astype(int) - truth).max() <= 1 and _wrap_seam(out, 2) < 1.1, tile


def test_seamless_plan_counts_the_margins():
    r = Restorer("bundled-x4", tile=32, tile_overlap=8, device="cpu", seamless=True)
    assert r.plan(48, 48).count == 9  # 48 + 2 x 16 = 80 pixels: 3 x 3 tiles of 32
    assert Restorer("bundled-x4", tile=32, tile_overlap=8, device="cpu").plan(48, 48).count == 4


def test_alpha_through_the_model_beats_bicubic_on_a_cut_out():
    from PIL import Image, ImageDraw
    from swinir_app.protocol.degrade import bicubic_downscale
    mask = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(mask).polygon([(15, 100), (64, 10), (115, 105), (70, 80)], fill=255)
    hr, lq = bicubic_downscale(np.dstack([photo("astronaut")[:128, 100:228], np.array(mask)]), 4)
    got = {mode: Restorer("bundled-x4", device="cpu", alpha=mode).restore(lq) for mode in ("model", "bicubic")}
    assert psnr(got["model"][:, :, 3], hr[:, :, 3]) > psnr(got["bicubic"][:, :, 3], hr[:, :, 3]) + 1.5
    assert np.array_equal(got["model"][:, :, :3], got["bicubic"][:, :, :3])
    opaque = np.dstack([lq[:, :, :3], np.full(lq.shape[:2], 255, np.uint8)])
    assert (Restorer("bundled-x4", device="cpu", alpha="model").restore(opaque)[:, :, 3] == 255).all()  # not run
    with pytest.raises(SettingError, match="alpha 'nearest': must be bicubic or model"):
        Restorer("bundled-x4", device="cpu", alpha="nearest")
