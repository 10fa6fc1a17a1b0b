"""A photo's EXIF, XMP and IPTC go to every output format that holds them, orientation reset, sizes updated."""
import io

import numpy as np
import pytest
from PIL import Image, IptcImagePlugin

from swinir_app.frames import Animation, encode_animation, read_animation
from swinir_app.images import encode_image, jxl_problem, read_image, srgb_profile
from swinir_app.metadata import _insert_app13

XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="6" exif:PixelXDimension="32" '
       b'exif:PixelYDimension="24"><dc:creator><rdf:Seq><rdf:li>Ada</rdf:li></rdf:Seq></dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
IPTC = b"\x1c\x02\x00\x00\x02\x00\x04" + b"\x1c\x02\x78\x00\x07Caption"  # record version 4, caption
GPS = (52.0, 30.0, 12.5)


def camera_jpeg() -> tuple:
    """A 32x24 JPEG stored sideways (orientation 6) with camera EXIF, GPS, XMP and IPTC; and its upright pixels."""
    stored = np.zeros((24, 32, 3), np.uint8)
    stored[:, :16] = (220, 30, 30)  # red on the stored left: upright (turned 90 deg clockwise), red is on top
    stored[:, 16:] = (30, 30, 220)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", 6
    exif.get_ifd(0x8769).update({0x9003: "2024:05:06 07:08:09", 0xA002: 32, 0xA003: 24})
    exif.get_ifd(0x8825).update({1: "N", 2: GPS, 3: "E", 4: (13.0, 24.0, 0.0)})
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=95, exif=exif, xmp=XMP, icc_profile=srgb_profile())
    return _insert_app13(out.getvalue(), IPTC), np.rot90(stored, -1)


@pytest.fixture(scope="module")
def loaded():
    data, upright = camera_jpeg()
    img = read_image(data)
    assert img.array.shape == (32, 24, 3)
    assert img.exif and img.xmp and img.iptc == IPTC
    return img


FORMATS = [".jpg", ".png", ".webp", ".tif", ".avif"]


@pytest.mark.parametrize("deep", [False, True], ids=["8bit", "16bit"])
@pytest.mark.parametrize("ext", FORMATS)
def test_metadata_reaches_every_format_upright_with_the_new_size(loaded, ext, deep):
    up = np.repeat(np.repeat(loaded.array, 2, 0), 2, 1)  # 48 wide, 64 high
    if deep:
        up = up.astype(np.uint16) * 257
    data = encode_image(up, ext, 90, loaded.icc_profile, metadata=loaded.metadata)
    out = Image.open(io.BytesIO(data))
    assert out.size == (48, 64)
    exif = out.getexif()
    assert exif.get(0x010F) == "Canon" and exif.get(0x0110) == "EOS R5"
    assert exif.get(0x0112, 1) == 1
    if not (deep and ext == ".tif"):  # tifffile writes no EXIF sub-IFDs: a 16-bit TIFF keeps IFD0 tags only
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "2024:05:06 07:08:09"
        assert (sub[0xA002], sub[0xA003]) == (48, 64)
        assert tuple(float(v) for v in exif.get_ifd(0x8825)[2]) == GPS
    xmp = out.info.get("xmp")
    xmp = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    assert b"<rdf:li>Ada</rdf:li>" in xmp and b'tiff:Orientation="1"' in xmp
    assert b'exif:PixelXDimension="48"' in xmp and b'exif:PixelYDimension="64"' in xmp
    if ext in (".jpg", ".tif"):
        assert IptcImagePlugin.getiptcinfo(out)[(2, 120)] == b"Caption"
    again = read_image(data)
    assert again.array.shape[:2] == (64, 48)
    top, bottom = again.array[2, 24].astype(int), again.array[-3, 24].astype(int)
    assert top[0] > top[2] and bottom[2] > bottom[0]  # still upright: red on top, blue below
    assert again.icc_profile == loaded.icc_profile


@pytest.mark.parametrize("ext", FORMATS + [".gif"])
def test_strip_metadata_keeps_only_pixels_and_icc(loaded, ext):
    data = encode_image(loaded.array, ext, 90, loaded.icc_profile, metadata=None)
    again = read_image(data)
    assert again.metadata is None
    out = Image.open(io.BytesIO(data))
    assert not len(out.getexif()) or ext == ".tif"  # a TIFF's own IFD0 is its layout
    assert 0x010F not in out.getexif()
    if ext != ".gif":
        assert again.icc_profile == loaded.icc_profile


def test_avif_round_trip_with_quality():
    y, x = np.mgrid[0:48, 0:64]
    a = np.dstack([x * 4, y * 5, 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)]).astype(np.uint8)
    small, big = (encode_image(a, ".avif", q) for q in (30, 95))
    assert len(small) < len(big)
    back = read_image(big)
    assert back.format == "AVIF" and back.array.shape == a.shape and back.array.dtype == np.uint8
    assert np.abs(back.array.astype(int) - a).mean() < 4
    assert read_image(encode_image(a.astype(np.uint16) * 257, ".avif")).array.dtype == np.uint8  # 8-bit AVIF


@pytest.mark.skipif(jxl_problem() is not None, reason="the optional pillow-jxl-plugin is not installed")
def test_jxl_round_trip_with_metadata(loaded):
    data = encode_image(loaded.array, ".jxl", 90, metadata=loaded.metadata)
    back = read_image(data)
    assert back.format == "JXL" and back.array.shape == loaded.array.shape
    assert back.exif and Image.open(io.BytesIO(data)).getexif().get(0x010F) == "Canon"


def test_animations_keep_exif_and_xmp_where_the_container_holds_them(loaded):
    frames = [np.full((8, 10, 3), v, np.uint8) for v in (40, 200)]
    anim = Animation(frames=frames, format="WEBP", durations=[100, 100], loop=0, metadata=loaded.metadata)
    for ext in (".webp", ".png"):
        back = read_animation(encode_animation(anim, ext))
        assert len(back.frames) == 2 and back.metadata and back.metadata.xmp
        exif = Image.Exif()
        exif.load(back.metadata.exif)
        assert exif[0x010F] == "Canon" and exif.get_ifd(0x8769)[0xA002] == 10
    assert read_animation(encode_animation(anim, ".gif")).metadata is None  # GIF holds none


@pytest.mark.parametrize("strip", [False, True], ids=["kept", "stripped"])
def test_the_cli_keeps_metadata_unless_told_to_strip_it(ckpt, tmp_path, capsys, strip):
    """swinir-app upscale on a camera JPEG: its EXIF (camera, date, GPS), XMP and IPTC reach the output with
    orientation 1 and the new size; --strip-metadata leaves the pixels and the ICC profile only."""
    from swinir_app.upscale import main

    data, upright = camera_jpeg()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cam.jpg").write_bytes(data)
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(ckpt)]
                + (["--strip-metadata"] if strip else [])) == 0, capsys.readouterr().err
    with Image.open(tmp_path / "out" / "cam.jpg") as img:
        assert img.size == (48, 64)  # upright 24x32, x2
        exif = img.getexif()
        assert img.info.get("icc_profile") == srgb_profile()
        if strip:
            assert not exif and "xmp" not in img.info and not IptcImagePlugin.getiptcinfo(img)
            return
        assert (exif[0x010F], exif[0x0110], exif.get(0x0112)) == ("Canon", "EOS R5", 1)
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "2024:05:06 07:08:09" and (sub[0xA002], sub[0xA003]) == (48, 64)
        assert exif.get_ifd(0x8825)[2] == GPS and b"Ada" in img.info["xmp"]
        assert IptcImagePlugin.getiptcinfo(img)[(2, 120)] == b"Caption"


def test_a_video_keeps_its_container_tags(ckpt, tmp_path, capsys):
    """A video's title, comment and creation time reach the output container; the encoder's own tags are the
    new encoder's."""
    import av

    from swinir_app.upscale import main

    src = tmp_path / "clip.mkv"
    with av.open(str(src), "w") as out:
        out.metadata.update({"title": "Holiday", "comment": "by the sea", "creation_time": "2024-05-06T07:08:09Z"})
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.metadata["language"] = "eng"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt)]) == 0, capsys.readouterr().err
    with av.open(str(tmp_path / "out" / "clip.mkv")) as done:
        tags = {k.lower(): v for k, v in done.metadata.items()}
        assert (tags["title"], tags["comment"]) == ("Holiday", "by the sea")
        assert "2024-05-06" in tags.get("creation_time", tags.get("date", ""))
        assert done.streams.video[0].metadata.get("language") == "eng"
        assert done.streams.video[0].width == 64
    assert main([str(src), "-o", str(tmp_path / "bare"), "--model", str(ckpt), "--strip-metadata"]) == 0
    with av.open(str(tmp_path / "bare" / "clip.mkv")) as done:
        assert not {"title", "comment"} & {k.lower() for k in done.metadata}
