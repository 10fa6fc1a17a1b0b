"""Evaluation: the paper protocol end to end, the bicubic baseline on Set5, inputs, CLI and options."""
import csv
import json
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import yaml

from oracle import random_state, small
from swinir_app import SwinIR
from swinir_app._basicsr import OfficialSwinIR, calculate_psnr, imresize
from swinir_app.evaluate import EvalError, evaluate, load_options, main
from swinir_app.options import OptionsError
from swinir_app.protocol.degrade import bicubic_downscale, bicubic_upscale, jpeg_input, noisy_input
from swinir_app.protocol.inputs import read as read_image
from swinir_app.protocol.metrics import bt601_y, compute_metrics
from swinir_app.protocol.runner import official_pad
from helpers import make_lpips_home

ROOT = Path(__file__).resolve().parents[1]
TESTSETS = ROOT.parent / "shared" / "testsets"
# Published bicubic Y-PSNR on Set5 measured with this protocol (the tables say 33.66 / 30.39 / 28.42).
SET5_BICUBIC = {2: 33.678, 3: 30.404, 4: 28.431}


def needs_set(*names):
    missing = [n for n in names if not (TESTSETS / n).is_dir()]
    return pytest.mark.skipif(bool(missing), reason=f"benchmark set(s) {missing} not in {TESTSETS}")


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]) if rgb.ndim == 3 else rgb)
    return path


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory) -> Path:
    """Three real photo crops of sizes that are not window or scale multiples."""
    d = tmp_path_factory.mktemp("gt")
    write_rgb(d / "astronaut.png", skimage.data.astronaut()[60:105, 180:218])  # 45 x 38
    write_rgb(d / "chelsea.png", skimage.data.chelsea()[100:140, 150:202])  # 40 x 52
    write_rgb(d / "coffee.png", skimage.data.coffee()[200:237, 300:341])  # 37 x 41
    return d


def checkpoint(tmp: Path, preset: str, seed: int = 0) -> tuple:
    """A small but real SwinIR with seeded weights, saved as a BasicSR-style checkpoint."""
    model = SwinIR(small(preset)).eval()
    state = random_state(model, seed)
    model.load_state_dict(state)
    path = tmp / f"{preset}.pth"
    torch.save({"params": state}, path)
    return path, model


@pytest.fixture(scope="module")
def sr_ckpt(tmp_path_factory):
    return checkpoint(tmp_path_factory.mktemp("ckpt"), "classical-x2")


# ---------------------------------------------------------------------------------------------
# Protocol pieces


def test_official_pad_mirrors_and_always_pads():
    x = torch.arange(2 * 10 * 13, dtype=torch.float32).view(1, 2, 10, 13)
    y = official_pad(x, 8)
    assert y.shape == (1, 2, 16, 16)
    assert torch.equal(y[..., :10, :13], x)
    # Flip-concatenation: row 10 repeats row 9 (symmetric, edge included), row 11 is row 8...
    assert torch.equal(y[..., 10:16, :13], x.flip(2)[..., :6, :])
    assert torch.equal(y[..., :10, 13:16], x.flip(3)[..., :, :3])
    assert official_pad(torch.zeros(1, 1, 16, 24), 8).shape == (1, 1, 24, 32)  # multiples get a window more
    tiny = official_pad(torch.arange(3.0).view(1, 1, 1, 3), 7)  # smaller than a window: mirror repeatedly
    assert tiny.shape == (1, 1, 7, 7) and tiny[0, 0, 0].tolist() == [0, 1, 2, 2, 1, 0, 0]


def test_bicubic_downscale_crops_gt_to_a_multiple():
    gt = skimage.data.coffee()[:50, :37]
    cropped, lq = bicubic_downscale(gt, 3)
    assert cropped.shape == (48, 36, 3) and lq.shape == (16, 12, 3) and lq.dtype == np.uint8
    expected = (np.clip(imresize(gt[:48, :36].astype(np.float32) / 255.0, 1 / 3), 0, 1) * 255).round()
    assert np.array_equal(lq, expected.astype(np.uint8))
    assert bicubic_upscale(lq, 3).shape == (48, 36, 3)


def test_noise_is_seeded_per_image_like_the_official_script():
    gt = skimage.data.chelsea()[:40, :50]
    a, b = noisy_input(gt, 25, seed=0), noisy_input(gt, 25, seed=0)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, noisy_input(gt, 25, seed=1))
    # The official recipe: seed, read BGR as float32/255, add N(0, sigma/255) in that layout.
    np.random.seed(0)
    bgr = cv2.cvtColor(gt, cv2.COLOR_RGB2BGR).astype(np.float32) / 255.0
    official = (bgr + np.random.normal(0, 25 / 255.0, bgr.shape)).astype(np.float32)
    assert np.array_equal(a, cv2.cvtColor(official, cv2.COLOR_BGR2RGB))
    assert a.min() < 0 or a.max() > 1  # not clipped
    assert np.std(a - gt / 255.0) == pytest.approx(25 / 255.0, rel=0.05)
    gray = noisy_input(gt[..., 0], 15)
    np.random.seed(0)
    assert np.array_equal(gray, (gt[..., 0].astype(np.float32) / 255 + np.random.normal(0, 15 / 255, gray.shape))
                          .astype(np.float32))


def test_jpeg_input_is_opencv_jpeg_and_gray_for_gray(tmp_path):
    rgb = skimage.data.astronaut()[:64, :64]
    q10, q60 = jpeg_input(rgb, 10), jpeg_input(rgb, 60)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    expected = cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_COLOR)
    assert np.array_equal(q10, cv2.cvtColor(expected, cv2.COLOR_BGR2RGB))
    assert calculate_psnr(q10, rgb, 0) < calculate_psnr(q60, rgb, 0)
    g = jpeg_input(rgb[..., 1], 20)
    assert g.shape == (64, 64) and g.dtype == np.uint8
    # Gray JPEG models read a color GT as its rounded BT.601 Y (the official script), gray files as they are.
    color_file = write_rgb(tmp_path / "c.png", rgb)
    assert np.array_equal(read_image(color_file, "y"), bt601_y(rgb).round().astype(np.uint8))
    gray_file = write_rgb(tmp_path / "g.png", rgb[..., 0])
    assert np.array_equal(read_image(gray_file, "y"), rgb[..., 0])


# ---------------------------------------------------------------------------------------------
# End to end


def official_output(net: torch.nn.Module, lq: np.ndarray, window: int, scale: int) -> np.ndarray:
    """What the official test script does with a uint8 RGB LQ, restated with index arithmetic."""
    x = torch.from_numpy(lq.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    rows = [*range(h), *range(h - 1, -1, -1)][:(h // window + 1) * window]
    cols = [*range(w), *range(w - 1, -1, -1)][:(w // window + 1) * window]
    with torch.no_grad():
        y = net(x[:, :, rows][:, :, :, cols])[..., :h * scale, :w * scale]
    y = y[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return (y * 255.0).round().astype(np.uint8)


@pytest.mark.filterwarnings("ignore:torch.meshgrid")  # inside basicsr's copy of the official network
def test_pipeline_matches_the_official_network_padding_and_rounding(gt_dir, sr_ckpt, tmp_path):
    path, model = sr_ckpt
    c = model.config
    net = OfficialSwinIR(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size, window_size=c.window_size,
                         img_range=c.img_range, depths=list(c.depths), embed_dim=c.embed_dim,
                         num_heads=list(c.num_heads), mlp_ratio=c.mlp_ratio, upsampler=c.upsampler,
                         resi_connection=c.resi_connection).eval()
    missing, _ = net.load_state_dict(model.state_dict(), strict=False)
    assert all(k.endswith(("attn_mask", "relative_position_index")) for k in missing)  # derived buffers only
    result = evaluate(path, gt_dir, scale=2, device="cpu", save_images=tmp_path / "out", progress=False)
    assert [im.name for im in result.images] == ["astronaut", "chelsea", "coffee"]
    for im in result.images:
        gt, lq = bicubic_downscale(read_image(gt_dir / f"{im.name}.png", "color"), 2)
        expected = official_output(net, lq, c.window_size, 2)
        ours = read_image(tmp_path / "out" / f"{im.name}.png", "color")
        assert ours.shape == expected.shape == gt.shape
        assert np.abs(ours.astype(int) - expected).max() <= 1  # float noise may flip a rounding
        assert im.metrics["psnr_y"] == pytest.approx(compute_metrics(expected, gt, crop_border=2)["psnr_y"], abs=0.01)
    # Reflect padding (the model's own) would give different border pixels: the protocol pad is in use.
    gt, lq = bicubic_downscale(read_image(gt_dir / "coffee.png", "color"), 2)
    expected = official_output(net, lq, c.window_size, 2)
    x = torch.from_numpy(lq.astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        reflect = np.clip(model(x)[0].numpy().transpose(1, 2, 0) * 255, 0, 255).round().astype(np.uint8)
    assert np.abs(reflect.astype(int) - expected).max() > 1


def test_gt_is_cropped_to_lq_times_scale(tmp_path):
    gt = skimage.data.chelsea()[:38, :50]
    (tmp_path / "gt").mkdir(), (tmp_path / "lq").mkdir()
    write_rgb(tmp_path / "gt" / "cat.png", gt)
    lq = cv2.resize(gt, (12, 9), interpolation=cv2.INTER_AREA)  # 9 x 12 -> 36 x 48 at x4
    write_rgb(tmp_path / "lq" / "catx4.png", lq)
    result = evaluate("bicubic", tmp_path / "gt", lq=tmp_path / "lq", scale=4, progress=False)
    expected = compute_metrics(bicubic_upscale(lq, 4), gt[:36, :48], crop_border=4)
    assert result.images[0].metrics == pytest.approx(expected)
    assert result.protocol.crop_border == 4 and "files in" in result.protocol.lq_source
    # An LQ too large for its GT is reported, not scored.
    write_rgb(tmp_path / "lq" / "catx4.png", cv2.resize(gt, (13, 10)))
    bad = evaluate("bicubic", tmp_path / "gt", lq=tmp_path / "lq", scale=4, progress=False)
    assert not bad.images and "smaller than" in bad.failures[0] and "cat.png" in bad.failures[0]


def test_lq_made_from_gt_when_absent(gt_dir):
    result = evaluate("bicubic", gt_dir, scale=3, progress=False)
    assert result.protocol.lq_source.startswith("MATLAB bicubic 1/3")
    gt = read_image(gt_dir / "coffee.png", "color")
    cropped, lq = bicubic_downscale(gt, 3)
    expected = compute_metrics(bicubic_upscale(lq, 3), cropped, crop_border=3)
    assert result.images[2].metrics == pytest.approx(expected)



def test_every_path_may_be_a_str_and_errors_name_api_arguments(gt_dir, tmp_path):
    from swinir_app.protocol.inputs import find_lq
    from swinir_app.protocol.metrics import to_uint8

    result = evaluate("bicubic", str(gt_dir), scale=2, progress=False)
    result.write_json(str(tmp_path / "r.json"))
    result.write_csv(str(tmp_path / "r.csv"))
    assert json.loads((tmp_path / "r.json").read_text())["summary"] == pytest.approx(result.summary)
    assert len(list(csv.reader((tmp_path / "r.csv").open()))) == len(result.images) + 1
    (tmp_path / "lq").mkdir()
    (tmp_path / "lq" / "coffeex2.png").write_bytes(b"")
    assert find_lq(str(tmp_path / "lq"), str(gt_dir / "coffee.png"), 2) == tmp_path / "lq" / "coffeex2.png"
    # The Python API speaks of its own arguments, not of command-line flags.
    with pytest.raises(EvalError) as e:
        evaluate("bicubic", gt_dir)
    assert str(e.value) == "the bicubic baseline needs a scale" and "--" not in str(e.value)
    # to_uint8 rounds float arrays as it rounds tensors.
    x = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_uint8(x), to_uint8(torch.from_numpy(x).permute(2, 0, 1)))
    assert compute_metrics(to_uint8(x), to_uint8(x), crop_border=1)["psnr"] == float("inf")


@needs_set("Set5")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_baseline(scale):
    # Both the LR made from the GT (the default) and the set's own LR files give the published numbers.
    made = evaluate("bicubic", TESTSETS / "Set5" / "HR", scale=scale, progress=False)
    files = evaluate("bicubic", TESTSETS / "Set5" / "HR", lq=TESTSETS / "Set5" / "LR_bicubic" / f"X{scale}",
                     scale=scale, progress=False)
    assert made.protocol.dataset == "Set5" and len(made.images) == 5
    assert made.protocol.lq_source.startswith("MATLAB bicubic")
    for result in (made, files):
        assert result.summary["psnr_y"] == pytest.approx(SET5_BICUBIC[scale], abs=0.005)
        assert result.summary["psnr"] < result.summary["psnr_y"] - 1  # RGB is reported too, and differs


def test_denoising_protocol_is_reproducible(gt_dir):
    model = SwinIR(small("color-dn")).eval()
    model.load_state_dict(random_state(model, 1))
    a = evaluate(model, gt_dir, noise=25, device="cpu", progress=False)
    b = evaluate(model, gt_dir, noise=25, device="cpu", progress=False)
    p = a.protocol
    assert (p.task, p.scale, p.crop_border, p.noise_sigma, p.noise_seed) == ("denoise", 1, 0, 25.0, 0)
    assert a.summary == b.summary
    c = evaluate(model, gt_dir, noise=25, seed=7, device="cpu", progress=False)
    assert c.summary != a.summary and c.protocol.noise_seed == 7
    assert evaluate(model, gt_dir, device="cpu", progress=False).protocol.noise_sigma == 15  # the official default


def test_gray_noise_is_one_plane_the_official_gray_draw(gt_dir, tmp_path):
    """--gray-noise: a gray photo given to a color denoiser carries the same noise in R, G and B: the very
    plane the official script draws for the 1-channel image; refused where it means nothing."""
    gray = skimage.data.camera()[:40, :50]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    lq = noisy_input(rgb, 25, seed=3, gray=True)
    for c in range(3):
        assert np.array_equal(lq[:, :, c], noisy_input(gray, 25, seed=3))
    model = SwinIR(small("color-dn")).eval()
    model.load_state_dict(random_state(model, 1))
    gray_dir = tmp_path / "gray"
    gray_dir.mkdir()
    cv2.imwrite(str(gray_dir / "camera.png"), skimage.data.camera()[:64, :64])
    a = evaluate(model, gray_dir, noise=25, device="cpu", progress=False, gray_noise=True)
    b = evaluate(model, gray_dir, noise=25, device="cpu", progress=False)
    assert "one plane for all channels" in a.protocol.lq_source and "one plane" not in b.protocol.lq_source
    assert a.summary != b.summary
    with pytest.raises(EvalError, match="--gray-noise is for color denoising models"):
        evaluate(SwinIR(small("classical-x2")).eval(), gt_dir, device="cpu", progress=False, gray_noise=True)


def test_noise_level_and_quality_default_to_the_model_name(gt_dir, tmp_path):
    path, _ = checkpoint(tmp_path, "color-dn")
    named = path.rename(tmp_path / "005_colorDN_DFWB_s128w8_SwinIR-M_noise50.pth")
    assert evaluate(named, gt_dir, device="cpu", progress=False).protocol.noise_sigma == 50
    assert evaluate(named, gt_dir, noise=25, device="cpu", progress=False).protocol.noise_sigma == 25


def test_gray_jpeg_protocol(gt_dir):
    model = SwinIR(small("gray-jpeg")).eval()
    model.load_state_dict(random_state(model, 2))
    result = evaluate(model, gt_dir, jpeg=20, device="cpu", progress=False)
    p = result.protocol
    assert (p.task, p.channels, p.crop_border, p.jpeg_quality, p.window_size) == ("jpeg", "gray", 0, 20, 7)
    assert list(result.summary) == ["psnr", "ssim", "psnrb"]  # PSNR-B for JPEG; gray: no separate Y


def test_self_ensemble_and_tiles_reach_the_engine(gt_dir, sr_ckpt):
    path, _ = sr_ckpt
    plain = evaluate(path, gt_dir, device="cpu", progress=False)
    ensemble = evaluate(path, gt_dir, device="cpu", self_ensemble=True, progress=False)
    tiled = evaluate(path, gt_dir, device="cpu", tile=16, tile_overlap=4, progress=False)
    assert ensemble.protocol.self_ensemble and tiled.protocol.tile == 16
    assert ensemble.summary != plain.summary and tiled.summary != plain.summary
    with pytest.raises(EvalError, match="x2 model"):
        evaluate(path, gt_dir, scale=4, progress=False)


def test_lpips_in_an_evaluation(gt_dir, tmp_path, monkeypatch):
    make_lpips_home(tmp_path, monkeypatch)
    result = evaluate("bicubic", gt_dir, scale=2, metrics=["psnr", "lpips"], progress=False)
    assert list(result.summary) == ["psnr_y", "psnr", "lpips"] and result.summary["lpips"] > 0
    assert result.protocol.lpips_net == "alex"


# ---------------------------------------------------------------------------------------------
# CLI


def test_save_images_that_cannot_be_written_are_said(gt_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    assert main(["--model", "bicubic", "--gt", str(gt_dir), "--scale", "2", "--save-images",
                 str(tmp_path / "file" / "sub"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot create the --save-images folder {tmp_path / 'file' / 'sub'}: Not a directory\n"
    (tmp_path / "img" / "chelsea.png").mkdir(parents=True)  # a folder where the image should go
    out = tmp_path / "r.json"
    assert main(["--model", "bicubic", "--gt", str(gt_dir), "--scale", "2", "--save-images", str(tmp_path / "img"),
                 "--no-progress", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    line = f"{gt_dir / 'chelsea.png'}: cannot write {tmp_path / 'img' / 'chelsea.png'}: Is a directory"
    assert f"error: {line}" in err and "1 image(s) failed (listed above)" in err and "Traceback" not in err
    data = json.loads(out.read_text())
    assert data["failures"] == [line] and len(data["images"]) == 3  # scored: it stays in the averages
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["astronaut.png", "chelsea.png", "coffee.png"]


def test_cli_end_to_end(gt_dir, sr_ckpt, tmp_path, capsys):
    path, _ = sr_ckpt
    out, table = tmp_path / "r.json", tmp_path / "per_image.csv"
    rc = main(["--model", str(path), "--gt", str(gt_dir), "--device", "cpu", "--out", str(out), "--csv", str(table),
               "--save-images", str(tmp_path / "img"), "--per-image"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "average" in captured.out and "astronaut" in captured.out
    assert "100%" in captured.err  # the progress bar
    data = json.loads(out.read_text())
    assert set(data) == {"summary", "protocol", "images", "failures"} and data["failures"] == []
    assert list(data["summary"]) == ["psnr_y", "ssim_y", "psnr", "ssim"]
    p = data["protocol"]
    assert (p["scale"], p["crop_border"], p["y_channel"], p["task"]) == (2, 2, True, "sr")
    assert "mirror" in p["padding"] and "bicubic" in p["lq_source"] and p["rounding"].startswith("uint8")
    assert [im["name"] for im in data["images"]] == ["astronaut", "chelsea", "coffee"]
    mean = np.mean([im["psnr_y"] for im in data["images"]])
    assert data["summary"]["psnr_y"] == pytest.approx(mean)
    rows = list(csv.DictReader(table.open()))
    assert [r["name"] for r in rows] == ["astronaut", "chelsea", "coffee"]
    assert float(rows[1]["ssim"]) == pytest.approx(data["images"][1]["ssim"])
    assert read_image(tmp_path / "img" / "chelsea.png", "color").shape == (40, 52, 3)


def run(argv) -> int:
    """main(), with argparse's own exits turned into return codes."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("args, message", [
    (["--model", "bicubic", "--gt", "/nonexistent/dir", "--scale", "2"], "GT folder not found"),
    (["--model", "bicubic", "--gt", "{gt}"], "the bicubic baseline needs a scale"),
    (["--model", "no-such-model", "--gt", "{gt}"], "cannot load model"),
    (["--model", "bicubic", "--gt", "{gt}", "--scale", "2", "--metrics", "brisque"], "invalid choice"),
    (["--gt", "{gt}"], "need --model"),
])
def test_cli_usage_errors_are_one_line(gt_dir, capsys, args, message):
    assert run([a.format(gt=gt_dir) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_cli_debug_shows_the_exception(gt_dir):
    with pytest.raises(EvalError):
        main(["--model", "bicubic", "--gt", str(gt_dir), "--debug"])


def test_unreadable_images_are_reported_and_skipped(gt_dir, tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.png").write_bytes((gt_dir / "chelsea.png").read_bytes())
    (d / "broken.png").write_bytes(b"not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "r.json"
    rc = main(["--model", "bicubic", "--gt", str(d), "--scale", "2", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    broken = [line for line in err.splitlines() if "broken.png" in line]
    assert broken == [f"error: {d / 'broken.png'}: not a readable image"]
    assert [im["name"] for im in json.loads(out.read_text())["images"]] == ["a"]


@pytest.mark.timeout(30)  # the bug was a hang: fail instead
def test_special_and_huge_files_are_refused_unread(tmp_path, capsys):
    """A FIFO or a device as an image or an options file: one line, never a hang or a MemoryError; an image
    file over the size cap is refused from its size alone."""
    import os
    from swinir_app.protocol.inputs import MAX_FILE_BYTES, ImageError

    for name in ("pipe.png", "pipe.yml"):
        os.mkfifo(tmp_path / name)
    for path in (tmp_path / "pipe.png", Path("/dev/zero")):
        with pytest.raises(ImageError, match=rf"^{path}: not a regular file"):
            read_image(path, "color")
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ImageError, match=rf"^{huge}: {MAX_FILE_BYTES + 1:,} bytes is over the limit of "):
        read_image(huge, "color")
    for path in (tmp_path / "pipe.yml", Path("/dev/zero")):
        assert main(["-opt", str(path)]) == 2
        assert capsys.readouterr().err == (f"error: cannot read options file {path}: not a regular file "
                                           f"(a device, pipe or socket); only files are read\n")


def test_cli_lpips_without_backbone_says_where_to_put_it(gt_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):  # never download in tests
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    rc = main(["--model", "bicubic", "--gt", str(gt_dir), "--scale", "2", "--metrics", "lpips", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in err
    assert len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Options files


def test_the_shipped_options_file_parses(monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths are relative to where it runs, as in BasicSR: the repository root
    opts = load_options("options/test_x4.yml")
    assert opts.scale == 4 and [d.name for d in opts.test_sets] == ["Set5", "Set14"]
    assert opts.metric_names() == ("psnr", "ssim") and opts.crop_border() == 4 and opts.y_channel()
    assert Path(opts.test_sets[0].dataroot_gt).resolve() == (TESTSETS / "Set5" / "HR").resolve()
    assert opts.path.pretrain_network_g == "classical-x4"


def test_options_unknown_keys_are_named(tmp_path):
    """The same schema and errors as training's options: the full key, and the closest known one."""
    bad = yaml.safe_load((ROOT / "options" / "test_x4.yml").read_text())
    bad["val"]["metrics"]["psnr"]["test_y_chanel"] = True
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    with pytest.raises(OptionsError, match=r"unknown option val\.metrics\.psnr\.test_y_chanel \(did you mean "
                                           r"test_y_channel\?\)"):
        load_options(tmp_path / "bad.yml")


def test_options_run_the_same_evaluation(gt_dir, sr_ckpt, tmp_path, capsys, monkeypatch):
    path, model = sr_ckpt
    monkeypatch.chdir(path.parent)
    c = model.config
    options = {
        "name": "tiny", "model_type": "SwinIRModel", "scale": 2,
        "datasets": {"test_1": {"name": "Tiny", "type": "PairedImageDataset", "dataroot_gt": str(gt_dir),
                                "io_backend": {"type": "disk"}}},
        "network_g": {"type": "SwinIR", "upscale": 2, "in_chans": 3, "window_size": c.window_size,
                      "embed_dim": c.embed_dim, "depths": list(c.depths), "num_heads": list(c.num_heads),
                      "mlp_ratio": c.mlp_ratio, "upsampler": "pixelshuffle"},
        "path": {"pretrain_network_g": path.name},  # relative to the current directory (below)
        "val": {"metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    }
    (path.parent / "opt.yml").write_text(yaml.safe_dump(options))
    out = tmp_path / "r.json"
    assert main(["-opt", str(path.parent / "opt.yml"), "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    via_options = json.loads(out.read_text())
    direct = evaluate(path, gt_dir, metrics=["psnr"], device="cpu", progress=False)
    assert via_options["summary"] == pytest.approx(direct.summary)
    assert via_options["protocol"]["dataset"] == "Tiny"
    options["network_g"]["embed_dim"] = c.embed_dim * 2  # a network_g that is not the checkpoint's
    (path.parent / "opt.yml").write_text(yaml.safe_dump(options))
    assert main(["-opt", str(path.parent / "opt.yml"), "--no-progress"]) == 2
    assert "network_g.embed_dim" in capsys.readouterr().err


@needs_set("Set5", "Set14")
def test_shipped_options_with_the_bicubic_baseline(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["-opt", str(ROOT / "options" / "test_x4.yml"), "--model", "bicubic", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    set5 = json.loads((tmp_path / "r_Set5.json").read_text())
    assert set5["summary"]["psnr_y"] == pytest.approx(SET5_BICUBIC[4], abs=0.005)
    assert len(json.loads((tmp_path / "r_Set14.json").read_text())["images"]) == 14
    assert "Set14" in capsys.readouterr().out


def test_real_photos_without_gt_are_scored_with_niqe(ckpt, tmp_path, capsys):
    """--lq alone: NIQE of every output (and of inputs large enough), equal to NIQE of the Restorer's own output;
    full-reference metrics are refused in one line; an image too small for NIQE fails alone, in one line."""
    from swinir_app import Restorer
    from swinir_app.protocol.metrics import niqe
    lq = tmp_path / "real"
    lq.mkdir()
    photos = {"astronaut": skimage.data.astronaut()[:200, :220], "coffee": skimage.data.coffee()[:110, :130],
              "tiny": skimage.data.chelsea()[:40, :40]}
    for name, img in photos.items():
        cv2.imwrite(str(lq / f"{name}.png"), img[:, :, ::-1])
    code = main(["--model", str(ckpt), "--lq", str(lq), "--out", str(tmp_path / "r.json"), "--no-progress",
                 "--device", "cpu", "--save-images", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1 and "tiny.png: NIQE needs at least 192x192 pixels, got 80x80" in err  # its x2 output
    images = {im["name"]: im for im in json.loads((tmp_path / "r.json").read_text())["images"]}
    assert set(images) == {"astronaut", "coffee"} and "niqe_lq" not in images["coffee"]  # a 130x110 input
    for name in ("astronaut", "coffee"):  # NIQE of the very outputs, which are the model's (PSNR vs Restorer)
        saved = cv2.imread(str(tmp_path / "out" / f"{name}.png"))[:, :, ::-1]
        assert images[name]["niqe"] == pytest.approx(niqe(saved), abs=1e-9)
        direct = Restorer(str(ckpt), device="cpu", precision="fp32").restore(photos[name])
        assert calculate_psnr(saved, direct, 0) > 40
    assert images["astronaut"]["niqe_lq"] == pytest.approx(niqe(photos["astronaut"]), abs=1e-9)
    assert "NIQE" in out and "no ground truth" in out
    assert main(["--model", str(ckpt), "--lq", str(lq), "--metrics", "psnr", "niqe"]) == 2
    assert capsys.readouterr().err.strip() == "error: psnr needs ground truth (a GT folder); without it: niqe"
    assert main(["--model", str(ckpt)]) == 2 and "--lq alone for NIQE" in capsys.readouterr().err


def test_realistic_degradation_is_blur_bicubic_noise_jpeg_step_by_step(tmp_path, capsys):
    """--degradation blur:1.5,noise:10,jpeg:50: the LQ built by hand from OpenCV and basicsr, and the scores of
    bicubic on it are those of that LQ; a bad spec or a non-SR model is one line."""
    from swinir_app.protocol.degrade import realistic_downscale
    gt = skimage.data.astronaut()[:130, :150]
    cropped, lq = realistic_downscale(gt, 4, "blur:1.5,noise:10,jpeg:50", seed=3)
    x = cv2.GaussianBlur(gt[:128, :148].astype(np.float32) / 255, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT_101)
    x = imresize(x, 0.25) + np.random.default_rng(3).normal(0, 10 / 255, (32, 37, 3)).astype(np.float32)
    x = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(x[:, :, ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), 50])
    assert cropped.shape == (128, 148, 3) and np.array_equal(lq, cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / "a.png"), gt[:, :, ::-1])
    r = evaluate("bicubic", gt_dir, scale=4, degradation="blur:1.5,noise:10,jpeg:50", progress=False, seed=3)
    ref = compute_metrics(bicubic_upscale(lq, 4), cropped, crop_border=4)
    assert r.summary["psnr_y"] == pytest.approx(ref["psnr_y"], abs=1e-9)
    assert "Gaussian blur sigma 1.5" in r.protocol.lq_source
    assert main(["--model", "bicubic", "--scale", "4", "--gt", str(gt_dir), "--degradation", "blur:x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(EvalError, match="takes --gt and no --lq"):
        evaluate("bicubic", gt_dir, lq=gt_dir, scale=4, degradation="blur:1", progress=False)
