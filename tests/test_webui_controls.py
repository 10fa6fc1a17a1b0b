"""The web app's controls from issue #33, in process on the bundled models: the detail <-> clean mix, seamless,
alpha, a target size, photo metadata kept or stripped, and the batch tab's gallery. Real models, small images."""
import asyncio
import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import photo
from swinir_app.engine import Restorer
from swinir_app.images import read_image

A, B = "bundled-x4", "bundled-real-x4"  # the bundled pair: detail (and noise) <-> clean
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
       b'tiff:Orientation="6"><dc:creator><rdf:Seq><rdf:li>Ada</rdf:li></rdf:Seq></dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


@pytest.fixture()
def app(tmp_path, monkeypatch):
    """The app as started without --model: the bundled models, the real-photo one the default."""
    from swinir_app.webui.service import AppConfig, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    return WebApp(AppConfig(device="cpu", max_output_pixels=200_000))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 24x24 crop of a real photo."""
    path = tmp_path_factory.mktemp("controls") / "cat.png"
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[80:104, 150:174])).save(path)
    return path


def settings(spec=A, **kw):
    from swinir_app.webui.settings import run_settings
    names = ["outscale", "degrade", "tile", "tile_overlap", "precision", "self_ensemble", "mix", "seamless", "alpha",
             "width", "height", "keep_metadata"]
    values = dict(outscale=0, degrade=0, tile="none", tile_overlap=32, precision="fp32", self_ensemble=False, mix=0,
                  seamless=False, alpha="bicubic", width=0, height=0, keep_metadata=True)
    values.update(kw)
    return run_settings(spec, *(values[n] for n in names))


def restore(app, path, **kw):
    return app.restore_file(str(path), settings(**kw), threading.Event())


def test_mix_ends_are_the_two_models_and_the_blend_is_made_once(app, small):
    a = read_image(small).array
    alone = {m: Restorer(m, precision="fp32").restore(a) for m in (A, B)}
    np.testing.assert_array_equal(restore(app, small, mix=0).output, alone[A])
    np.testing.assert_array_equal(restore(app, small, mix=1).output, alone[B])
    half = restore(app, small, mix=0.5)
    assert half.label == "bundled-x4 + 50% bundled-real-x4"
    np.testing.assert_array_equal(half.output, Restorer(A, precision="fp32", mix=(B, 0.5)).restore(a))
    assert all(np.abs(half.output.astype(int) - alone[m]).max() > 0 for m in (A, B))
    loads = app.models.loads
    for _ in range(2):  # the blended weights are kept: not blended again per image
        np.testing.assert_array_equal(restore(app, small, mix=0.5).output, half.output)
    assert app.models.loads == loads
    # The other way round from the real-photo model: 1 is bundled-x4.
    np.testing.assert_array_equal(restore(app, small, spec=B, mix=1).output, alone[A])


def test_mix_is_refused_for_a_model_without_partner_and_out_of_range(app, ckpt, small):
    from swinir_app.webui.jobs import WebError
    from swinir_app.webui.service import AppConfig, WebApp
    own = WebApp(AppConfig(model=str(ckpt), device="cpu"))
    with pytest.raises(WebError, match=r"^tiny_x2.pth has no model to mix with .*leave the mix weight at 0$"):
        own.restore_file(str(small), settings(str(ckpt), mix=0.3), threading.Event())
    for bad in (1.5, -0.1, float("nan"), "lots"):
        with pytest.raises(WebError, match="^the mix weight must be from 0"):
            settings(mix=bad)


def test_the_mix_slider_shows_only_for_a_model_with_a_partner(app, ckpt):
    from swinir_app.webui.page import Page
    from swinir_app.webui.service import AppConfig, WebApp
    page = Page(app)
    mix = page.on_model(A, "")[5]
    assert mix["visible"] and mix["value"] == 0 and mix["label"] == "Detail \u2194 clean"
    mix = page.on_model(B, "")[5]
    assert mix["visible"] and mix["label"] == "Clean \u2194 detail"
    own = Page(WebApp(AppConfig(model=str(ckpt), device="cpu")))
    out = own.on_model(str(ckpt), "")
    assert out[5]["visible"] is False and out[5]["value"] == 0  # hidden, and back to 0: nothing mixed unseen
    assert out[6]["visible"] and out[7]["visible"]  # a super-resolution model: width and height


def test_seamless_is_the_engines(app, small):
    a = read_image(small).array
    r = restore(app, small, seamless=True)
    np.testing.assert_array_equal(r.output, Restorer(A, precision="fp32", seamless=True).restore(a))
    assert np.abs(r.output.astype(int) - restore(app, small).output).max() > 0


def test_alpha_through_the_model_is_the_engines(app, tmp_path):
    rgb = photo("chelsea")[80:104, 150:174]
    yy, xx = np.mgrid[:24, :24]
    alpha = np.where((yy - 12) ** 2 + (xx - 12) ** 2 < 64, 255, 0).astype(np.uint8)  # a round cut-out
    path = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path)
    a = read_image(path).array
    r = restore(app, path, alpha="model")
    np.testing.assert_array_equal(r.output, Restorer(A, precision="fp32", alpha="model").restore(a))
    assert np.abs(r.output[..., 3].astype(int) - restore(app, path).output[..., 3]).max() > 0
    from swinir_app.webui.jobs import WebError
    with pytest.raises(WebError, match="^alpha must be bicubic or model, got 'sharp'"):
        settings(alpha="sharp")


def test_a_target_size_wins_over_the_scale_and_is_checked_as_the_cli_does(app, small):
    from swinir_app.webui.jobs import WebError
    r = restore(app, small, width=50, outscale=2)  # one side: the aspect ratio kept; the scale ignored
    assert r.output.shape == (50, 50, 3) and app.result_name(r) == "cat_50x50.png"
    assert "24×24 → 50×50" in app.info(r) and "(x" not in app.info(r)
    assert restore(app, small, width=40, height=30).output.shape == (30, 40, 3)
    with pytest.raises(WebError, match=r"^width 1000: cat.png is 24x24: a 1000x1000 output is more than 16x larger "
                                       r"along its width$"):
        restore(app, small, width=1000)
    app.config.max_output_pixels = 50_000
    with pytest.raises(WebError, match=r"^cat.png: the output would be 300x300 = 90,000 pixels, over the limit of "
                                       r"50,000; choose a smaller size or image$"):
        restore(app, small, width=300, height=300)
    for bad in (-3, 12.5, "abc", float("inf"), 10 ** 9):
        with pytest.raises(WebError, match="^width must be a whole number of pixels from 1 to"):
            settings(width=bad)


def camera_jpeg(path):
    """A 32x24 JPEG stored sideways (EXIF orientation 6) with a camera's Make and DateTimeOriginal, and XMP."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "Canon", 6
    exif.get_ifd(0x8769).update({0x9003: "2024:05:06 07:08:09", 0xA002: 32, 0xA003: 24})
    Image.fromarray(np.ascontiguousarray(photo("chelsea")[80:104, 150:182])).save(path, "JPEG", quality=95,
                                                                                    exif=exif, xmp=XMP)
    return path


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "stripped"])
def test_photo_metadata_is_kept_as_the_cli_writes_it_or_stripped(app, tmp_path, keep):
    src = camera_jpeg(tmp_path / "cam.jpg")
    r = restore(app, src, keep_metadata=keep)
    with Image.open(app.result_file(r)) as img:
        assert img.size == (96, 128)  # upright (24 wide, 32 high), x4
        exif = img.getexif()
        if not keep:
            assert not exif and "xmp" not in img.info
            return
        assert exif[0x010F] == "Canon" and exif.get(0x0112) == 1
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "2024:05:06 07:08:09" and (sub[0xA002], sub[0xA003]) == (96, 128)
        assert b"<rdf:li>Ada</rdf:li>" in img.info["xmp"] and b'tiff:Orientation="1"' in img.info["xmp"]


def test_batch_shows_a_bounded_gallery_beside_the_zip(app, small, tmp_path, monkeypatch):
    from swinir_app.webui import batch
    cam = camera_jpeg(tmp_path / "cam.jpg")
    monkeypatch.setattr(batch, "GALLERY_ITEMS", 2)
    b = batch.run_batch(app, [str(small), str(cam), str(small)], settings(), threading.Event())
    assert b.done == 3 and [name for _, name in b.gallery] == ["cat.png", "cam.png"]
    assert b.gallery[0][0].shape == (96, 96, 3)
    assert b.gallery_label() == "Results: the first 2 of 3 (all are in the zip)"
    with zipfile.ZipFile(b.zip_path) as z:
        assert sorted(z.namelist()) == ["cam.png", "cat.png", "cat_1.png"]
        with Image.open(io.BytesIO(z.read("cam.png"))) as img:  # the batch keeps metadata too
            assert img.getexif()[0x010F] == "Canon"


def test_the_page_batch_returns_the_gallery(app, small):
    from swinir_app.webui.page import Page
    call = Page(app).ui_batch([str(small)], A, "", 0, 0, "none", 32, "fp32", False, 0, False, "bicubic", 0, 0, True,
                              None)
    with ThreadPoolExecutor(1) as pool:  # its own event loop
        zip_path, gallery, report = pool.submit(asyncio.run, call).result()
    assert zip_path.endswith(".zip") and "1 of 1 image done" in report["value"]
    assert len(gallery["value"]) == 1 and gallery["value"][0][1] == "cat.png" and gallery["label"] == "Results"


def test_the_api_takes_the_new_options_last_with_defaults():
    """Older gradio_client calls (the first eight arguments) keep working: the new ones come after, defaulted."""
    import inspect

    from swinir_app.webui.page import Page
    for fn in (Page.restore, Page.batch):
        params = list(inspect.signature(fn).parameters.values())[1:]
        names = [p.name for p in params]
        assert names[:8] == [names[0], "model", "outscale", "degrade", "tile", "tile_overlap", "precision",
                             "self_ensemble"]
        assert names[8:14] == ["mix", "seamless", "alpha", "width", "height", "keep_metadata"]
        assert [p.default for p in params[8:14]] == [0, False, "bicubic", 0, 0, True]


def test_the_operators_threads_setting_reaches_every_run(tmp_path, monkeypatch, small):
    """python app.py --threads 1: each run's Restorer takes it (process-wide), and the flag is checked at start."""
    import torch
    from swinir_app.webui.cli import build_parser
    from swinir_app.webui.service import AppConfig, WebApp
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "weights"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        app = WebApp(AppConfig(device="cpu", threads=1))
        assert app.restorer(settings()).threads == 1 and torch.get_num_threads() == 1
        assert build_parser().parse_args(["--threads", "1"]).threads == 1
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["--threads", "0"])
        assert e.value.code == 2
    finally:
        torch.set_num_threads(before)


def test_int8_is_converted_once_and_kept_like_any_model(app, small):
    from swinir_app.network import hardware
    from swinir_app.network.int8 import Int8Linear
    if not hardware.cpu().int8:
        pytest.skip(f"no oneDNN int8 kernels on this CPU ({hardware.cpu().describe()})")
    a = read_image(small).array
    first = restore(app, small, precision="int8")
    np.testing.assert_array_equal(first.output, Restorer(A, precision="int8").restore(a))
    model, loads = app.models.get(A, int8=True), app.models.loads
    assert any(isinstance(m, Int8Linear) for m in model.modules())
    assert not any(isinstance(m, Int8Linear) for m in app.models.get(A).modules())  # the fp32 entry is its own
    for _ in range(2):  # not converted (deep-copied, packed) again per image
        np.testing.assert_array_equal(restore(app, small, precision="int8").output, first.output)
        assert app.models.get(A, int8=True) is model
    assert app.models.loads == loads + 1  # + the fp32 entry fetched above
