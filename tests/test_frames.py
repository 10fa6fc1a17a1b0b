"""Animated images, multi-page TIFFs and videos through the batch CLI: every frame, with its timing."""
import io
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, photo
from helpers import FPS, FRAMES, SAMPLE_RATE, describe, moving_frames, write_animated, write_video
from swinir_app import Restorer
from swinir_app.frames import read_animation
from swinir_app.upscale import main


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def masked_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR over the colour of the pixels both show (alpha > 0): hidden colour is anyone's."""
    seen = (a[..., 3] > 0) & (b[..., 3] > 0)
    return psnr(a[..., :3][seen], b[..., :3][seen])


@pytest.mark.parametrize("ext,min_db", [(".png", np.inf), (".webp", 30.0), (".gif", 22.0)])
def test_animated_images_keep_every_frame_timing_and_transparency(ckpt, trained_x2, tmp_path, capsys, ext, min_db):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    frames = moving_frames()
    write_animated(src / f"anim{ext}", frames)
    Image.fromarray(frames[0][..., :3]).save(src / "anim.jpg")  # a still of the same name: no collision under auto
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "done 2, skipped 0, failed 0" in err and "3 frames" in err
    before, after = read_animation(src / f"anim{ext}"), read_animation(out / f"anim{ext}")
    assert after.format == before.format and len(after.frames) == 3
    assert after.durations == [80.0, 160.0, 240.0] and after.loop == 3
    if ext != ".webp":
        assert after.disposal == before.disposal  # kept (GIF: 2 everywhere, as made)
    restorer = Restorer(trained_x2, device="cpu")
    for k, (a, b) in enumerate(zip(before.frames, after.frames)):
        assert b.shape == (64, 80, 4), b.shape  # x2, alpha kept
        expected = restorer.restore(a)
        assert ((b[..., 3] > 0) == (expected[..., 3] > 0)).mean() > 0.99
        assert masked_psnr(b, expected) >= min_db, (k, masked_psnr(b, expected))


def test_gif_frames_whose_holes_grow_are_disposed_to_the_background(tmp_path):
    """A GIF frame is drawn over the last one, holes included: a whole frame with new transparent
    pixels needs "restore to background" before it, or the old pixels show through."""
    from swinir_app.frames import Animation, write_animation
    frames = moving_frames()
    write_animation(tmp_path / "a.gif", Animation(frames=frames, format="GIF", durations=[50, 50, 50],
                                                  loop=0, disposal=[1, 1, 1]))
    got = read_animation(tmp_path / "a.gif")
    assert got.disposal == [2, 2, 1]
    for a, b in zip(frames, got.frames):
        assert ((a[..., 3] > 0) == (b[..., 3] > 0)).all()


def test_gif_keeps_one_bit_transparency_with_many_colours_and_soft_alpha(tmp_path):
    """Pillow's own palette conversion can drop the transparent index of a many-coloured frame with soft
    alpha (what an upscaled frame is): ours quantizes to 255 colours and keeps index 255 transparent."""
    from swinir_app.frames import Animation, write_animation
    from swinir_app.images import encode_image, read_image
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        a = np.dstack([rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), np.full((48, 64), 255, np.uint8)])
        a[:12, :16, 3] = np.linspace(0, 255, 16, dtype=np.uint8)[None]  # a soft edge
        a[30:, 40:, 3] = 0
        frames.append(a)
    write_animation(tmp_path / "soft.gif", Animation(frames=frames, format="GIF", durations=[50, 100, 150], loop=0,
                                                     disposal=[2, 2, 2]))
    for a, b in zip(frames, read_animation(tmp_path / "soft.gif").frames):
        assert ((a[..., 3] >= 128) == (b[..., 3] > 0)).all()
    (tmp_path / "still.gif").write_bytes(encode_image(frames[0], ".gif"))
    still = read_image(tmp_path / "still.gif").array
    assert ((frames[0][..., 3] >= 128) == (still[..., 3] > 0)).all()


def test_multi_page_16bit_tiff_keeps_its_pages_exactly(ckpt, trained_x2, tmp_path, capsys):
    import tifffile
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb = photo("coffee")[100:140, 200:248].astype(np.uint16) * 257
    pages = [rgb, np.ascontiguousarray(rgb[:, ::-1][:36]), (rgb[:32, :40, 0] // 3).astype(np.uint16)]
    with tifffile.TiffWriter(src / "scan.tif") as tif:
        for p in pages:
            tif.write(p, photometric="rgb" if p.ndim == 3 else "minisblack")
    assert main([str(src / "scan.tif"), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 0
    got = read_animation(out / "scan.tif")
    restorer = Restorer(trained_x2, device="cpu")
    assert got.format == "TIFF" and len(got.frames) == 3
    for page, result in zip(pages, got.frames):
        assert result.dtype == np.uint16 and result.shape[:2] == (2 * page.shape[0], 2 * page.shape[1])
        np.testing.assert_array_equal(result, restorer.restore(page))


def test_a_still_format_for_frames_is_refused_and_the_rest_run(ckpt, tmp_path, capsys):
    import tifffile
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_animated(src / "anim.gif", moving_frames())
    tifffile.imwrite(src / "pages.tif", np.zeros((2, 16, 16), np.uint8))
    Image.fromarray(moving_frames(1)[0]).save(src / "still.png")
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--ext", "jpg"]) == 1
    err = capsys.readouterr().err
    assert (f"error: {src / 'anim.gif'}: an animated GIF (3 frames) cannot be written as a still JPG; --ext auto, "
            f"gif, png or webp keeps its frames") in err
    assert (f"error: {src / 'pages.tif'}: a multi-page TIFF (2 pages) can only be written as TIFF; --ext tif or "
            f"auto keeps its pages") in err
    assert "done 1, skipped 0, failed 2" in err
    assert sorted(p.name for p in out.iterdir()) == ["still.jpg"]


def _gif_parts(data: bytes):
    """A GIF's header (with its global palette) and its blocks after it, the trailer left out."""
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    head, blocks = data[:pos], []
    while data[pos] != 0x3B:
        start = pos
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # image descriptor, local palette, LZW code size, then sub-blocks
            packed = data[pos + 9]
            pos += 10 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        blocks.append(data[start:pos + 1])
        pos += 1
    return head, blocks


def growing_gif(small: int, big: int) -> bytes:
    """A 2-frame GIF whose header and first frame are small x small, and whose second frame is big x big:
    a viewer (and Pillow) grows the canvas to it, so the header understates the pixels."""
    def one_frame(size, index):
        img = Image.new("P", (size, size), index)
        img.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
        buf = io.BytesIO()
        img.save(buf, "GIF", duration=100)
        return _gif_parts(buf.getvalue())
    head, first = one_frame(small, 10)
    _, second = one_frame(big, 200)
    return head + b"".join(first + second) + b";"


def test_a_gif_frame_that_grows_the_canvas_counts_against_max_pixels(tmp_path, capsys, monkeypatch):
    import torch

    from swinir_app import SwinIRConfig, build_network
    from swinir_app.images import read_image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the CLI sets it from --max-pixels
    src = tmp_path / "in"
    src.mkdir()
    data = growing_gif(16, 800)  # 640,000 pixels in frame 2: under Pillow's own refusal at 2 x --max-pixels
    (src / "grow.gif").write_bytes(data)
    assert len(data) < 4000 and Image.open(src / "grow.gif").size == (16, 16)
    Image.fromarray(moving_frames(1)[0]).save(src / "still.png")
    torch.save({"params": build_network(SwinIRConfig.preset("lightweight-x2").replace(
        depths=(1,), num_heads=(1,), embed_dim=8)).state_dict()}, tmp_path / "m.pth")
    code = main([str(src), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "m.pth"), "--device", "cpu",
                 "--max-pixels", "500000"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"error: {src / 'grow.gif'}: frame 2 of 2 enlarges the canvas from 16x16 to "
                                f"800x800") and "(--max-pixels)" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["still.png"]
    assert read_image(data, max_pixels=500_000).array.shape == (16, 16, 3)  # the web app reads frame 1 only


def test_over_twice_max_pixels_gets_our_message_not_pillows(tmp_path, capsys, monkeypatch):
    """Pillow refuses files over twice its limit (the CLI sets it to --max-pixels) before we see their size,
    with its own message and twice the limit: the size and the user's limit are said instead."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the CLI sets it from --max-pixels
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo("chelsea")[:30, :40]).save(src / "still.png")  # 1,200 pixels
    write_animated(src / "anim.gif", moving_frames(2), durations=(80, 80))  # 40x32: refused as Image.open reads it
    (src / "grow.gif").write_bytes(growing_gif(8, 100))  # 8x8, then 100x100: refused as frame 2 is sought
    Image.fromarray(photo("chelsea")[:16, :16]).save(src / "ok.png")
    code = main([str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model(tmp_path / "m.pth")),
                 "--device", "cpu", "--max-pixels", "500"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "decompression bomb" not in err, err
    assert sorted(line for line in err.splitlines() if line.startswith("error:")) == [
        f"error: {src / 'anim.gif'}: 40x32 = 1,280 pixels exceeds the limit of 500 (--max-pixels)",
        f"error: {src / 'grow.gif'}: frame 2 of 2 enlarges the canvas from 8x8 to 100x100: 2 frames of 100x100 = "
        f"20,000 pixels exceed the limit of 500 (--max-pixels)",
        f"error: {src / 'still.png'}: 40x30 = 1,200 pixels exceeds the limit of 500 (--max-pixels)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png"]


def tiny_model(path: Path) -> Path:
    """An untrained x2 network of one block: fast, for tests of sizes and counts."""
    import torch

    from swinir_app import SwinIRConfig, build_network
    torch.save({"params": build_network(SwinIRConfig.preset("lightweight-x2").replace(
        depths=(1,), num_heads=(1,), embed_dim=8)).state_dict()}, path)
    return path


def grown_canvas_gif() -> bytes:
    """2 frames of 32x32 on a 32x32 screen, the second placed at left 20, top 10: viewers and Pillow grow
    the canvas to 52x42 for it."""
    base = np.ascontiguousarray(photo("chelsea")[60:92, 120:152])
    first = Image.fromarray(base).quantize(255)
    second = Image.fromarray(np.roll(base, 5, axis=1)).quantize(palette=first)
    parts = []
    for img in (first, second):
        buf = io.BytesIO()
        img.save(buf, "GIF", duration=100, optimize=False)
        parts.append(_gif_parts(buf.getvalue()))
    (head, one), (_, two) = parts
    k = next(i for i, block in enumerate(two) if block[0] == 0x2C)  # the image descriptor
    two[k] = two[k][:1] + (20).to_bytes(2, "little") + (10).to_bytes(2, "little") + two[k][5:]
    return head + b"".join(one + two) + b";"


def test_a_gif_frame_that_grows_the_canvas_is_restored_on_the_grown_canvas(tmp_path, capsys):
    """Every frame is brought to the final canvas before it is restored: the first at the top-left,
    transparent beyond it, as a viewer shows it; every timed container then holds frames of one size."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "grow.gif").write_bytes(grown_canvas_gif())
    with Image.open(src / "grow.gif") as img:
        assert img.size == (32, 32) and (img.seek(1) or img.size) == (52, 42)
    read = read_animation(src / "grow.gif")
    assert [f.shape for f in read.frames] == [(42, 52, 4)] * 2
    model = tiny_model(tmp_path / "m.pth")
    for ext in ("gif", "webp", "png"):
        out = tmp_path / ext
        assert main([str(src), "-o", str(out), "--model", str(model), "--device", "cpu", "--ext", ext]) == 0, ext
        assert "error" not in capsys.readouterr().err
        with Image.open(out / f"grow.{ext}") as img:
            assert img.n_frames == 2 and img.size == (104, 84), ext
        after = read_animation(out / f"grow.{ext}")
        assert [f.shape for f in after.frames] == [(84, 104, 4)] * 2, ext
        first = after.frames[0][..., 3]
        assert first[:60, :60].min() > 0 and first[:, 68:].max() == 0 and first[68:].max() == 0, ext


# ---- video ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, rotation=90)
    return path


def test_tile_bar_is_drawn_below_the_frame_bar(ckpt, clip, tmp_path, monkeypatch):
    # On a terminal: inputs (row 0), the video's frames (row 1), a frame's tiles (row 2), none over another.
    import io
    import re

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main([str(clip), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu", "--tile", "16"]) == 0
    bars = re.sub(r"note: [^\n]*\n", "", err.getvalue())  # the notes printed before the bars start
    rows = {name: {len(m.group(1)) for m in re.finditer(r"(\n*)\r" + re.escape(name) + ":", bars)}
            for name in ("inputs", clip.name, "tiles")}
    assert rows == {"inputs": {0}, clip.name: {1}, "tiles": {2}}
    # The tile settings are judged on the video's frames too (the first input here).
    assert "note: --tile-overlap 32 is more than half of the 16-pixel tiles: 8 is used" in err.getvalue()
    # MKV declares no frame count: the bar's total (and ETA) comes from the duration.
    write_video(tmp_path / "short.mkv", n=3, audio=False)
    err.seek(0), err.truncate()
    short = [str(tmp_path / "short.mkv"), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu"]
    assert main(short) == 0
    assert "short.mkv:   0%|          | 0/3 [" in err.getvalue()  # a total, so a percentage and an ETA


def test_video_keeps_frames_timing_rotation_and_sound(ckpt, trained_x2, clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(clip), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--crf", "0"]) == 0
    err = capsys.readouterr().err
    assert "done 1, skipped 0, failed 0" in err and "12 frames" in err
    before, after = describe(clip), describe(out / "clip.mp4")
    assert len(after["frames"]) == FRAMES and after["pts"] == before["pts"]
    assert after["time_base"] == before["time_base"] and after["rate"] == before["rate"] == FPS
    assert after["size"] == (128, 96) and after["rotation"] == 90
    assert after["audio"] == before["audio"] and after["audio"][0] == "aac"  # copied, not re-encoded
    assert abs(after["audio"][1] - FRAMES / FPS) <= 1 / FPS + 1024 / SAMPLE_RATE
    restorer = Restorer(trained_x2, device="cpu")
    worst = min(psnr(restorer.restore(a), b) for a, b in zip(before["frames"], after["frames"]))
    assert worst >= 40.0, worst  # x264 at crf 0 (4:4:4) against the image path


def test_a_lossless_codec_equals_the_image_path(ckpt, trained_x2, tmp_path):
    src = tmp_path / "clip.mkv"
    write_video(src, n=4, audio=False)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--video-codec", "ffv1"]) == 0
    before, after = describe(src), describe(out / "clip.mkv")
    restorer = Restorer(trained_x2, device="cpu")
    for a, b in zip(before["frames"], after["frames"]):
        np.testing.assert_array_equal(restorer.restore(a), b)


def test_10bit_video_stays_deeper_than_8_bits(ckpt, trained_x2, tmp_path, capsys):
    # Phones record 10-bit HEVC: frames are restored in 16-bit RGB and written 10-bit where the encoder can.
    src = tmp_path / "deep.mkv"
    write_video(src, n=3, audio=False, bits=10)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--video-codec", "ffv1"]) == 0
    restorer = Restorer(trained_x2, device="cpu")
    with av.open(str(src)) as a, av.open(str(out / "deep.mkv")) as b:
        assert b.streams.video[0].codec_context.format.name == "gbrp16le"
        for fa, fb in zip(a.decode(video=0), b.decode(video=0)):  # FFV1 is lossless: the 16-bit image path
            want = restorer.restore(fa.to_ndarray(format="rgb48le"))
            np.testing.assert_array_equal(fb.to_ndarray(format="rgb48le"), want)
    assert main([str(src), "-o", str(out / "x264"), "--model", str(ckpt), "--device", "cpu"]) == 0
    with av.open(str(out / "x264" / "deep.mkv")) as b:
        assert b.streams.video[0].codec_context.format.name == "yuv420p10le"
        frame = next(b.decode(video=0)).to_ndarray(format="rgb48le")
        assert np.mean(frame % 257 != 0) > 0.5  # not 8-bit levels scaled up
    capsys.readouterr()  # an encoder without a 10-bit format here: 8-bit, and said
    assert main([str(src), "-o", str(out / "mpeg4"), "--model", str(ckpt), "--device", "cpu",
                 "--video-codec", "mpeg4", "--crf", "10"]) == 0
    err = capsys.readouterr().err
    assert "deep.mkv: 10-bit video written 8-bit: mpeg4 has no deeper format here" in err
    assert "note: --crf is not used by mpeg4 (only by libx264, " in err  # not silently ignored
    write_video(tmp_path / "deep8.mkv", n=2, audio=False)
    assert main([str(tmp_path / "deep8.mkv"), "-o", str(out / "eight"), "--model", str(ckpt), "--device", "cpu"]) == 0
    with av.open(str(out / "eight" / "deep8.mkv")) as b:
        assert b.streams.video[0].codec_context.format.name == "yuv420p"  # 8-bit sources stay 8-bit


@pytest.mark.parametrize("pix_fmt, tags", [("yuv420p", (1, 1, 1, 2)), ("yuv420p10le", (9, 18, 9, 1))])
def test_video_keeps_its_colour_description(tmp_path, pix_fmt, tags):
    # (primaries, transfer, matrix, range): BT.709 full range ("JPEG" YUV), and BT.2020 HLG 10-bit (phone HDR).
    # Untagged output would be shown as BT.709 limited range: washed-out HDR, crushed or flat full range.
    from swinir_app.video import restore_video
    deep = pix_fmt.endswith("10le")
    img = np.zeros((48, 64, 3))
    for i, c in enumerate([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1), (0, 0, 0)]):
        img[:24, 8 * i:8 * i + 8] = c
    img[24:] = np.linspace(0, 1, 64)[None, :, None]
    src = tmp_path / "tagged.mkv"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=FPS, options={"crf": "0"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, pix_fmt
        cc = vs.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = tags
        a = (img * (65535 if deep else 255)).round().astype(np.uint16 if deep else np.uint8)
        frame = av.VideoFrame.from_ndarray(a, format="rgb48le" if deep else "rgb24")
        for p in vs.encode(frame.reformat(format=pix_fmt, dst_colorspace=tags[2], dst_color_range=tags[3])):
            c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    restore_video(src, tmp_path / "out.mkv", lambda rgb: rgb, crf=0)  # the pipeline alone
    rgb = []
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        for c in (a, b):
            cc = c.streams.video[0].codec_context
            assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == tags
            f = next(c.decode(video=0))
            rgb.append(f.to_ndarray(format="rgb48le", src_color_range=f.color_range) / 65535 * 255)
    # In 8-bit levels; the worst pixels are at the colour edges, where 4:2:0 chroma leaves the RGB gamut
    # and is clipped.
    assert np.abs(rgb[1] - rgb[0]).mean() < 1.5 and np.abs(rgb[1] - rgb[0]).max() < 12
    restore_video(src, tmp_path / "rgb.mkv", lambda rgb: rgb, codec="ffv1")  # RGB: no YUV matrix or range
    with av.open(str(tmp_path / "rgb.mkv")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc) == tags[:2] and cc.colorspace in (0, 2) and cc.color_range == 0


def test_full_range_grey_stays_neutral(tmp_path):
    # swscale's default RGB -> 4:2:0 conversion in full range turns grey green (chroma 128 -> 127), pass after pass.
    from swinir_app.video import restore_video
    src = tmp_path / "grey.mp4"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.color_range = 2
        grey = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 144, np.uint8), format="rgb24")
        for p in vs.encode(grey.reformat(format="yuv420p", dst_color_range=2, interpolation="AREA")):
            c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    restore_video(src, tmp_path / "out.mp4", lambda rgb: rgb)
    with av.open(str(tmp_path / "out.mp4")) as c:
        frame = next(c.decode(video=0))
        assert frame.color_range == 2
        for plane in frame.planes[1:]:
            chroma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
            assert abs(chroma.mean() - 128) < 0.25


def test_frame_iterator_and_api(trained_x2, clip, tmp_path):
    from swinir_app.video import read_frames, restore_video
    frames = list(read_frames(clip))
    assert len(frames) == FRAMES and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert [len(list(read_frames(clip, segment=(k, 3)))) for k in range(3)] == [4, 4, 4]
    restorer = Restorer(trained_x2, device="cpu")
    seen = []
    result = restore_video(clip, tmp_path / "api.mp4", restorer.restore, on_frame=lambda d, t: seen.append((d, t)))
    assert result.frames == FRAMES and (result.width, result.height) == (128, 96) and seen[-1] == (FRAMES, FRAMES)


def test_interrupted_or_truncated_video_leaves_nothing(ckpt, trained_x2, clip, tmp_path, capsys):
    from swinir_app.video import restore_video
    restorer = Restorer(trained_x2, device="cpu")

    def stop(done, total):
        if done == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        restore_video(clip, tmp_path / "stopped.mp4", restorer.restore, on_frame=stop)
    assert list(tmp_path.iterdir()) == []

    src = tmp_path / "in"
    src.mkdir()
    data = clip.read_bytes()
    (src / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    mkv = tmp_path / "whole.mkv"
    write_video(mkv)
    data = mkv.read_bytes()
    (src / "stops.mkv").write_bytes(data[: len(data) * 2 // 3])  # stops mid-stream
    Image.fromarray(photo("chelsea")[:24, :32]).save(src / "fine.png")
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--model", str(ckpt), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 2, err
    assert any(str(src / "cut.mp4") in ln and "cannot read video" in ln for ln in lines), err
    assert any(str(src / "stops.mkv") in ln and "truncated" in ln for ln in lines), err
    assert "done 1, skipped 0, failed 2" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["fine.png"]  # no partial video, no .part


def test_skip_existing_works_per_video(ckpt, clip, tmp_path, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "clip.mp4").write_bytes(b"an earlier result")
    for extra in ([], ["--segments", "2"]):  # a video cut in slices is still one output
        assert main([str(clip), "-o", str(out), "--model", str(ckpt), "--device", "cpu", "--skip-existing",
                     *extra]) == 0
        assert "done 0, skipped 1, failed 0" in capsys.readouterr().err
    assert (out / "clip.mp4").read_bytes() == b"an earlier result"
    from swinir_app.video import restore_video
    with pytest.raises(FileExistsError, match=f"^{out / 'clip.mp4'} exists$"):  # at once, before any frame
        restore_video(clip, out / "clip.mp4", lambda a: 1 / 0)


@pytest.mark.parametrize("extra, message", [
    (["--video-codec", "nosuch"], "--video-codec nosuch: not an encoder of this FFmpeg build"),
    (["--video-codec", "aac"], "--video-codec aac: not a video encoder"),
    (["--crf", "99"], "--crf 99: libx264 takes 0 to 51"),
    (["--preset", "nosuchpreset"], "--preset nosuchpreset: not one of ultrafast, superfast"),
])
def test_encoder_settings_are_usage_errors_before_any_work(clip, tmp_path, capsys, extra, message):
    # A model path that does not exist: had the run reached the model, the error would name it.
    assert main([str(clip), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "never.pth"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1 and "never" not in err


def test_segments_join_into_the_same_video(ckpt, clip, tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([str(clip), "-o", str(whole), "--model", str(ckpt), "--device", "cpu"]) == 0
    assert main([str(clip), "-o", str(cut), "--model", str(ckpt), "--device", "cpu", "--segments", "3"]) == 0
    assert "done 1, skipped 0, failed 0" in capsys.readouterr().err
    a, b = describe(whole / "clip.mp4"), describe(cut / "clip.mp4")
    assert b["pts"] == a["pts"] and b["time_base"] == a["time_base"] and b["audio"] == a["audio"]
    assert b["rotation"] == 90 and b["size"] == a["size"]
    assert min(psnr(x, y) for x, y in zip(a["frames"], b["frames"])) > 35
    assert sorted(p.name for p in cut.iterdir()) == ["clip.mp4"]  # segment files removed


@pytest.mark.slow
def test_torchrun_splits_one_video_across_two_ranks(ckpt, clip, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "swinir_app.upscale", str(clip), "-o", str(out), "--model", str(ckpt), "--device", "cpu",
                        "--segments", "2"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done 1, skipped 0, failed 0" in r.stderr and "on 2 processes" in r.stderr
    before, after = describe(clip), describe(out / "clip.mp4")
    assert len(after["frames"]) == FRAMES and after["pts"] == before["pts"] and after["audio"] == before["audio"]
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]
