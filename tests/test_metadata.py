"""A photo's EXIF, XMP and IPTC go to every output format that holds them, orientation reset, sizes updated."""
import io
import struct

import numpy as np
import pytest
from PIL import ExifTags, Image, IptcImagePlugin

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


def with_thumbnail(exif: Image.Exif, jpeg: bytes) -> bytes:
    """``exif``'s block with an IFD1 appended by hand, as a camera writes it: Compression 6, 72 dpi, and the
    thumbnail's offset and length (JPEGInterchangeFormat), in the block's own byte order."""
    tiff = bytearray(exif.tobytes()[6:])
    e = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(e + "L", tiff, 4)[0]
    tiff += b"\0" * (len(tiff) % 2)
    start = len(tiff)
    struct.pack_into(e + "L", tiff, ifd0 + 2 + 12 * struct.unpack_from(e + "H", tiff, ifd0)[0], start)
    rational = start + 2 + 6 * 12 + 4
    entries = [(0x103, 3, struct.pack(e + "HH", 6, 0)), (0x11A, 5, struct.pack(e + "L", rational)),
               (0x11B, 5, struct.pack(e + "L", rational + 8)), (0x128, 3, struct.pack(e + "HH", 2, 0)),
               (0x201, 4, struct.pack(e + "L", rational + 16)), (0x202, 4, struct.pack(e + "L", len(jpeg)))]
    tiff += struct.pack(e + "H", len(entries))
    for tag, kind, value in entries:
        tiff += struct.pack(e + "HHL", tag, kind, 1) + value
    tiff += struct.pack(e + "L", 0) + struct.pack(e + "4L", 72, 1, 72, 1) + jpeg
    return b"Exif\0\0" + bytes(tiff)


def thumbnail_of(data: bytes):
    """The EXIF thumbnail (IFD1's JPEG) of an encoded image, opened by Pillow; None where it has none."""
    img = Image.open(io.BytesIO(data))
    ifd1 = img.getexif().get_ifd(ExifTags.IFD.IFD1)
    if 0x201 not in ifd1:
        return None
    raw = img.info["exif"]
    raw = raw[6:] if raw.startswith(b"Exif\0\0") else raw
    thumb = Image.open(io.BytesIO(raw[ifd1[0x201]:ifd1[0x201] + ifd1[0x202]]))
    assert thumb.format == "JPEG" and ifd1[0x103] == 6
    return np.asarray(thumb.convert("RGB")).astype(int)


@pytest.fixture(scope="module", params=["<", ">"], ids=["II", "MM"])
def with_thumb(request):
    """An 80x60 camera JPEG stored sideways (orientation 6: upright, red on top of blue) whose EXIF (in either
    byte order) holds a 64x48 thumbnail that is all green: a thumbnail of some other picture, as a stale one."""
    stored = np.zeros((60, 80, 3), np.uint8)
    stored[:, :40], stored[:, 40:] = (220, 30, 30), (30, 30, 220)
    exif = Image.Exif()
    exif.endian = request.param
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", 6
    exif.get_ifd(0x8769).update({0x9003: "2024:05:06 07:08:09", 0xA002: 80, 0xA003: 60})
    stale = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 200, 0)).save(stale, "JPEG")
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=95, exif=with_thumbnail(exif, stale.getvalue()))
    assert Image.open(out).getexif().get_ifd(ExifTags.IFD.IFD1)[0x202] == len(stale.getvalue())
    img = read_image(out.getvalue())
    assert img.array.shape == (80, 60, 3)
    return img


@pytest.mark.parametrize("ext, deep", [(".jpg", False), (".png", False), (".png", True), (".webp", False),
                                       (".avif", False), (".tif", False), (".jxl", False)])
def test_the_exif_thumbnail_is_made_from_the_output(with_thumb, ext, deep):
    """A camera's EXIF thumbnail shows the picture before the restore: the output gets a new one made from its
    own (upright) pixels, as large as the source's and turned like the output; a TIFF gets none."""
    if ext == ".jxl" and jxl_problem() is not None:
        pytest.skip("the optional pillow-jxl-plugin is not installed")
    up = np.repeat(np.repeat(with_thumb.array, 2, 0), 2, 1)  # 120 wide, 160 high
    if deep:
        up = up.astype(np.uint16) * 257
    data = encode_image(up, ext, 90, metadata=with_thumb.metadata)
    out = Image.open(io.BytesIO(data))
    exif = out.getexif()
    assert (out.size, exif[0x010F], exif.get(0x0112, 1)) == ((120, 160), "Canon", 1)
    if ext != ".tif":
        assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    thumb = thumbnail_of(data)
    if ext == ".tif":  # a TIFF's IFD1 would be a second page
        assert thumb is None
        return
    assert thumb.shape == (64, 48, 3)  # the source's 64x48, turned as the output is: portrait
    pixels = np.asarray(out.convert("RGB")).astype(int)
    assert np.abs(thumb.mean((0, 1)) - pixels.mean((0, 1))).max() < 8  # the output, not the stale green
    top, bottom = thumb[:24].mean((0, 1)), thumb[-24:].mean((0, 1))
    assert top[0] > 180 > top[2] and bottom[2] > 180 > bottom[0]  # red on top: upright, as the output
    assert read_image(data).metadata.exif  # and read back by the project's own reader


def test_an_exif_thumbnail_is_left_out_where_no_pixels_make_it(with_thumb):
    """Animations (their frames are not handed to the metadata writer) and an EXIF over a JPEG segment get no
    thumbnail rather than the stale one."""
    anim = Animation(frames=[np.full((8, 10, 3), 90, np.uint8)] * 2, format="WEBP", durations=[100, 100], loop=0,
                     metadata=with_thumb.metadata)
    data = encode_animation(anim, ".webp")
    assert Image.open(io.BytesIO(data)).getexif()[0x010F] == "Canon" and thumbnail_of(data) is None


def tagged_clip(path) -> None:
    """A 6-frame 32x24 clip with container tags (title, comment, artist, creation time), a language and title on
    its video stream, and a 0.6 s AAC track with its own language and title."""
    import av

    with av.open(str(path), "w") as out:
        out.metadata.update({"title": "Holiday", "comment": "by the sea", "artist": "Ada",
                             "creation_time": "2024-05-06T07:08:09Z"})
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.metadata.update({"language": "eng", "title": "Main view"})
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "mono"
        sound.metadata.update({"language": "fre", "title": "Commentary"})
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(28800) / 48000)).astype(np.float32)[None]
        for k in range(0, wave.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, k:k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k
            for packet in sound.encode(af):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)


def video_tags(path) -> tuple:
    """A video's container tags and each stream's (type, tags), without the muxer's DURATION."""
    import av

    def tags(m):
        return {k.lower(): v for k, v in m.items() if not k.upper().startswith("DURATION")}
    with av.open(str(path)) as done:
        return tags(done.metadata), [(s.type, tags(s.metadata)) for s in done.streams]


def test_a_video_keeps_its_container_tags(ckpt, tmp_path, capsys):
    """A video's title, comment and creation time reach the output container, and its streams' languages their
    streams (the copied sound's too); the encoder's own tags are the new encoder's."""
    import av

    from swinir_app.upscale import main

    src = tmp_path / "clip.mkv"
    tagged_clip(src)
    assert main([str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt)]) == 0, capsys.readouterr().err
    with av.open(str(tmp_path / "out" / "clip.mkv")) as done:
        tags = {k.lower(): v for k, v in done.metadata.items()}
        assert (tags["title"], tags["comment"], tags["artist"]) == ("Holiday", "by the sea", "Ada")
        assert "2024-05-06" in tags.get("creation_time", tags.get("date", ""))
        assert done.streams.video[0].metadata.get("language") == "eng"
        assert done.streams.audio[0].metadata.get("language") == "fre"
        assert done.streams.video[0].width == 64
    assert main([str(src), "-o", str(tmp_path / "bare"), "--model", str(ckpt), "--strip-metadata"]) == 0
    with av.open(str(tmp_path / "bare" / "clip.mkv")) as done:
        assert not {"title", "comment"} & {k.lower() for k in done.metadata}


def test_a_video_in_time_slices_keeps_the_tags_of_a_whole_run(ckpt, tmp_path, capsys):
    """--segments 2 (two slices restored, then joined without re-encoding) writes the same container and stream
    tags as a whole run; with --strip-metadata, none of the input's."""
    from swinir_app.upscale import main

    src = tmp_path / "clip.mkv"
    tagged_clip(src)
    for name, extra in [("whole", []), ("sliced", ["--segments", "2"]),
                        ("bare", ["--segments", "2", "--strip-metadata"])]:
        assert main([str(src), "-o", str(tmp_path / name), "--model", str(ckpt)] + extra) == 0, capsys.readouterr().err
    whole, sliced = video_tags(tmp_path / "whole" / "clip.mkv"), video_tags(tmp_path / "sliced" / "clip.mkv")
    assert whole[0]["title"] == "Holiday" and ("audio", {"language": "fre", "title": "Commentary"}) in whole[1]
    assert sliced == whole
    container, streams = video_tags(tmp_path / "bare" / "clip.mkv")
    assert not {"title", "comment", "artist", "creation_time"} & set(container)
    assert all(not {"language", "title"} & set(tags) for _, tags in streams)
