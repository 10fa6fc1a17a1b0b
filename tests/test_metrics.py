"""Metrics: agreement with basicsr on real photos, Y vs RGB, border crop, PSNR-B, LPIPS."""
import math
import urllib.error

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from helpers import make_lpips_home
from swinir_app._basicsr import calculate_psnr, calculate_ssim
from swinir_app.protocol.metrics import (LPIPS, LPIPSWeightsMissing, blocking_effect_factor, bt601_y, calculate_psnrb,
                                compute_metrics, lpips_backbone_file, to_uint8)

PHOTOS = ["astronaut", "chelsea", "coffee"]


def photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)()  # RGB uint8


def degrade(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """A realistic restoration error: blur plus a little noise, rounded to uint8."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (5, 5), 1.0).astype(np.float64) + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def y_by_hand(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y in 16-235, float64, straight from the standard's coefficients."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def psnr_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


# ---------------------------------------------------------------------------------------------
# PSNR / SSIM


@pytest.mark.parametrize("name", PHOTOS)
def test_agrees_with_basicsr_on_cv2_read_images(name):
    """basicsr called the way it was written for (BGR, as cv2 reads) gives our numbers to 1e-6 dB."""
    gt = photo(name)
    out = degrade(gt)
    ours = compute_metrics(out, gt, crop_border=4)
    gt_bgr, out_bgr = cv2.cvtColor(gt, cv2.COLOR_RGB2BGR), cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    assert ours["psnr_y"] == pytest.approx(calculate_psnr(out_bgr, gt_bgr, 4, test_y_channel=True), abs=1e-6)
    assert ours["ssim_y"] == pytest.approx(calculate_ssim(out_bgr, gt_bgr, 4, test_y_channel=True), abs=1e-9)
    assert ours["psnr"] == pytest.approx(calculate_psnr(out_bgr, gt_bgr, 4), abs=1e-6)
    assert ours["ssim"] == pytest.approx(calculate_ssim(out_bgr, gt_bgr, 4), abs=1e-9)
    assert list(ours) == ["psnr_y", "ssim_y", "psnr", "ssim"]


@pytest.mark.parametrize("name", PHOTOS)
def test_y_psnr_is_bt601_y_of_rgb(name):
    """Y-PSNR equals a hand computation from BT.601 on the RGB input; basicsr fed RGB would be wrong."""
    gt = photo(name)
    out = degrade(gt, seed=1)
    c = 3
    expected = psnr_by_hand(y_by_hand(out)[c:-c, c:-c], y_by_hand(gt)[c:-c, c:-c])
    ours = compute_metrics(out, gt, crop_border=c)
    assert ours["psnr_y"] == pytest.approx(expected, abs=1e-6)
    wrong_order = calculate_psnr(out, gt, c, test_y_channel=True)  # RGB given where BGR is expected
    assert abs(wrong_order - expected) > 0.01
    assert abs(ours["psnr_y"] - ours["psnr"]) > 0.5  # Y and RGB are different numbers


def test_y_channel_false_gives_rgb_only_and_gray_has_no_y():
    gt = photo("coffee")[:96, :128]
    out = degrade(gt)
    assert list(compute_metrics(out, gt, crop_border=0, y_channel=False)) == ["psnr", "ssim"]
    g_gt, g_out = gt[..., 1], out[..., 1]
    gray = compute_metrics(g_out, g_gt, crop_border=2)
    assert list(gray) == ["psnr", "ssim"]
    assert gray == compute_metrics(g_out[..., None], g_gt[..., None], crop_border=2)
    assert gray["psnr"] == pytest.approx(psnr_by_hand(g_out[2:-2, 2:-2], g_gt[2:-2, 2:-2]), abs=1e-9)


def test_border_crop_removes_exactly_the_border():
    gt = photo("chelsea")[:64, :80]
    out = gt.copy()
    out[:3] = 0  # damage only a 3-pixel band at the top
    assert math.isinf(compute_metrics(out, gt, crop_border=3)["psnr_y"])
    assert compute_metrics(out, gt, crop_border=3)["ssim"] == pytest.approx(1.0)
    assert math.isfinite(compute_metrics(out, gt, crop_border=2)["psnr_y"])
    with pytest.raises(ValueError, match="crop_border"):
        compute_metrics(out, gt, crop_border=40)


def test_inputs_must_be_uint8_of_one_shape():
    gt = photo("coffee")[:32, :32]
    with pytest.raises(TypeError, match="uint8"):
        compute_metrics(gt.astype(np.float32), gt, crop_border=0)
    with pytest.raises(ValueError, match="differ"):
        compute_metrics(gt[:31], gt, crop_border=0)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(gt, gt, crop_border=0, metrics=("psnr", "brisque"))


def test_to_uint8_clamps_and_rounds_like_the_official_script():
    x = torch.tensor([-0.2, 0.0, 0.2 / 255, 0.7 / 255, 128 / 255, 1.0, 1.7]).view(1, 1, 1, 7)
    assert to_uint8(x).tolist() == [[0, 0, 0, 1, 128, 255, 255]]
    rgb = torch.rand(3, 5, 6)
    out = to_uint8(rgb)
    assert out.shape == (5, 6, 3) and out.dtype == np.uint8
    assert np.array_equal(out, (rgb.numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8))


def test_bt601_y_rounds_like_basicsr():
    """bt601_y rounded is basicsr's bgr2ycbcr(y_only) of uint8 input: Y of gray images is compressed to 16-235."""
    rgb = photo("astronaut")
    assert np.abs(bt601_y(rgb) - y_by_hand(rgb)).max() < 1e-4
    gray3 = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    y = bt601_y(gray3).round()
    assert y.min() == 16 and y.max() == 235


# ---------------------------------------------------------------------------------------------
# PSNR-B


def bef_by_hand(img: np.ndarray) -> float:
    """The blocking effect factor by explicit loops over neighbouring pixel pairs (official counting)."""
    h, w = img.shape
    on_b, off_b = [], []
    for i in range(h):
        for j in range(w - 1):
            (on_b if j % 8 == 7 else off_b).append((img[i, j] - img[i, j + 1]) ** 2)
    for i in range(h - 1):
        for j in range(w):
            (on_b if i % 8 == 7 else off_b).append((img[i, j] - img[i + 1, j]) ** 2)
    n_b = h * (w // 8 - 1) + w * (h // 8 - 1)
    n_nb = h * (w - 1) + w * (h - 1) - n_b
    boundary, inner = sum(on_b) / n_b, sum(off_b) / n_nb
    return max(0.0, 3.0 / math.log2(min(h, w)) * (boundary - inner))


def test_psnrb_by_hand_on_a_small_blocky_image():
    rng = np.random.default_rng(3)
    # Smooth, so that blocks show; 34 wide, so that the official pair count (W//8-1 per row) is exercised.
    gt = (np.add.outer(np.arange(24), np.arange(34)) * 2 + 60).astype(np.uint8)
    blocks = np.kron(rng.integers(-9, 10, (3, 5)), np.ones((8, 8)))[:, :34]
    out = np.clip(gt + blocks + rng.integers(-1, 2, gt.shape), 0, 255).astype(np.uint8)
    a, b = out / 255.0, gt / 255.0
    bef = bef_by_hand(a)
    assert bef > 0
    assert blocking_effect_factor(a) == pytest.approx(bef, rel=1e-12)
    expected = 10 * math.log10(1.0 / (np.mean((a - b) ** 2) + bef))
    assert calculate_psnrb(out, gt, 0) == pytest.approx(expected, abs=1e-9)
    c = 2  # the crop happens before the blocking factor
    a2, b2 = a[c:-c, c:-c], b[c:-c, c:-c]
    expected2 = 10 * math.log10(1.0 / (np.mean((a2 - b2) ** 2) + bef_by_hand(a2)))
    assert calculate_psnrb(out, gt, c) == pytest.approx(expected2, abs=1e-9)


def test_psnrb_equals_psnr_without_blocking():
    """A diagonal ramp has the same step across block boundaries as inside blocks: BEF 0, PSNR-B = PSNR."""
    out = (np.add.outer(np.arange(48), np.arange(64)) + 40).astype(np.uint8)
    gt = np.clip(out.astype(int) + np.random.default_rng(0).integers(-3, 4, out.shape), 0, 255).astype(np.uint8)
    assert blocking_effect_factor(out / 255.0) < 1e-15  # 0 up to float rounding of equal steps
    assert calculate_psnrb(out, gt, 0) == pytest.approx(calculate_psnr(out, gt, 0), abs=1e-9)


def test_psnrb_penalizes_8x8_blocking_more_than_psnr():
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.linspace(60, 120, 128), np.linspace(0, 60, 128))
    gt = ramp.round().astype(np.uint8)
    blocky = (ramp + np.kron(rng.choice([-4, 4], (16, 16)), np.ones((8, 8)))).round().astype(np.uint8)
    noisy = (ramp + rng.choice([-4, 4], (128, 128))).round().astype(np.uint8)
    psnr_blocky, psnr_noisy = calculate_psnr(blocky, gt, 0), calculate_psnr(noisy, gt, 0)
    assert psnr_blocky == pytest.approx(psnr_noisy, abs=0.05)  # the same error energy...
    assert calculate_psnrb(blocky, gt, 0) < psnr_blocky - 2  # ...but blocking costs PSNR-B
    assert calculate_psnrb(noisy, gt, 0) > calculate_psnrb(blocky, gt, 0) + 1.5
    # JPEG at low quality blocks: PSNR-B below PSNR; the metric keys follow the others.
    photo_gray = photo("camera")
    jpeg = cv2.imdecode(cv2.imencode(".jpg", photo_gray, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], 0)
    m = compute_metrics(jpeg, photo_gray, crop_border=0, metrics=("psnr", "psnrb"))
    assert list(m) == ["psnr", "psnrb"] and m["psnrb"] < m["psnr"] - 1


def test_psnrb_y_is_psnrb_of_the_y_channel():
    gt = photo("coffee")[:128, :128]
    out = cv2.imdecode(cv2.imencode(".jpg", gt[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])[1], 1)[..., ::-1]
    m = compute_metrics(np.ascontiguousarray(out), gt, crop_border=0, metrics=("psnrb",))
    assert list(m) == ["psnrb_y", "psnrb"]
    y_out, y_gt = y_by_hand(out), y_by_hand(gt)
    assert m["psnrb_y"] == pytest.approx(calculate_psnrb(y_out, y_gt, 0), abs=1e-4)


# ---------------------------------------------------------------------------------------------
# LPIPS (a locally made AlexNet backbone: the real one is a download)


@pytest.fixture(scope="module")
def lpips_alex(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        make_lpips_home(tmp_path_factory.mktemp("torch_home"), mp)
        yield LPIPS("alex")
    finally:
        mp.undo()


def test_backbone_file_is_where_torchvision_looks(tmp_path, monkeypatch):
    path = make_lpips_home(tmp_path, monkeypatch)
    assert path == tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert lpips_backbone_file("vgg")[0].name == "vgg16-397923af.pth"


def test_lpips_zero_for_identical_and_growing_with_distortion(lpips_alex):
    gt = photo("astronaut")[::4, ::4]
    assert lpips_alex(gt, gt) == pytest.approx(0.0, abs=1e-7)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, gt.shape)
    scores = [lpips_alex(np.clip(gt + s * noise, 0, 255).round().astype(np.uint8), gt) for s in (4, 16, 48)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_lpips_input_conversion(lpips_alex):
    """uint8 and its float [0, 1] equivalent agree; gray is replicated; RGB lands in [-1, 1]."""
    gt = photo("chelsea")[::3, ::3]
    out = degrade(gt)
    assert lpips_alex(out, gt) == pytest.approx(lpips_alex(out / 255.0, gt.astype(np.float64) / 255.0), abs=1e-6)
    t = LPIPS.to_tensor(np.array([[[0, 128, 255]]], dtype=np.uint8))
    assert t.flatten().tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    g = gt[..., 0]
    replicated = lpips_alex(np.repeat(out[..., :1], 3, 2), np.repeat(g[..., None], 3, 2))
    assert lpips_alex(out[..., 0], g) == pytest.approx(replicated)
    # Channel order matters to LPIPS: swapping R and B changes the value.
    assert lpips_alex(out[..., ::-1], gt[..., ::-1]) != pytest.approx(lpips_alex(out, gt), abs=1e-6)
    m = compute_metrics(out, gt, crop_border=2, metrics=("psnr", "lpips"), lpips=lpips_alex)
    assert m["lpips"] == pytest.approx(lpips_alex(out[2:-2, 2:-2], gt[2:-2, 2:-2]))
    with pytest.raises(ValueError, match="lpips"):
        compute_metrics(out, gt, crop_border=0, metrics=("lpips",))


def test_lpips_missing_backbone_names_the_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, *args, **kwargs):  # the network, not the model: never download in tests
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(LPIPSWeightsMissing) as info:
        LPIPS("alex")
    message = str(info.value)
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert str(expected) in message and "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_niqe_is_basicsrs_on_cv2_read_images_and_ranks_degradations(name, tmp_path):
    """NIQE of an RGB (or gray) array equals basicsr's calculate_niqe on the same file read by OpenCV (BGR), Y
    channel; and blur or noise make it worse (higher), as the metric is meant to."""
    from basicsr.metrics.niqe import calculate_niqe

    from swinir_app.protocol.metrics import MetricError, niqe
    img = getattr(skimage.data, name)()
    cv2.imwrite(str(tmp_path / "x.png"), img if img.ndim == 2 else img[:, :, ::-1])
    bgr = cv2.imread(str(tmp_path / "x.png"), cv2.IMREAD_UNCHANGED)
    assert niqe(img) == pytest.approx(float(calculate_niqe(bgr, 0, input_order="HWC" if bgr.ndim == 3 else "HW",
                                                           convert_to="y")), abs=1e-9)
    blurred = cv2.GaussianBlur(img, (0, 0), 3)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert niqe(blurred) > niqe(img) + 1 and niqe(noisy) > niqe(img) + 1
    with pytest.raises(MetricError, match=r"NIQE needs at least 192x192 pixels, got 300x191 \(width x height\)"):
        niqe(img[:191, :300])
