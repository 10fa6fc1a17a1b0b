"""The batch CLI end to end, with real image files of every kind and every bad-input kind."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, photo
from swinir_app import Restorer
from swinir_app.images import read_image
from swinir_app.upscale import main


@pytest.fixture(scope="module")
def small_rgb():
    return np.ascontiguousarray(photo("chelsea")[60:108, 120:184])  # 48 x 64


def write_inputs(folder: Path, rgb: np.ndarray) -> dict:
    """One file per supported kind; returns name -> expected output shape."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = rgb.shape[:2]
    Image.fromarray(rgb).save(folder / "plain.png")
    cv2.imwrite(str(folder / "deep16.png"), cv2.cvtColor(rgb.astype(np.uint16) * 257, cv2.COLOR_RGB2BGR))
    alpha = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    sub = folder / "sub" / "ünïcødé 画像"
    sub.mkdir(parents=True)
    Image.fromarray(rgb).save(sub / "nested.webp", quality=95)
    return {"plain.png": (2 * h, 2 * w, 3), "deep16.png": (2 * h, 2 * w, 3), "rgba.png": (2 * h, 2 * w, 4),
            "gray.png": (2 * h, 2 * w), "palette.png": (2 * h, 2 * w, 3), "cmyk.jpg": (2 * h, 2 * w, 3),
            "rotated.jpg": (2 * w, 2 * h, 3)}


def write_bad_inputs(folder: Path, rgb: np.ndarray) -> dict:
    """name -> a word the error line must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.png").write_text("this is not an image")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(rgb).save(folder / "full.png")
    data = (folder / "full.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "full.png").unlink()
    Image.fromarray(np.ones((8, 8), np.float32), mode="F").save(folder / "float.tif")
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(folder / "bomb.png")
    return {"text.png": "not an image", "empty.png": "empty", "truncated.png": "truncated",
            "float.tif": "unsupported", "bomb.png": "exceeds"}


def test_every_kind_of_input(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    expected = write_inputs(src, small_rgb)
    rc = main([str(src), "-o", str(out), "--model", str(ckpt), "--recursive", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    for name, shape in expected.items():
        got = read_image(out / name)
        assert got.array.shape == shape, name
    assert read_image(out / "deep16.png").array.dtype == np.uint16
    nested = out / "sub" / "ünïcødé 画像" / "nested.webp"
    assert read_image(nested).array.shape == (96, 128, 3)
    assert "done 8, skipped 0, failed 0" in err
    # The rotated JPEG was turned upright before restoring.
    upright = Restorer(str(ckpt), device="cpu").restore(np.rot90(small_rgb, -1).copy()).astype(float)
    assert np.abs(read_image(out / "rotated.jpg").array - upright).mean() < 6
    assert not list(out.rglob("*.part"))


def test_bad_inputs_are_one_line_each_and_the_rest_still_run(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    bad = write_bad_inputs(src, small_rgb)
    Image.fromarray(small_rgb).save(src / "good.png")
    rc = main([str(src), str(tmp_path / "missing.png"), "-o", str(out), "--model", str(ckpt), "--device", "cpu",
               "--max-pixels", "50000"])
    err = capsys.readouterr().err
    assert rc == 1
    assert (out / "good.png").exists()
    for name, word in bad.items():
        lines = [ln for ln in err.splitlines() if name in ln]
        assert len(lines) == 1 and word in lines[0], (name, err)
        assert not (out / name).exists()
    assert "missing.png: no such file" in err
    assert "Traceback" not in err
    assert "done 1, skipped 0, failed 6" in err


def test_unreadable_file(ckpt, small_rgb, tmp_path):
    Image.fromarray(small_rgb).save(tmp_path / "ok.png")
    Image.fromarray(small_rgb).save(tmp_path / "secret.png")
    os.chmod(tmp_path / "secret.png", 0o000)
    cmd = [sys.executable, "-m", "swinir_app.upscale", str(tmp_path / "ok.png"), str(tmp_path / "secret.png"),
           "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu"]
    if os.geteuid() == 0:  # root reads everything: drop the capabilities that let it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert r.returncode == 1, r.stderr
    assert "secret.png: permission denied" in r.stderr
    assert (tmp_path / "out" / "ok.png").exists()


def test_existing_outputs_skip_overwrite_and_suffix(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(small_rgb).save(src / "a.png")
    out.mkdir()
    (out / "a.png").write_bytes(b"precious")
    args = [str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]
    # An existing output is skipped, not a failure, with a note on how to replace it; never overwritten.
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 output already exists and was skipped; --overwrite replaces it" in err and "skipped 1" in err
    assert (out / "a.png").read_bytes() == b"precious"
    assert main(args + ["--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1" in err and "note" not in err and (out / "a.png").read_bytes() == b"precious"
    assert main(args + ["--overwrite"]) == 0
    assert read_image(out / "a.png").array.shape == (96, 128, 3)
    assert main(args + ["--suffix", "_x2", "--ext", "jpg", "--quality", "80", "--outscale", "1.5"]) == 0
    assert read_image(out / "a_x2.jpg").array.shape == (72, 96, 3)
    capsys.readouterr()


def test_tiling_and_precision_options_reach_the_engine(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    main([str(src), "-o", str(tmp_path / "whole"), "--model", str(ckpt), "--device", "cpu"])
    main([str(src), "-o", str(tmp_path / "tiled"), "--model", str(ckpt), "--device", "cpu", "--tile", "32",
          "--tile-overlap", "16", "--precision", "auto"])
    a = read_image(tmp_path / "whole" / "a.png").array.astype(float)
    b = read_image(tmp_path / "tiled" / "a.png").array.astype(float)
    assert 0 < np.abs(a - b).mean() < 2.0
    capsys.readouterr()


def test_usage_and_model_errors_exit_2(ckpt, tmp_path, capsys):
    assert main([str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "nope.pth")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.pth" in err and "Traceback" not in err
    for bad in (["--tile", "big"], []):  # argparse's errors: one line, exit 2, whatever the option
        with pytest.raises(SystemExit) as e:
            main([str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(ckpt), *bad] if bad else ["-o", "x"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
        assert err.rstrip().endswith("(see python -m swinir_app.upscale --help)")


def test_ctrl_c_leaves_no_partial_files(ckpt, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    big = cv2.resize(photo("astronaut"), (256, 256))
    for i in range(6):
        Image.fromarray(np.roll(big, i * 10, axis=0)).save(src / f"img{i}.png")
    proc = subprocess.Popen([sys.executable, "-m", "swinir_app.upscale", str(src), "-o", str(out),
                             "--model", str(ckpt), "--device", "cpu"], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("img*.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not list(out.glob("*.part")) and not list(out.glob(".*"))
    written = list(out.glob("img*.png"))
    assert 1 <= len(written) < 6
    for f in written:
        assert read_image(f).array.shape == (512, 512, 3)


@pytest.mark.slow
def test_torchrun_shards_inputs_across_ranks(ckpt, small_rgb, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(5):
        Image.fromarray(np.roll(small_rgb, i, axis=1)).save(src / f"{i}.png")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "swinir_app.upscale", str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(5)]
    assert "done 5, skipped 0, failed 0" in r.stderr and "on 2 processes" in r.stderr
    assert "appeared meanwhile" not in r.stderr


def test_icc_profile_is_kept(ckpt, small_rgb, tmp_path, capsys):
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "tagged.png"
    Image.fromarray(small_rgb).save(src, icc_profile=icc)
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu"]) == 0
    assert read_image(tmp_path / "out" / "tagged.png").icc_profile == icc
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu", "--ext", "jpg"]) == 0
    assert read_image(tmp_path / "out" / "tagged.jpg").icc_profile == icc
    capsys.readouterr()


def test_outputs_get_normal_permissions(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    old = os.umask(0o022)
    try:
        assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "a.png").stat().st_mode & 0o777 == 0o666 & ~0o022
    capsys.readouterr()


def test_settings_errors_name_their_cause(ckpt, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    cases = [(["--tile=-8"], "argument --tile: must be 'auto', 'none' or a number of pixels, got '-8'"),
             (["--tile", "lots"], "argument --tile: must be 'auto', 'none' or a number of pixels, got 'lots'"),
             (["--precision", "fp16", "--device", "cpu"], "--precision fp16: fp16 is for GPUs"),
             (["--device", "gpu"], "--device gpu: not a device")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda: CUDA is not available on this machine"))
    for extra, expected in cases:
        try:
            code = main([str(src), "-o", str(tmp_path / "o"), "--model", str(ckpt), *extra])
        except SystemExit as e:  # argparse's own checks
            code = e.code
        assert code == 2
        err = capsys.readouterr().err
        assert err.strip() == f"error: {err.strip()[7:]}" and expected in err and err.count("\n") == 1, err
        assert "cannot load model" not in err


def test_tile_0_an_input_named_twice_and_a_rerun_with_nothing_to_do(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(small_rgb).save(src / "c.png")
    assert main([str(src / "c.png"), str(src), "-o", str(out), "--model", str(ckpt), "--tile", "0"]) == 0
    err = capsys.readouterr().err
    assert f"note: {src / 'c.png'}: given more than once; restored once" in err and "done 1, skipped 0" in err
    assert read_image(out / "c.png").array.shape == (96, 128, 3)  # --tile 0: the whole image at once
    # Every output there: no model is loaded, so a zoo model that is not downloaded here does not matter
    # (offline), while a name that is no model at all is still an error.
    assert main([str(src), "-o", str(out), "--model", "classical-x4", "--weights-dir", str(tmp_path / "empty")]) == 0
    assert "done 0, skipped 1, failed 0" in capsys.readouterr().err
    assert main([str(src), "-o", str(out), "--model", str(tmp_path / "gone.pth")]) == 2
    assert f"error: cannot load model '{tmp_path / 'gone.pth'}': no such file or folder" in capsys.readouterr().err


def test_bf16_on_a_cpu_without_native_bf16_is_refused(ckpt, tmp_path):
    """For real, on any x86 machine: oneDNN limited to AVX2 has no bf16 kernels (the AMD EPYC case)."""
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    code = ("import sys; from swinir_app.network import hardware; from swinir_app.upscale import main; "
            "assert not hardware.cpu().bf16, hardware.cpu(); sys.exit(main(sys.argv[1:]))")
    args = [str(src), "-o", str(tmp_path / "o"), "--model", str(ckpt), "--device", "cpu"]
    p = subprocess.run([sys.executable, "-c", code, *args, "--precision", "bf16"], env=env, capture_output=True,
                       text=True, cwd=REPO)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: --precision bf16: this CPU (") and "use fp32 or auto" in p.stderr
    assert p.stderr.count("\n") == 1 and not (tmp_path / "o").exists()
    # auto picks a precision that works here.
    p = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert read_image(tmp_path / "o" / "a.png").array.shape == (16, 16, 3)


# ---- special files, leftovers and output folders that cannot take the results ------------------------


def test_devices_and_pipes_are_refused_without_being_read(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(small_rgb).save(src / "good.png")
    os.mkfifo(src / "pipe.png")  # opening it for reading would wait for a writer forever
    args = [str(src / "pipe.png"), "/dev/zero", str(src / "good.png"), "-o", str(tmp_path / "out"), "--model",
            str(ckpt), "--device", "cpu"]
    p = subprocess.run([sys.executable, "-m", "swinir_app.upscale", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("not a regular file (a device, pipe or socket)" in e for e in errors)
    assert "done 1, skipped 0, failed 2" in p.stderr and (tmp_path / "out" / "good.png").is_file()


def test_oversized_files_are_refused_before_reading(ckpt, tmp_path, capsys):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(200 << 20)  # 200 MB (sparse): over what 1,000,000 pixels may take
    assert main([str(big), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--max-pixels", "1000000"]) == 1
    assert "209,715,200 bytes is over the limit of 75,108,864 for an image" in capsys.readouterr().err


def test_stale_part_files_of_a_killed_run_are_removed(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "a.png", tmp_path / "out"
    Image.fromarray(small_rgb).save(src)
    out.mkdir()
    stale, fresh, other = out / ".b.png.k3j_x9q2.part", out / ".c.png.a1b2c3d4.part", out / "notes.part"
    for path in (stale, fresh, other):
        path.write_bytes(b"half an image")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # SIGKILLed an hour ago
    os.utime(other, (time.time() - 3600, time.time() - 3600))  # not ours: another name pattern
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 0
    assert f"note: removed {stale}, left by an interrupted run" in capsys.readouterr().err
    assert not stale.exists() and fresh.exists() and other.exists()  # a writer may still own the fresh one


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_unwritable_output_folders_fail_before_any_image_is_computed(ckpt, small_rgb, tmp_path, capsys, kind):
    src, out = tmp_path / "a.png", tmp_path / "out"
    Image.fromarray(small_rgb).save(src)
    if os.geteuid() == 0:  # root writes through permissions: a real read-only or tiny file system
        if not _mount_tmpfs(out, "ro,size=1m" if kind == "read-only" else "size=16k"):
            pytest.skip("cannot mount a tmpfs here")
    elif kind == "read-only":
        out.mkdir()
        out.chmod(0o555)
    else:
        pytest.skip("a full file system needs root to mount")
    try:
        if kind == "full":
            (out / "filler").write_bytes(b"x" * 12_000)
        assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        expected = "cannot write to the output folder" if kind == "read-only" else "MB free; the first result"
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
        assert "images" not in err  # no progress bar: nothing was computed
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(out)], capture_output=True)
        else:
            out.chmod(0o755)


@pytest.mark.parametrize("ext", ["png", "auto"])
def test_colliding_output_names_stop_the_run_before_any_model_work(ckpt, small_rgb, tmp_path, capsys, ext):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "a.jpg", "b.jpg", "b.JPG"):
        Image.fromarray(small_rgb).save(src / name, format="PNG" if name.endswith("png") else "JPEG")
    # A model path that does not exist: had the run reached the model, the error would name it.
    code = main([str(src), "-o", str(out), "--model", str(tmp_path / "never-loaded.pth"), "--ext", ext, "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "never-loaded" not in err and not out.exists()
    lines = err.strip().splitlines()
    expected = {"png": [("a.jpg", "a.png", "a.png", "--ext auto keeps their extensions"),
                        ("b.JPG", "b.jpg", "b.png", "rename one, or write them to separate output folders")],
                "auto": [("b.JPG", "b.jpg", "b.jpg", "rename one, or write them to separate output folders")]}[ext]
    assert len(lines) == len(expected), err
    for line, (first, second, dst, advice) in zip(lines, expected):
        assert line == (f"error: {src / first} and {src / second} would be written to the same file, {out / dst}; "
                        f"{advice}")


def test_counts_equal_the_files_written(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a.png", "a.jpg", "b.jpg"):
        Image.fromarray(small_rgb).save(src / name, format="PNG" if name.endswith("png") else "JPEG")
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--ext", "auto"]) == 0
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.png", "b.jpg"]


def test_an_input_is_never_its_own_output(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(small_rgb).save(src / "c.png")
    Image.fromarray(small_rgb).save(src / "d.png")
    os.symlink(src / "d.png", tmp_path / "link.png")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    code = main([str(src), "-o", str(src), "--model", str(ckpt), "--device", "cpu", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert sum("is an input (the same file); not written" in ln for ln in err.splitlines()) == 2
    assert "done 0, skipped 0, failed 2" in err
    # The same file through a link: out/link.png is d.png.
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(src / "d.png", out / "d.png")
    code = main([str(src / "d.png"), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and "is an input" in err and (src / "d.png").read_bytes() == before["d.png"]


def test_what_a_folder_scan_leaves_out_is_said(ckpt, small_rgb, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(small_rgb).save(src / "a.png")
    Image.fromarray(small_rgb).save(src / "sub" / "b.png")
    os.symlink(tmp_path / "gone.png", src / "dangling.png")
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert f"note: {src / 'dangling.png'}: a link to nothing; skipped" in err
    assert f"note: {src}: 1 sub-folder not searched (sub); --recursive descends into them" in err
    assert "done 1, skipped 0, failed 0" in err
    assert main([str(src), "-o", str(tmp_path / "all"), "--model", str(ckpt), "--device", "cpu", "--recursive"]) == 0
    err = capsys.readouterr().err
    assert "sub-folder" not in err and "done 2" in err and (tmp_path / "all" / "sub" / "b.png").exists()


def test_alpha_into_jpeg_is_said(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([small_rgb, np.full(small_rgb.shape[:2], 128, np.uint8)])).save(src)
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu", "--ext", "jpg"]) == 0
    err = capsys.readouterr().err
    assert "JPEG has no alpha, so its transparency is dropped in rgba.jpg; --ext png or webp keeps it" in err
    assert read_image(tmp_path / "out" / "rgba.jpg").array.shape == (96, 128, 3)


def test_tiles_too_small_to_pay_are_said(ckpt, small_rgb, tmp_path, capsys):
    src = tmp_path / "a.png"
    Image.fromarray(small_rgb).save(src)
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu",
                 "--tile", "8", "--tile-overlap", "8"]) == 0
    err = capsys.readouterr().err
    assert "--tile-overlap 8 is more than half of the 8-pixel tiles: 4 is used" in err
    assert "--tile 8: 165 tiles compute 3x the pixels of a.png (64x48); a larger tile, or auto, is faster" in err


def test_width_and_height_give_the_final_size_and_bad_ones_are_one_line(ckpt, tmp_path, capsys):
    """--width alone keeps the aspect ratio, both give exactly that size; with --outscale, one line and exit 2
    before any work; a size absurd for one image fails that image, the others still run."""
    from swinir_app.resize import final_size

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[:48, :64])).save(src / "a.png")
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[:2, :200])).save(src / "thin.png")  # 40 px: 20x
    assert main([str(src / "a.png"), "-o", str(tmp_path / "w"), "--model", str(ckpt), "--width", "100"]) == 0
    assert Image.open(tmp_path / "w" / "a.png").size == (100, 75)
    assert f"written to {tmp_path / 'w' / 'a.png'}" in capsys.readouterr().err  # one input: its output named
    assert main([str(src), "-o", str(tmp_path / "wh"), "--model", str(ckpt), "--width", "90", "--height", "40"]) == 1
    err = capsys.readouterr().err
    assert Image.open(tmp_path / "wh" / "a.png").size == (90, 40)  # the good one is still written
    assert "thin.png" in err and "more than 16x larger along its height" in err and "Traceback" not in err
    assert f"written to {tmp_path / 'wh'}" in err
    with pytest.raises(SystemExit) as e:
        main([str(src), "-o", str(tmp_path / "x"), "--model", str(ckpt), "-s", "2", "--width", "90"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "give a scale or a width/height, not both" in err and err.count("\n") == 1
    assert final_size(48, 64, 2) == (96, 128) and final_size(48, 64, 2, outscale=3) == (144, 192)
    assert final_size(48, 64, 4, height=96) == (96, 128)


def test_mix_seamless_and_alpha_reach_the_engine(ckpt, tmp_path, capsys):
    """--mix MODEL=W with the model itself (any W) gives the plain output; a bad weight is one line, exit 2;
    --seamless and --alpha bicubic run (their effects are tested in test_engine and test_mix)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[:24, :32])).save(src / "a.png")
    base = [str(src), "--model", str(ckpt), "--precision", "fp32"]
    assert main([*base, "-o", str(tmp_path / "plain")]) == 0
    assert main([*base, "-o", str(tmp_path / "mixed"), "--mix", f"{ckpt}=0.5"]) == 0
    plain, mixed = (read_image(tmp_path / d / "a.png").array for d in ("plain", "mixed"))
    assert np.array_equal(plain, mixed)
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "bad"), "--mix", f"{ckpt}=1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --mix") and err.count("\n") == 1 and not (tmp_path / "bad" / "a.png").exists()
    assert main([*base, "-o", str(tmp_path / "s"), "--seamless", "--alpha", "bicubic"]) == 0
    assert read_image(tmp_path / "s" / "a.png").array.shape == (48, 64, 3)
