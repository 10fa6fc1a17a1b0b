"""The web app for real: ``python app.py`` in a subprocess, driven by Chromium (Playwright) and gradio_client.

The browser tests share one page and run in file order, as a user would: upload and run, download,
bad files, cancel, and a good image again (whose page is saved as tests/artifacts/latest/webui.png).
"""
import os
import re
import signal
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
from webserver import free_port, serving
from swinir_app import SwinIR, SwinIRConfig
from swinir_app.images import read_image

CHROMIUM = "/usr/bin/chromium"
# The test run writes its screenshot here (ignored by git); the README shows a committed copy.
SCREENSHOT = REPO / "tests" / "artifacts" / "latest" / "webui.png"
MAX_PIXELS = 200_000  # the slow image for Cancel (120,000 pixels) fits; the oversized one (250,000) does not
MAX_FILE_SIZE = "1mb"
MAX_OUTPUT_PIXELS = 600_000  # the 400 x 300 image fits at x2 (480,000), not at x4
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


@pytest.fixture(scope="module")
def server(ckpt, tmp_path_factory):
    """``python app.py`` on a free port; yields a Server (url, log, tmp, proc). The last test stops it
    with SIGTERM, as docker stop does; otherwise it is stopped with Ctrl-C. Both clean up."""
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    log_path = tmp / "server.log"
    models = tmp / "weights"  # the weights cache, and so the models folder users may pick from
    models.mkdir()
    (models / "mine.pth").write_bytes(ckpt.read_bytes())
    from spandrel.architectures.Compact import Compact  # another architecture: Real-ESRGAN's SRVGGNet
    torch.manual_seed(0)
    torch.save(Compact(num_feat=16, num_conv=4, upscale=2).state_dict(), models / "compact_x2.pth")
    (tmp / "run").mkdir()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "SWINIR_APP_HOME": str(models),
           "TMPDIR": str(tmp / "run"), "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    cmd = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--model", str(ckpt),
           "--device", "cpu", "--max-pixels", str(MAX_PIXELS), "--max-file-size", MAX_FILE_SIZE,
           "--max-output-pixels", str(MAX_OUTPUT_PIXELS)]
    url = f"http://127.0.0.1:{port}/"
    with serving(cmd, env, url, log_path) as proc:
        yield Server(url, log_path, tmp, proc)


class Server(tuple):
    """(url, log_path), with the server's temp root and process."""

    def __new__(cls, url, log_path, tmp, proc):
        self = super().__new__(cls, (url, log_path))
        self.url, self.log, self.tmp, self.proc = url, log_path, tmp, proc
        return self


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


@pytest.mark.slow
def test_page_loads_offline_with_the_model(page):
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile("tiny_x2.pth"))
    expect(page.locator("#model-info")).to_contain_text("super-resolution ×2")
    expect(page.locator("#outscale")).to_be_visible()  # an SR model: its scale is the control
    expect(page.get_by_text("Advanced")).to_be_visible()
    assert page.locator(".gallery img, [data-testid='gallery'] img, button img").count() >= 1  # examples
    assert page.outside == []
    # The chosen model's name fits its box, unclipped.
    assert page.eval_on_selector("#model input", "e => e.scrollWidth <= e.clientWidth"), \
        page.eval_on_selector("#model input", "e => [e.value, e.scrollWidth, e.clientWidth]")


@pytest.mark.slow
def test_the_console_names_the_apps_own_url_and_flags(server):
    log = server.log.read_text()
    assert f"SwinIR upscaler at {server.url} (Ctrl-C stops it; --host and --port choose where, --share makes a " \
           f"public link)" in log
    assert "share=True" not in log and "launch()" not in log


@pytest.mark.slow
def test_upload_run_and_download_full_resolution(page, files, tmp_path):
    upload(page, files / "small.png")
    uploaded(page)
    page.click("#run")
    status = page.locator("#status")
    expect(status).to_contain_text("64×48 → 128×96", timeout=TIMEOUT_MS)
    assert re.search(r"\d+\.\d\d s", status.inner_text())  # the time taken
    expect(page.locator("#comparison img")).not_to_have_count(0)  # the before/after slider has both
    # Labelled halves, and zoom: the wheel over the image scales both halves.
    labels = page.eval_on_selector("#comparison", "e => [getComputedStyle(e, '::before').content, "
                                                  "getComputedStyle(e, '::after').content]")
    assert labels == ['"Before (input, bicubic)"', '"After"']
    expect(page.locator("#zoom-hint")).to_contain_text("Scroll over the image to zoom in")
    img = page.locator("#comparison img").first
    box = img.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    for _ in range(6):  # each wheel step zooms by a few percent
        page.mouse.wheel(0, -200)
        page.wait_for_timeout(100)
    transform = img.evaluate("e => getComputedStyle(e).transform")
    assert transform.startswith("matrix(") and float(transform[7:].split(",")[0]) > 1.2, transform
    page.locator("#comparison button[aria-label='Undo'], #comparison button[title='Undo']").first.click()
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


@pytest.mark.slow
def test_a_model_of_another_architecture_runs_in_the_page(page, files):
    """A Compact (SRVGGNet) file in the models folder, picked by path: described from what spandrel
    detected, and run."""
    model = page.get_by_role("combobox", name="Model")
    model.click()
    page.get_by_role("option", name="Custom checkpoint or zoo name…").click()
    box = page.locator("#custom-model textarea, #custom-model input").first
    box.fill("compact_x2.pth")
    box.press("Enter")
    expect(page.locator("#model-info")).to_contain_text("super-resolution ×2", timeout=TIMEOUT_MS)
    expect(page.locator("#model-info")).to_contain_text("RealESRGAN Compact")
    upload(page, files / "small.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("64×48 → 128×96", timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("compact_x2.pth")
    model.click()  # back to the server's model for the tests that follow
    page.get_by_role("option", name=re.compile("tiny_x2.pth")).click()
    expect(page.locator("#model-info")).to_contain_text("window 8", timeout=TIMEOUT_MS)


@pytest.mark.slow
def test_the_mix_slider_follows_the_model(page, files):
    """The detail <-> clean slider shows for a model with a partner (the bundled pair), and runs the blend."""
    expect(page.locator("#mix")).to_be_hidden()  # the server's own model has no partner
    model = page.get_by_role("combobox", name="Model")
    model.click()
    page.get_by_role("option", name=re.compile("^bundled-x4 ")).click()
    expect(page.locator("#mix")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#mix")).to_contain_text("Detail \u2194 clean")
    page.locator("#mix input[type=number]").fill("0.3")
    page.locator("#mix input[type=number]").press("Enter")
    upload(page, files / "small.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("bundled-x4 + 30% bundled-real-x4", timeout=TIMEOUT_MS)
    expect(page.locator("#status")).to_contain_text("64×48 → 256×192")
    model.click()  # back to the server's model for the tests that follow
    page.get_by_role("option", name=re.compile("tiny_x2.pth")).click()
    expect(page.locator("#model-info")).to_contain_text("window 8", timeout=TIMEOUT_MS)
    expect(page.locator("#mix")).to_be_hidden()


@pytest.mark.slow
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


@pytest.mark.slow
def test_cancel_stops_the_work(page, files, server):
    _, log_path = server
    page.get_by_text("Advanced").click()
    tile = page.get_by_label("Tile size (input pixels)")
    tile.fill("16")  # ~1,800 small tiles: seconds of work, with a progress bar
    tile.press("Enter")
    upload(page, files / "slow.png")
    uploaded(page)
    page.click("#run")
    expect(page.locator("#comparison").get_by_text(re.compile(r"steps"))).to_be_visible()  # the progress bar
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cancel_change_the_scale_and_run_again(page, server, tmp_path):
    """In one session: Run, Cancel, change settings, Run. The cancelled job stops (it never finishes),
    its stale result goes, and the new result comes in about one run's time."""
    image = tmp_path / "long.png"  # 360 x 300: its own size, so the log tells its runs from other tests'
    Image.fromarray(np.ascontiguousarray(photo("astronaut")[:300, 20:380])).save(image)
    page.get_by_text("Advanced").click()  # open while the test runs
    tile = page.get_by_label("Tile size (input pixels)")
    tile.fill("none")  # the whole image in one pass: cancel is checked between blocks, not tiles
    tile.press("Enter")
    ensemble = page.get_by_label(re.compile("Self-ensemble"))
    ensemble.check()  # 8 passes: a run of many seconds
    scale = page.locator("#outscale input[type=number]")
    status = page.locator("#status")
    expect(page.locator("#result-file a[download]")).to_have_count(1)  # the previous run's result
    upload(page, image)
    uploaded(page)
    page.click("#run")
    page.wait_for_timeout(1500)  # inside the model
    ensemble.uncheck()  # the next run's settings: the same image at another scale
    scale.fill("1.5")
    scale.press("Enter")
    page.click("#cancel")
    expect(status).to_contain_text("Cancelled")
    start = time.monotonic()
    page.click("#run")  # at once
    expect(status).to_contain_text("360×300 → 540×450", timeout=TIMEOUT_MS)
    waited = time.monotonic() - start
    run = float(re.search(r"(\d+\.\d\d) s", status.inner_text()).group(1))
    assert waited < run + 8, (waited, run)  # not the cancelled run's time on top
    assert "360×300 → 720×600" not in server.log.read_text()  # the cancelled job never finished
    page.click("#cancel")  # nothing running: the result stays
    page.wait_for_timeout(500)
    expect(page.locator("#result-file a[download]")).to_have_count(1)
    # A cancelled run clears the previous result, and says so.
    ensemble.check()
    page.click("#run")
    page.wait_for_timeout(1000)
    page.click("#cancel")
    expect(status).to_contain_text("Cancelled: the run was stopped, there is no result.")
    expect(page.locator("#result-file a[download]")).to_have_count(0)
    expect(page.locator("#comparison img")).to_have_count(0)
    ensemble.uncheck()
    scale.fill("2")
    scale.press("Enter")
    tile.fill("auto")
    tile.press("Enter")
    page.get_by_text("Advanced").click()


@pytest.mark.slow
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
    expect(page.locator("#batch-gallery img")).to_have_count(2)  # the results beside the zip
    with page.expect_download() as info:
        page.locator("#batch-out a[download]").first.click()
    path = tmp_path / "results.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["album/holiday/one.png", "errors.txt", "small.png"]
        assert read_image(z.read("small.png")).array.shape == (96, 128, 3)
    page.get_by_role("tab", name="Single image").click()


@pytest.mark.slow
def test_video_tab(page, tmp_path):
    from helpers import FRAMES, describe, write_video
    clip = tmp_path / "clip.mp4"
    write_video(clip)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-in input[type=file]").set_input_files(str(clip))
    page.click("#video-run")
    expect(page.locator("#video-status")).to_contain_text(f"{FRAMES} frames in", timeout=TIMEOUT_MS)
    expect(page.locator("#video-status")).to_contain_text("128×96")
    src = page.locator("#video-out video").get_attribute("src")
    path = tmp_path / "out.mp4"
    with urllib.request.urlopen(src) as r:
        path.write_bytes(r.read())
    got, sent = describe(path), describe(clip)
    assert len(got["frames"]) == FRAMES and got["size"] == (128, 96) and got["audio"] == sent["audio"]
    page.get_by_role("tab", name="Single image").click()


def test_video_limits_and_cancel(webapp, tmp_path):
    from helpers import write_video
    from swinir_app.webui.service import Cancelled, RunSettings, WebError
    clip = tmp_path / "clip.mp4"
    write_video(clip, n=24)  # 2 s
    webapp.config.max_video_seconds = 1.5
    with pytest.raises(WebError, match=r"^clip.mp4: 2.0 s is longer than this server's limit of 1.5 s"):
        webapp.restore_video(str(clip), RunSettings(webapp.default_spec), threading.Event())
    webapp.config.max_video_seconds = 30
    cancel, seen = threading.Event(), []

    def report(done, total):
        seen.append(done)
        if done == 3:
            cancel.set()
    with pytest.raises(Cancelled):
        webapp.restore_video(str(clip), RunSettings(webapp.default_spec), cancel, report)
    assert seen == [1, 2, 3] and not webapp.device_lock.locked()
    assert not [p for p in webapp.workdir.rglob("*") if p.is_file()]  # no partial clip left
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(WebError, match=r"^notes.mp4: cannot read video"):
        webapp.restore_video(str(tmp_path / "notes.mp4"), RunSettings(webapp.default_spec), threading.Event())


def test_video_10bit_stays_10bit(webapp, tmp_path):
    import av
    from helpers import write_video
    from swinir_app.webui.service import RunSettings
    clip = tmp_path / "deep.mkv"
    write_video(clip, n=2, audio=False, bits=10)
    run = webapp.restore_video(str(clip), RunSettings(webapp.default_spec), threading.Event())
    with av.open(str(run.path)) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p10le"
        frame = next(c.decode(video=0)).to_ndarray(format="rgb48le")
        assert np.mean(frame % 257 != 0) > 0.5  # not 8-bit levels scaled up


# ---------------------------------------------------------------------------------------------
# gradio_client


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server[0], verbose=False)


@pytest.mark.slow
def test_client_restore(client, files):
    from gradio_client import handle_file
    path, info = client.predict(handle_file(str(files / "small.png")), api_name="/restore")
    with Image.open(path) as img:
        assert img.size == (128, 96)
    assert "64×48 → 128×96" in info and "tiny_x2.pth" in info
    path, _ = client.predict(handle_file(str(files / "deep16.png")), outscale=3, api_name="/restore")
    out = read_image(path).array
    assert out.dtype == np.uint16 and out.shape == (144, 192, 3)  # 16 bits kept; Lanczos to x3
    # Issue #33's options, after the older ones: a target size (the scale ignored), seamless, alpha, no metadata.
    path, info = client.predict(handle_file(str(files / "small.png")), outscale=3, seamless=True, alpha="model",
                                width=100, keep_metadata=False, api_name="/restore")
    assert Image.open(path).size == (100, 75) and "64×48 → 100×75" in info


@pytest.mark.slow
def test_client_errors_are_one_line_and_the_app_keeps_serving(client, files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="corrupt.png: truncated or corrupt"):
        client.predict(handle_file(str(files / "corrupt.png")), api_name="/restore")
    with pytest.raises(AppError, match="this model is not available here"):
        client.predict(handle_file(str(files / "small.png")), model="/nowhere/x.pth", api_name="/restore")
    with pytest.raises(AppError, match="tile size must be"):
        client.predict(handle_file(str(files / "small.png")), tile="big", api_name="/restore")
    with pytest.raises(AppError, match="width 10000: small.png is 64x48: a 10000x7500 output is more than 16x"):
        client.predict(handle_file(str(files / "small.png")), width=10000, api_name="/restore")
    with pytest.raises(AppError, match="tiny_x2.pth has no model to mix with"):
        client.predict(handle_file(str(files / "small.png")), mix=0.5, api_name="/restore")
    with pytest.raises(AppError, match="alpha must be bicubic or model"):
        client.predict(handle_file(str(files / "small.png")), alpha="sharp", api_name="/restore")
    path, _ = client.predict(handle_file(str(files / "small.png")), api_name="/restore")
    assert Image.open(path).size == (128, 96)


@pytest.mark.slow
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
# A remote user cannot read server files, hang the server, exhaust it, or bypass its limits


@pytest.mark.slow
def test_model_paths_outside_the_models_folder_say_nothing_about_the_file(client, files, server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from swinir_app.webui.catalogue import GENERIC_REFUSAL
    secret = tmp_path / "secret.txt"
    secret.write_text("ctoken_4e1f\nsecond line of the file\n")  # read as a pickle: "it imports token_4e1f..."
    unreadable = tmp_path / "unreadable.pth"
    unreadable.write_bytes(b"x")
    unreadable.chmod(0)
    link = server.tmp / "weights" / "escape.pth"  # inside the folder, pointing out of it
    link.symlink_to(secret)
    image = handle_file(str(files / "small.png"))
    for spec in (str(secret), "/nowhere/x.pth", str(tmp_path), str(unreadable), "/etc/shadow", "../../secret.txt",
                 str(link), "escape.pth", "~/.bashrc"):
        with pytest.raises(AppError) as e:
            client.predict(image, model=spec, api_name="/restore")
        assert str(e.value).endswith(GENERIC_REFUSAL), spec  # the same words whatever the file
        assert "token" not in str(e.value) and "second" not in str(e.value)
    # Files in the models folder, the zoo names that are here and the bundled models load.
    _, info = client.predict(image, model="mine.pth", api_name="/restore")
    assert "64×48 → 128×96" in info
    with pytest.raises(AppError, match="classical-x4 is not downloaded on this server"):
        client.predict(image, model="classical-x4", api_name="/restore")


@pytest.mark.slow
def test_output_size_scale_and_tiles_are_bounded(client, files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="output scale must be above 0 and at most 8, got 400"):
        client.predict(handle_file(str(files / "small.png")), outscale=400, api_name="/restore")
    with pytest.raises(AppError, match="the output would be 1,600x1,200 = 1,920,000 pixels, over the limit of 600,000"):
        client.predict(handle_file(str(files / "slow.png")), outscale=4, api_name="/restore")
    with pytest.raises(AppError, match="tiles is over the limit of 4,096"):
        client.predict(handle_file(str(files / "slow.png")), tile="8", tile_overlap=4, self_ensemble=True,
                       api_name="/restore")


def overlapping_zip(path: Path, entries: int = 100, size: int = 40 << 20) -> Path:
    """A zip bomb: one deflated member of ``size`` zeros, and ``entries`` directory entries all pointing at it."""
    import struct
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.png", b"\0" * size)
    data = path.read_bytes()
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12:eocd + 20])
    record = data[cd_offset:cd_offset + cd_size]
    directory = record * entries
    tail = bytearray(data[eocd:])
    tail[8:20] = struct.pack("<HHII", entries, entries, len(directory), cd_offset)
    path.write_bytes(data[:cd_offset] + directory + bytes(tail))
    return path


@pytest.mark.slow
def test_zip_bombs_and_odd_member_names(client, tmp_path):
    from gradio_client import handle_file
    bomb = overlapping_zip(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 100_000
    with zipfile.ZipFile(bomb) as z:  # the listing claims 100 files of 40 MB
        assert len(z.infolist()) == 100 and sum(m.file_size for m in z.infolist()) == 100 * (40 << 20)
    odd = tmp_path / "odd.zip"
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("a\nFORGED LINE.png", b"not an image")
        z.writestr("fine.png", png)
        z.writestr(".hidden.png", png)
        z.writestr("sub/.DS_Store", b"junk")
    start = time.monotonic()
    zip_path, report = client.predict([handle_file(str(bomb)), handle_file(str(odd))], api_name="/batch")
    lines = report.splitlines()
    assert lines[0].startswith("1 of 3 images done") and time.monotonic() - start < 60  # the bomb is one failure
    assert any(line.startswith("bomb.zip: refused: entries overlap") for line in lines)
    assert any(line.startswith("odd/a?FORGED LINE.png: not an image") for line in lines)
    assert not any(line.startswith("FORGED") for line in lines)  # a newline in a name forges no line
    assert any("skipped 2 hidden files" in line and ".hidden.png" in line for line in lines)
    with zipfile.ZipFile(zip_path) as z:
        assert sorted(z.namelist()) == ["errors.txt", "odd/fine.png"]


@pytest.mark.slow
def test_inline_images_obey_the_upload_limit(server):
    """The page sends pasted images inline as data: URLs; they get the same 1 MB limit as uploads."""
    import base64
    import json
    config = json.loads(urllib.request.urlopen(server.url + "config").read())
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "ui_restore")
    cache = [p for p in server.tmp.joinpath("run").rglob("pasted_*")]

    def join(payload: bytes):
        body = json.dumps({"data": [{"url": "data:image/png;base64," + base64.b64encode(payload).decode(),
                                     "meta": {"_type": "gradio.FileData"}}] + [None] * 14,
                           "fn_index": fn, "session_hash": "inline1", "event_data": None}).encode()
        req = urllib.request.Request(server.url + "gradio_api/queue/join", data=body,
                                     headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req, timeout=60)

    import http.client
    conn = http.client.HTTPConnection(server.url.split("//")[1].rstrip("/"), timeout=30)
    conn.putrequest("POST", "/gradio_api/queue/join")  # a 60 MB body announced: refused before it is sent
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(60 << 20))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    join(b"\0" * (1200 << 10))  # 1.2 MB: under the body limit, over the image limit
    stream = urllib.request.urlopen(server.url + "gradio_api/queue/data?session_hash=inline1", timeout=60)
    events = [json.loads(line[6:]) for line in stream.read().decode().splitlines() if line.startswith("data: ")]
    assert any("exceeds the upload limit of 1 MB" in json.dumps(ev) for ev in events), events
    assert [p for p in server.tmp.joinpath("run").rglob("pasted_*")] == cache  # nothing written


@pytest.mark.slow
def test_a_client_cancel_frees_the_device(client, files, server):
    from gradio_client import Client, handle_file
    job = client.submit(handle_file(str(files / "slow.png")), tile="16", tile_overlap=8, api_name="/restore")
    deadline = time.monotonic() + 60
    while not (job.status().progress_data or []) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the work has started: tiles are being reported
    assert job.status().progress_data, "the slow job did not start"
    assert job.cancel()
    other = Client(server.url, verbose=False)
    start = time.monotonic()
    _, info = other.predict(handle_file(str(files / "small.png")), api_name="/restore")
    assert "64×48 → 128×96" in info and time.monotonic() - start < 60
    time.sleep(1)
    assert "400×300 →" not in server.log.read_text()  # the cancelled job never finished


@pytest.mark.slow
def test_a_long_batch_lets_other_users_in_between_its_images(client, files, server, tmp_path):
    """A fair queue: while one client's long batch runs, another client's image is served between two
    of the batch's images, not after the whole batch."""
    from gradio_client import Client, handle_file
    album = tmp_path / "many.zip"
    with zipfile.ZipFile(album, "w") as z:
        for i in range(4):  # 840 KB: under the upload limit; seconds of 16-pixel tiles each
            z.write(files / "slow.png", f"{i}.png")
    job = client.submit([handle_file(str(album))], tile="16", tile_overlap=8, api_name="/batch")
    deadline = time.monotonic() + 60
    while not (job.status().progress_data or []) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the batch has started
    assert job.status().progress_data, "the batch did not start"
    other = Client(server.url, verbose=False)
    start = time.monotonic()
    _, info = other.predict(handle_file(str(files / "small.png")), api_name="/restore")
    waited = time.monotonic() - start
    assert "64×48 → 128×96" in info
    assert not job.done(), f"the batch finished first: the other image waited {waited:.0f} s"
    assert job.cancel()


# ---------------------------------------------------------------------------------------------
# In process: the model cache, cancellation, the choice of models, the queue


@pytest.fixture()
def webapp(ckpt, tmp_path, monkeypatch):
    from swinir_app.webui.service import AppConfig, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    return WebApp(AppConfig(model=str(ckpt), device="cpu", max_pixels=MAX_PIXELS))


class Recorder:
    """Stands where gradio's Progress stands, and keeps what the page tells it."""

    def __init__(self):
        self.calls = []

    def __call__(self, progress, desc=None, unit="steps", **_):
        self.calls.append((progress, desc))


@pytest.mark.parametrize("tile, steps", [("none", 2), ("16", 10)])
def test_progress_is_indeterminate_until_a_fraction_exists(webapp, files, tile, steps):
    """The page shows no bar (no "0.0%") until a fraction exists; then the engine's steps (after each
    residual group, and each tile) move it, an untiled run's too."""
    import asyncio

    from swinir_app.webui.page import Page
    from concurrent.futures import ThreadPoolExecutor
    progress = Recorder()
    call = Page(webapp).ui_restore(str(files / "small.png"), webapp.default_spec, "", 2, 0, tile, 8, "auto", False,
                                   0, False, "bicubic", 0, 0, True, None, progress=progress)
    with ThreadPoolExecutor(1) as pool:  # its own event loop: the browser tests' may be running in this thread
        out = pool.submit(asyncio.run, call).result()
    assert "64×48 → 128×96" in out[-1]["value"]
    shown = [p for p, _ in progress.calls if p is not None]
    assert progress.calls[0] in ((None, "Restoring"), (None, "Loading the model"))
    assert len(shown) > steps and all(isinstance(p, tuple) and p[1] > 1 for p in shown)
    assert [d for d, _ in shown] == sorted(d for d, _ in shown) and shown[-1][0] == shown[-1][1]


def test_kernel_errors_read_as_one_line_with_advice():
    from swinir_app.webui.service import readable
    onednn = RuntimeError("could not create a primitive descriptor for the inner product forward propagation "
                          "primitive\n  at ...\n" + "x" * 500)
    line = readable(onednn)
    assert "\n" not in line and len(line) < 320
    assert line.startswith("this device cannot run the model with these settings; choose fp32 under Advanced")
    assert readable(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                                 "you tried to allocate 68719476736 bytes")).startswith("out of memory: choose a")
    assert readable(ValueError("odd")) == ("the model failed on this image (ValueError: odd); the server log has the "
                                           "details")


def test_models_are_loaded_once(webapp, files):
    from swinir_app.webui.service import RunSettings
    cancel = threading.Event()
    for tile in ("auto", None, 32):
        r = webapp.restore_file(str(files / "small.png"), RunSettings(webapp.default_spec, tile=tile), cancel)
        assert r.output.shape == (96, 128, 3)
    assert webapp.models.loads == 1


def test_cancel_stops_between_tiles(webapp, files):
    from swinir_app.webui.service import Cancelled, RunSettings
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
    from swinir_app.webui.page import degrade_update, model_info_markdown, outscale_update
    from swinir_app.webui.service import AppConfig, RunSettings, WebApp
    config = SwinIRConfig(upscale=1, in_chans=3, img_size=32, window_size=8, depths=(2,), num_heads=(2,),
                          embed_dim=16, upsampler="", drop_path_rate=0.0)
    path = tmp_path / "dn.pth"
    torch.save({"params": SwinIR(config).state_dict()}, path)
    app = WebApp(AppConfig(model=str(path), device="cpu"))
    info = app.describe(str(path))
    assert info.task == "denoise" and "noise level not recorded" in model_info_markdown(info)
    assert outscale_update(info.config)["visible"] is False
    degrade = degrade_update(info.config)
    assert degrade["visible"] and "noise" in degrade["label"]
    r = app.restore_file(str(files / "small.png"), RunSettings(str(path), degrade=25), threading.Event())
    assert r.output.shape == (48, 64, 3) and app.result_file(r).name == "small_denoised.png"
    assert np.abs(r.model_input.astype(int) - read_image(files / "small.png").array).mean() > 5  # noise added


def test_model_choices(tmp_path):
    """The bundled models (the real-photo one first when there, then bundled-x4), the zoo models already
    downloaded, and a custom path; labels carry each bundled model's description."""
    from swinir_app.webui.service import CUSTOM, Catalogue
    from swinir_app.zoo import ZOO, bundled_entries
    (tmp_path / ZOO["lightweight-x2"].filename).write_bytes(b"")  # "cached": the file is there
    cat = Catalogue(None, weights_dir=tmp_path)
    values = [v for _, v in cat.choices()]
    names = [e.name for e in bundled_entries()]
    bundled = [n for n in ("bundled-real-x4", "bundled-x4") if n in names] + sorted(
        n for n in names if n not in ("bundled-real-x4", "bundled-x4"))
    assert values == [*bundled, "lightweight-x2", CUSTOM]
    assert cat.default() == (bundled or ["lightweight-x2"])[0]
    for entry in bundled_entries():
        label = next(text for text, value in cat.choices() if value == entry.name)
        assert (entry.description or "bundled") in label
    assert Catalogue("some/file.pth", weights_dir=tmp_path).default() == "some/file.pth"
    for name in ("color-dn-15", "color-dn-50"):  # a denoiser's control: the trained noise levels that are here
        (tmp_path / ZOO[name].filename).write_bytes(b"")
    assert Catalogue(None, weights_dir=tmp_path).siblings(ZOO["color-dn-50"]) == [
        ("σ = 15", "color-dn-15"), ("σ = 50", "color-dn-50")]


def test_limits_parse():
    from swinir_app.webui.settings import WebError, parse_size, parse_tile
    assert parse_size("20mb") == 20 << 20 and parse_size("1.5 GB") == 3 << 29 and parse_size("512") == 512
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert (parse_tile("auto"), parse_tile("none"), parse_tile("256")) == ("auto", None, 256)
    with pytest.raises(WebError, match="tile size must be"):
        parse_tile("big")
    # The CLI flags and the page share one parser: the whole-image words and 0 mean no tiles.
    from swinir_app.engine import SettingError, parse_tile as engine_parse_tile
    assert [engine_parse_tile(w) for w in ("none", "off", "whole", "0", 0, None, "auto", "64")] == \
        [None, None, None, None, None, None, "auto", 64]
    for bad in ("-5", "12.5", "big", -1):
        with pytest.raises(SettingError):
            engine_parse_tile(bad)


def test_compress_first_is_the_protocols_opencv_jpeg(files):
    from swinir_app.protocol.degrade import jpeg_input
    from swinir_app.webui.service import jpeg_compress
    a = read_image(files / "cat.png").array
    np.testing.assert_array_equal(jpeg_compress(a, 30), jpeg_input(a, 30))
    rgba = np.dstack([a, np.full(a.shape[:2], 200, np.uint8)])
    out = jpeg_compress(rgba, 30)
    np.testing.assert_array_equal(out[..., :3], jpeg_input(a, 30))
    assert (out[..., 3] == 200).all()


def test_one_job_at_a_time(webapp):
    """Everything that runs a model is in one concurrency group, whose jobs take the device one at a time,
    in turn by session: a session that queued two jobs waits for the one that queued one."""
    from swinir_app.webui.jobs import Cancelled, FairSlot, Job
    from swinir_app.webui.page import build
    from swinir_app.webui.settings import DEVICE_QUEUE, MAX_ACTIVE_JOBS
    demo = build(webapp)
    runners = {f.api_name: f for f in demo.fns.values() if f.name in ("ui_restore", "ui_batch", "ui_video", "restore",
                                                                         "batch")}
    assert len(runners) == 5
    for f in runners.values():
        assert (f.concurrency_id, f.concurrency_limit) == (DEVICE_QUEUE, MAX_ACTIVE_JOBS)
    slot, order, lock = FairSlot(), [], threading.Lock()
    jobs = [Job("big"), Job("big"), Job("big"), Job("small")]
    with slot.hold(Job("first")):
        threads = []
        for i, job in enumerate(jobs):
            def unit(job=job, i=i):
                with slot.hold(job):
                    with lock:
                        order.append(i)
            threads.append(threading.Thread(target=unit))
            threads[-1].start()
            time.sleep(0.1)  # they queue in this order
        cancelled, left = Job("gone"), []

        def wait_cancelled():
            try:
                with slot.hold(cancelled):
                    left.append("ran")
            except Cancelled:
                left.append("left the queue")
        waiter = threading.Thread(target=wait_cancelled)
        waiter.start()
        cancelled.set()
        waiter.join(5)
        assert left == ["left the queue"]
    for t in threads:
        t.join(5)
    assert order == [0, 3, 1, 2]  # "small" before big's second and third
    assert not slot.locked()
    public = {f.api_name for f in demo.fns.values() if f.api_visibility == "public"}
    assert public == {"restore", "batch"}


def test_engine_does_not_import_the_ui():
    code = "import sys, swinir_app.engine, swinir_app.upscale; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.slow
def test_sigterm_leaves_no_temp_files(server, client, files):
    """Last: docker stop and systemd send SIGTERM. The server's temp folders go, as on Ctrl-C."""
    from gradio_client import handle_file
    client.predict(handle_file(str(files / "small.png")), api_name="/restore")
    run = server.tmp / "run"
    assert list(run.glob("swinir_webui_*"))  # results and gradio's cache live there
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=30)
    assert not list(run.glob("swinir_webui_*"))
    assert [p for p in run.rglob("*") if p.is_file()] == []  # libraries' own empty folders may stay


def test_untiled_runs_too_big_for_free_memory_are_tiled(webapp, files, monkeypatch):
    from swinir_app import engine
    from swinir_app.webui.service import RunSettings
    small = str(files / "small.png")
    whole = webapp.restore_file(small, RunSettings(webapp.default_spec, tile=None), threading.Event())
    assert whole.note == ""
    monkeypatch.setattr(engine, "available_memory", lambda device: 4 << 20)  # a machine with 4 MB free
    tiled = webapp.restore_file(small, RunSettings(webapp.default_spec, tile=None), threading.Event())
    assert "tiled automatically: the whole image at once would need about" in webapp.info(tiled)
    assert np.abs(tiled.output.astype(int) - whole.output).mean() < 1.0  # seamless tiles
    huge_tiles = webapp.restore_file(small, RunSettings(webapp.default_spec, tile=100_000), threading.Event())
    assert "tiled automatically: 100000-pixel tiles would need about" in webapp.info(huge_tiles)


def test_uploads_are_refused_when_the_temp_space_is_full(webapp):
    """Uploads land on disk before any event runs: the quota is checked as they arrive (HTTP 507)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from swinir_app.webui.cli import UploadQuota
    webapp.config.max_temp_size = 3_000_000
    passed = []

    async def app(scope, receive, send):
        passed.append(scope["path"])

    def upload(size: int):
        sent = []

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "path": "/gradio_api/upload", "headers": [(b"content-length", str(size).encode())]}
        with ThreadPoolExecutor(1) as pool:  # its own event loop: the browser tests' may be running in this thread
            pool.submit(asyncio.run, UploadQuota(app, webapp)(scope, None, send)).result()
        return sent[0]["status"] if sent else 200

    old, young = webapp.workdir / "old.bin", webapp.workdir / "young.bin"
    old.write_bytes(bytes(1_500_000))
    os.utime(old, (time.time() - 3600,) * 2)
    young.write_bytes(bytes(1_000_000))
    assert upload(400_000) == 200 and old.exists()  # 2.9 MB in all: it fits
    assert upload(1_000_000) == 200 and not old.exists()  # the idle file made room
    young.write_bytes(bytes(2_500_000))  # in use by a running request: cannot go
    assert upload(1_000_000) == 507 and young.exists()
    assert passed == ["/gradio_api/upload"] * 2


def test_the_operator_flags_turn_the_model_path_policy_off(ckpt, tmp_path):
    from swinir_app.webui.catalogue import GENERIC_REFUSAL, ModelPolicy, WebError
    outside = tmp_path / "elsewhere" / "mine.pth"
    outside.parent.mkdir()
    outside.write_bytes(ckpt.read_bytes())
    models = tmp_path / "models"
    models.mkdir()
    strict = ModelPolicy(models, weights_dir=str(tmp_path / "cache"))
    with pytest.raises(WebError) as e:
        strict.check(str(outside))
    assert str(e.value) == GENERIC_REFUSAL
    with pytest.raises(WebError, match="classical-x4 is not downloaded on this server"):
        strict.check("classical-x4")
    assert ModelPolicy(models, allow_any_path=True).check(str(outside)) == str(outside)
    assert ModelPolicy(models, weights_dir=str(tmp_path / "cache"), allow_downloads=True).check("classical-x4") == \
        "classical-x4"


def test_zip_member_cap_and_batch_budget(webapp, tmp_path):
    from swinir_app.webui.zips import MAX_ZIP_MEMBERS
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(MAX_ZIP_MEMBERS + 1):
            z.writestr(f"{i}.png", b"x")
    errors, opened = [], []
    assert list(webapp.batch_items([str(many)], errors, opened)) == []
    assert errors == [f"many.zip: refused: {MAX_ZIP_MEMBERS + 1:,} files; the limit is {MAX_ZIP_MEMBERS:,}"]
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("a.png", "b.png", "c.png"):
            z.writestr(name, bytes(400_000))  # 400 KB each, a few hundred bytes compressed
    webapp.config.max_batch_size = 1_000_000
    errors, opened = [], []
    names = [name for name, _ in webapp.batch_items([str(big)], errors, opened)]
    for zf in opened:
        zf.close()
    assert names == ["big/a.png", "big/b.png"]
    assert errors == ["big/c.png: skipped: the images of one batch may take 976.6 KB uncompressed in all"]


def test_temp_space_stays_within_its_quota(ckpt, files, tmp_path, monkeypatch):
    from swinir_app.webui.service import AppConfig, RunSettings, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    app = WebApp(AppConfig(model=str(ckpt), device="cpu", max_temp_size=400_000))
    gradio_cache = app.gradio_cache = tmp_path / "gradio"  # as main() sets it: gradio's cache inside ours
    gradio_cache.mkdir()
    r = app.restore_file(str(files / "cat.png"), RunSettings(app.default_spec), threading.Event())
    sizes = []
    for i in range(6):
        path = app.result_file(r)  # ~150 KB each
        copy = gradio_cache / f"copy{i}.png"
        copy.write_bytes(path.read_bytes())  # gradio's copy, which serves the download
        for p in (path, copy):
            os.utime(p, (time.time() - 300, time.time() - 300))  # older than a running request's files
        sizes.append(sum(p.stat().st_size for d in (app.workdir, gradio_cache) for p in d.rglob("*") if p.is_file()))
    assert max(sizes) <= 400_000 + path.stat().st_size and len(sizes) == 6
    from swinir_app.webui.service import WebError
    huge = WebApp(AppConfig(model=str(ckpt), device="cpu", max_temp_size=1000))
    with pytest.raises(WebError, match="larger than this server's temporary space"):
        huge.result_file(r)
