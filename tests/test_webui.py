"""The web app for real: ``python app.py`` in a subprocess, driven by Chromium (Playwright) and gradio_client.

The browser tests share one page and run in file order, as a user would: upload and run, download,
bad files, cancel, and a good image again (whose page is saved as tests/artifacts/latest/webui.png).
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, photo
from swinir_app import SwinIR, SwinIRConfig
from swinir_app.imageio import read_image

CHROMIUM = "/usr/bin/chromium"
# The test run writes its screenshot here (ignored by git); the README shows a committed copy.
SCREENSHOT = REPO / "tests" / "artifacts" / "latest" / "webui.png"
MAX_PIXELS = 200_000  # the slow image for Cancel (120,000 pixels) fits; the oversized one (250,000) does not
MAX_FILE_SIZE = "1mb"
TIMEOUT_MS = 90_000  # two loaded CPU cores


# ---------------------------------------------------------------------------------------------
# Fixtures: a checkpoint, image files, the server


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    cat = photo("chelsea")
    Image.fromarray(np.ascontiguousarray(cat[60:108, 120:184])).save(d / "small.png")  # 64 x 48
    Image.fromarray(np.ascontiguousarray(cat[30:150, 110:270])).save(d / "cat.png")  # 160 x 120
    Image.fromarray(np.ascontiguousarray(photo("astronaut")[:300, :400])).save(d / "slow.png")  # 400 x 300
    Image.fromarray(np.zeros((500, 500, 3), np.uint8)).save(d / "big.png")  # 250,000 pixels
    data = (d / "small.png").read_bytes()
    (d / "corrupt.png").write_bytes(data[: len(data) // 2])  # a PNG cut in half
    (d / "huge.png").write_bytes(np.random.default_rng(0).bytes(1_500_000))  # over the upload limit
    deep = cat[60:108, 120:184].astype(np.uint16) * 257 + 100
    cv2.imwrite(str(d / "deep16.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    with zipfile.ZipFile(d / "album.zip", "w") as z:
        z.write(d / "small.png", "holiday/one.png")
        z.writestr("holiday/notes.png", b"not an image at all")
        z.writestr("__MACOSX/holiday/._one.png", b"resource fork")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(ckpt, tmp_path_factory):
    """``python app.py`` on a free port; yields (url, log_path). Stopped with Ctrl-C so it cleans up."""
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    log_path = tmp / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "SWINIR_APP_HOME": str(tmp / "weights"),
           "GRADIO_TEMP_DIR": str(tmp / "gradio"), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--model", str(ckpt),
           "--device", "cpu", "--max-pixels", str(MAX_PIXELS), "--max-file-size", MAX_FILE_SIZE]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} in 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# The browser


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
    url, _ = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.outside = []  # requests that left this machine: there must be none (the app works offline)
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else page.outside.append(r.url))
        page.goto(url)
        page.wait_for_selector("#run")
        yield page
        browser.close()


def expect(locator):
    from playwright.sync_api import expect as _expect
    return _expect(locator)


def upload(page, path: Path) -> None:
    """Put ``path`` in the input image, replacing what is there, as a user's drop or click would."""
    remove = page.locator("#input-image button[aria-label='Remove Image']")
    if remove.count():
        remove.first.click()
        expect(remove).to_have_count(0)
    page.locator("#input-image input[type=file]").set_input_files(str(path))


def uploaded(page) -> None:
    expect(page.locator("#input-image button[aria-label='Remove Image']")).to_have_count(1, timeout=TIMEOUT_MS)


def test_page_loads_offline_with_the_model(page):
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile("tiny_x2.pth"))
    expect(page.locator("#model-info")).to_contain_text("super-resolution ×2")
    expect(page.locator("#outscale")).to_be_visible()  # an SR model: its scale is the control
    expect(page.get_by_text("Advanced")).to_be_visible()
    assert page.locator(".gallery img, [data-testid='gallery'] img, button img").count() >= 1  # examples
    assert page.outside == []


def test_upload_run_and_download_full_resolution(page, files, tmp_path):
    upload(page, files / "small.png")
    uploaded(page)
    page.click("#run")
    status = page.locator("#status")
    expect(status).to_contain_text("64×48 → 128×96", timeout=TIMEOUT_MS)
    assert re.search(r"\d+\.\d\d s", status.inner_text())  # the time taken
    expect(page.locator("#comparison img")).not_to_have_count(0)  # the before/after slider has both
    link = page.locator("#result-file a[download]")
    expect(link).to_contain_text("KB")
    with page.expect_download() as info:
        link.first.click()
    download = info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.name == "small_x2.png"
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (64 * 2, 48 * 2)  # input size x scale: the full result, not a preview


def test_bad_files_say_what_is_wrong(page, files, server):
    status = page.locator("#status")
    upload(page, files / "corrupt.png")
    uploaded(page)
    page.click("#run")
    expect(status).to_contain_text("corrupt.png: truncated or corrupt", timeout=TIMEOUT_MS)
    expect(status).to_be_visible()
    expect(page.locator("#result-file a[download]")).to_have_count(0)  # no stale result beside an error

    upload(page, files / "big.png")
    uploaded(page)
    page.click("#run")
    expect(status).to_contain_text("big.png: 500x500 = 250,000 pixels exceeds the limit of 200,000",
                                   timeout=TIMEOUT_MS)

    upload(page, files / "huge.png")  # over --max-file-size: refused before it is sent
    expect(page.get_by_text(re.compile(r"exceed the maximum allowed size of 1(\.0)? ?MB", re.I))).to_be_visible()
    for close in page.locator("[data-testid='toast-close']").all():
        close.click()
    _, log_path = server
    assert "Traceback" not in log_path.read_text()


def test_cancel_stops_the_work(page, files, server):
    _, log_path = server
    page.get_by_text("Advanced").click()
    tile = page.get_by_label("Tile size (input pixels)")
    tile.fill("16")  # ~1,800 small tiles: seconds of work, with a progress bar
    tile.press("Enter")
    upload(page, files / "slow.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#comparison").get_by_text(re.compile(r"tiles"))).to_be_visible()  # the progress bar
    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    tile.fill("auto")
    tile.press("Enter")
    page.get_by_text("Advanced").click()
    # The next job waits for the cancelled one to let go of the device; had it not stopped, it
    # would have finished and logged its result first.
    upload(page, files / "small.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("64×48 → 128×96", timeout=TIMEOUT_MS)
    assert "400×300 →" not in log_path.read_text()


def test_a_good_image_still_works(page, files):
    upload(page, files / "cat.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("160×120 → 320×240", timeout=TIMEOUT_MS)
    expect(page.locator("#result-file")).to_contain_text("cat_x2")
    page.mouse.move(0, 0)
    page.wait_for_timeout(1500)  # the outputs' fade-in
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    assert page.outside == []


def test_batch_tab(page, files, tmp_path):
    page.get_by_role("tab", name="Batch").click()
    page.locator("#batch-in input[type=file]").set_input_files(
        [str(files / "small.png"), str(files / "corrupt.png"), str(files / "album.zip")])
    expect(page.locator("#batch-in")).to_contain_text("album")
    page.click("#batch-run")
    report = page.locator("#batch-report")
    expect(report).to_contain_text("2 of 4 images done", timeout=TIMEOUT_MS)
    expect(report).to_contain_text("corrupt.png: truncated or corrupt")
    expect(report).to_contain_text("album/holiday/notes.png: not an image")
    with page.expect_download() as info:
        page.locator("#batch-out a[download]").first.click()
    path = tmp_path / "results.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["album/holiday/one.png", "errors.txt", "small.png"]
        assert read_image(z.read("small.png")).array.shape == (96, 128, 3)
    page.get_by_role("tab", name="Single image").click()


# ---------------------------------------------------------------------------------------------
# gradio_client


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server[0], verbose=False)


def test_client_restore(client, files):
    from gradio_client import handle_file
    path, info = client.predict(handle_file(str(files / "small.png")), api_name="/restore")
    with Image.open(path) as img:
        assert img.size == (128, 96)
    assert "64×48 → 128×96" in info and "tiny_x2.pth" in info
    path, _ = client.predict(handle_file(str(files / "deep16.png")), outscale=3, api_name="/restore")
    out = read_image(path).array
    assert out.dtype == np.uint16 and out.shape == (144, 192, 3)  # 16 bits kept; Lanczos to x3


def test_client_errors_are_one_line_and_the_app_keeps_serving(client, files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="corrupt.png: truncated or corrupt"):
        client.predict(handle_file(str(files / "corrupt.png")), api_name="/restore")
    with pytest.raises(AppError, match="cannot load model .*no such file"):
        client.predict(handle_file(str(files / "small.png")), model="/nowhere/x.pth", api_name="/restore")
    with pytest.raises(AppError, match="tile size must be"):
        client.predict(handle_file(str(files / "small.png")), tile="big", api_name="/restore")
    path, _ = client.predict(handle_file(str(files / "small.png")), api_name="/restore")
    assert Image.open(path).size == (128, 96)


def test_client_batch(client, files):
    from gradio_client import handle_file
    zip_path, report = client.predict([handle_file(str(files / f)) for f in ("album.zip", "big.png")],
                                      api_name="/batch")
    assert report.splitlines()[0].startswith("1 of 3 images done")
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["album/holiday/one.png", "errors.txt"]
        errors = z.read("errors.txt").decode()
    assert "big.png: 500x500 = 250,000 pixels exceeds" in errors and "notes.png: not an image" in errors


# ---------------------------------------------------------------------------------------------
# In process: the model cache, cancellation, the choice of models, the queue


@pytest.fixture()
def webapp(ckpt, tmp_path, monkeypatch):
    from swinir_app.webui import AppConfig, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    return WebApp(AppConfig(model=str(ckpt), device="cpu", max_pixels=MAX_PIXELS))


def test_models_are_loaded_once(webapp, files):
    from swinir_app.webui import RunSettings
    cancel = threading.Event()
    for tile in ("auto", None, 32):
        r = webapp.restore_file(str(files / "small.png"), RunSettings(webapp.default_spec, tile=tile), cancel)
        assert r.output.shape == (96, 128, 3)
    assert webapp.models.loads == 1


def test_cancel_stops_between_tiles(webapp, files):
    from swinir_app.webui import Cancelled, RunSettings
    cancel, calls = threading.Event(), []

    def report(done, total):
        calls.append((done, total))
        cancel.set()  # Cancel pressed while the first tile ran

    with pytest.raises(Cancelled):
        webapp.restore_file(str(files / "small.png"), RunSettings(webapp.default_spec, tile=16), cancel, report)
    assert len(calls) == 1 and calls[0][1] > 1
    assert not webapp.device_lock.locked()


def test_controls_follow_the_task(tmp_path, files):
    """A denoising model: no scale; noise can be added first to try it on a clean photo."""
    from swinir_app.webui import AppConfig, RunSettings, WebApp, degrade_update, outscale_update
    config = SwinIRConfig(upscale=1, in_chans=3, img_size=32, window_size=8, depths=(2,), num_heads=(2,),
                          embed_dim=16, upsampler="", drop_path_rate=0.0)
    path = tmp_path / "dn.pth"
    torch.save({"params": SwinIR(config).state_dict()}, path)
    app = WebApp(AppConfig(model=str(path), device="cpu"))
    info = app.describe(str(path))
    assert info.task == "denoise" and "noise level not recorded" in info.markdown()
    assert outscale_update(info.config)["visible"] is False
    degrade = degrade_update(info.config)
    assert degrade["visible"] and "noise" in degrade["label"]
    r = app.restore_file(str(files / "small.png"), RunSettings(str(path), degrade=25), threading.Event())
    assert r.output.shape == (48, 64, 3) and app.result_file(r).name == "small_denoised.png"
    assert np.abs(r.model_input.astype(int) - read_image(files / "small.png").array).mean() > 5  # noise added


def test_model_choices(tmp_path):
    """The bundled models, the zoo models already downloaded, and a custom path; bundled-x4 first."""
    from swinir_app.webui import CUSTOM, Catalogue
    from swinir_app.zoo import ZOO, bundled_entries
    (tmp_path / ZOO["lightweight-x2"].filename).write_bytes(b"")  # "cached": the file is there
    cat = Catalogue(None, weights_dir=tmp_path)
    values = [v for _, v in cat.choices()]
    bundled = [e.name for e in bundled_entries()]
    assert values == [*bundled, "lightweight-x2", CUSTOM]
    expected = "bundled-x4" if "bundled-x4" in bundled else (bundled or ["lightweight-x2"])[0]
    assert cat.default() == expected
    assert Catalogue("some/file.pth", weights_dir=tmp_path).default() == "some/file.pth"
    for name in ("color-dn-15", "color-dn-50"):  # a denoiser's control: the trained noise levels that are here
        (tmp_path / ZOO[name].filename).write_bytes(b"")
    assert Catalogue(None, weights_dir=tmp_path).siblings(ZOO["color-dn-50"]) == [
        ("σ = 15", "color-dn-15"), ("σ = 50", "color-dn-50")]


def test_limits_parse():
    from swinir_app.webui import WebError, parse_size, parse_tile
    assert parse_size("20mb") == 20 << 20 and parse_size("1.5 GB") == 3 << 29 and parse_size("512") == 512
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert (parse_tile("auto"), parse_tile("none"), parse_tile("256")) == ("auto", None, 256)
    with pytest.raises(WebError, match="tile size must be"):
        parse_tile("big")


def test_one_job_at_a_time(webapp):
    """Everything that runs a model is in one concurrency group of one: parallel users queue."""
    from swinir_app.webui import DEVICE_QUEUE, build
    demo = build(webapp)
    runners = {f.api_name: f for f in demo.fns.values() if f.name in ("ui_restore", "ui_batch", "restore", "batch")}
    assert len(runners) == 4
    for f in runners.values():
        assert (f.concurrency_id, f.concurrency_limit) == (DEVICE_QUEUE, 1)
    public = {f.api_name for f in demo.fns.values() if f.api_visibility == "public"}
    assert public == {"restore", "batch"}


def test_engine_does_not_import_the_ui():
    code = "import sys, swinir_app.engine, swinir_app.upscale; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
