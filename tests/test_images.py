"""The image reader and writer keep what the file holds: color through its profile, transparency in
every form PNG has, the channel layout, and 16 bits with their ICC profile."""
import io
import struct

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms

from swinir_app.images import ImageReadError, encode_image, icc_color_space, read_image, srgb_profile

# The ICC colorants of sRGB, adapted to the D50 connection space (Bradford), as LittleCMS builds them.
SRGB_TO_XYZ_D50 = np.array([[0.4361, 0.3851, 0.1431], [0.2225, 0.7169, 0.0606], [0.0139, 0.0971, 0.7141]])
D50 = (0.9642, 1.0, 0.8249)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _linear(srgb: np.ndarray) -> np.ndarray:
    c = srgb / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def cmyk_profile(node_rgb, intent: int = 1) -> bytes:
    """A minimal ICC v2 CMYK output profile whose A2B0 lut maps each CMYK corner (0 or 255 per ink)
    to the sRGB color ``node_rgb(c, m, y, k)`` (each 0 or 1), through XYZ (D50). ``intent`` is the
    rendering intent its header declares (1: relative colorimetric, which keeps the nodes exact)."""
    grid = []
    for c in (0, 1):  # the first input channel varies slowest
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    xyz = SRGB_TO_XYZ_D50 @ _linear(np.array(node_rgb(c, m, y, k), float))
                    grid += [min(65535, round(v * 32768)) for v in xyz]  # lut16 XYZ: 1.0 = 0x8000
    lut = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + struct.pack(">HH", 2, 2) + struct.pack(">2H", 0, 65535) * 4 + struct.pack(f">{len(grid)}H", *grid)
           + struct.pack(">2H", 0, 65535) * 3)
    text = b"test CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    wtpt = b"XYZ " + bytes(4) + b"".join(_s15(v) for v in D50)
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"prtrCMYKXYZ " + bytes(12)
              + b"acsp" + bytes(24) + struct.pack(">I", intent) + b"".join(_s15(v) for v in D50))
    return header + bytes(128 - len(header)) + table + body


# Inks that are not the naive formula: cyan ink prints as a dull blue, and so on. Paper is a warm white,
# which LittleCMS maps to display white (its white-point fix-up), as color-managed viewers show it.
NODES = {(0, 0, 0, 0): (250, 245, 235), (1, 0, 0, 0): (30, 90, 170), (0, 1, 0, 0): (200, 20, 90),
         (0, 0, 1, 0): (240, 210, 20), (0, 0, 0, 1): (25, 25, 30)}


def _node(c, m, y, k):
    return NODES.get((c, m, y, k), (10, 10, 10))


def test_a_broken_cmyk_profile_falls_back_to_the_plain_conversion(tmp_path):
    icc = cmyk_profile(_node)
    broken = icc[:128] + bytes(len(icc) - 128)  # a CMYK header, then nothing LittleCMS can use
    cmyk = np.full((16, 16, 4), (0, 255, 255, 0), np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "broken.jpg", quality=100, icc_profile=broken)
    got = read_image(tmp_path / "broken.jpg")
    naive = np.asarray(Image.open(tmp_path / "broken.jpg").convert("RGB"))
    assert got.icc_profile is None and got.array.shape == (16, 16, 3)
    np.testing.assert_array_equal(got.array, naive)


def test_cmyk_with_a_cmyk_profile_is_converted_through_it_to_srgb_and_tagged_srgb(tmp_path):
    icc = cmyk_profile(_node)
    assert ImageCms.getProfileName(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() == "test CMYK"
    patches = list(NODES)
    cmyk = np.zeros((16, 16 * len(patches), 4), np.uint8)  # whole 8x8 blocks: flat after JPEG
    for i, node in enumerate(patches):
        cmyk[:, 16 * i:16 * (i + 1)] = np.array(node) * 255
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, "CMYK").save(path, quality=100, icc_profile=icc)

    got = read_image(path)
    assert got.array.shape == (16, 16 * len(patches), 3)
    assert icc_color_space(got.icc_profile) == "RGB" and got.icc_profile == srgb_profile()
    naive = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB")).astype(int)
    for i, node in enumerate(patches):
        patch = got.array[4:12, 16 * i + 4:16 * i + 12].reshape(-1, 3).astype(int)
        expected = (255, 255, 255) if node == (0, 0, 0, 0) else NODES[node]
        assert np.abs(patch - np.array(expected)).max() <= 4, (node, patch[0])
    assert np.abs(got.array.astype(int) - naive).max() > 100  # so the naive formula would be far off

    # Written as JPEG or PNG, the image carries the sRGB profile, never the CMYK one.
    for ext in (".jpg", ".png"):
        out = Image.open(io.BytesIO(encode_image(got.array, ext, icc_profile=got.icc_profile)))
        assert icc_color_space(out.info["icc_profile"]) == "RGB"


def test_a_profile_of_another_color_space_is_never_embedded():
    icc = cmyk_profile(_node)
    rgb = np.zeros((4, 4, 3), np.uint8)
    for ext in (".png", ".jpg", ".webp", ".tif"):
        assert "icc_profile" not in Image.open(io.BytesIO(encode_image(rgb, ext, icc_profile=icc))).info, ext
    gray = np.zeros((4, 4), np.uint8)
    assert "icc_profile" not in Image.open(io.BytesIO(encode_image(gray, ".png", icc_profile=srgb_profile()))).info


def _tRNS_png(tmp_path, pixels: np.ndarray, key, bitdepth: int, greyscale: bool):
    path = tmp_path / f"trns{bitdepth}{'g' if greyscale else 'c'}.png"
    with open(path, "wb") as f:
        png.Writer(pixels.shape[1], pixels.shape[0], greyscale=greyscale, bitdepth=bitdepth, transparent=key).write(
            f, pixels.reshape(pixels.shape[0], -1))
    return path


@pytest.mark.parametrize("bitdepth", [8, 16])
@pytest.mark.parametrize("greyscale", [True, False], ids=["gray", "rgb"])
def test_a_transparent_value_or_color_becomes_alpha(tmp_path, bitdepth, greyscale):
    peak = 2 ** bitdepth - 1
    rng = np.random.default_rng(0)
    shape = (12, 10) if greyscale else (12, 10, 3)
    pixels = rng.integers(peak // 2, peak, shape, dtype=np.uint16 if bitdepth == 16 else np.uint8)
    key = 7 if greyscale else (7, 8, 9)
    pixels[2:5, 3:6] = key
    got = read_image(_tRNS_png(tmp_path, pixels, key, bitdepth, greyscale)).array
    channels = 2 if greyscale else 4
    assert got.shape == (12, 10, channels) and got.dtype == pixels.dtype
    expected_alpha = np.full((12, 10), peak)
    expected_alpha[2:5, 3:6] = 0
    np.testing.assert_array_equal(got[:, :, -1], expected_alpha)
    np.testing.assert_array_equal(got[:, :, 0] if greyscale else got[:, :, :3], pixels)


def test_16bit_gray_alpha_stays_exactly_gray_alpha(tmp_path):
    rng = np.random.default_rng(1)
    la = rng.integers(0, 65535, (9, 11, 2), dtype=np.uint16)
    path = tmp_path / "la16.png"
    with open(path, "wb") as f:
        png.Writer(11, 9, greyscale=True, alpha=True, bitdepth=16).write(f, la.reshape(9, -1))
    got = read_image(path).array
    assert got.dtype == np.uint16 and got.shape == (9, 11, 2)
    np.testing.assert_array_equal(got, la)
    # ... and is written back as 16-bit gray+alpha, bit for bit.
    w, h, rows, info = png.Reader(bytes=encode_image(got, ".png")).read()
    assert (info["greyscale"], info["alpha"], info["bitdepth"]) == (True, True, 16)
    np.testing.assert_array_equal(np.array(list(rows), np.uint16).reshape(9, 11, 2), la)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_outputs_keep_pixels_and_the_icc_profile(ext, channels):
    rng = np.random.default_rng(channels)
    a = rng.integers(0, 65535, (6, 7, channels), dtype=np.uint16)
    a = a[:, :, 0] if channels == 1 else a
    icc = srgb_profile() if channels >= 3 else ImageCms.ImageCmsProfile(
        ImageCms.createProfile("LAB")).tobytes()  # not a gray profile: must be left out
    data = encode_image(a, ext, icc_profile=icc)
    got = read_image(data)
    np.testing.assert_array_equal(got.array, a)
    if channels >= 3:
        assert got.icc_profile == icc
        if ext == ".tif":
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                assert tif.pages[0].tags["InterColorProfile"].value == icc
    else:
        assert got.icc_profile is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("alpha", [False, True])
def test_tiff_min_is_white_gray_is_read_as_seen(dtype, alpha):
    # Scanners write MinIsWhite gray (0 = white). Pillow inverts it at 8 bits only; tifffile (gray+alpha at
    # 16 bits) not at all. Either way the image must come out as a viewer shows it, alpha untouched.
    top = np.iinfo(dtype).max
    stored = np.random.default_rng(3).integers(0, top, (6, 7, 2), dtype=dtype)
    stored = stored if alpha else stored[:, :, 0]
    buf = io.BytesIO()
    tifffile.imwrite(buf, stored, photometric="miniswhite", **({"extrasamples": [2]} if alpha else {}))
    want = stored.copy()
    if alpha:
        want[:, :, 0] = top - want[:, :, 0]
    else:
        want = top - want
    np.testing.assert_array_equal(read_image(buf.getvalue()).array, want)


def test_tiff_color_spaces_other_than_gray_and_rgb_are_refused_in_one_line():
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((6, 7, 3), np.uint16), photometric="cielab")  # not read as RGB by mistake
    with pytest.raises(ImageReadError, match=r"^scan\.tif: unsupported TIFF \(photometric CIELAB with 3 samples"):
        read_image(buf.getvalue(), name="scan.tif")


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_cmyk_tiff_stays_16bit_with_pillows_formula(tmp_path, alpha):
    rng = np.random.default_rng(0)
    cmyk = rng.integers(0, 65536, (6, 7, 5 if alpha else 4), dtype=np.uint16)
    cmyk[0, 0, :4] = (0, 0, 0, 0)  # paper: white
    cmyk[0, 1, :4] = (0, 0, 0, 65535)  # full black ink
    buf = io.BytesIO()
    tifffile.imwrite(buf, cmyk, photometric="separated", extrasamples=("unassalpha",) if alpha else None)
    got = read_image(buf.getvalue()).array
    paper = 65535 - cmyk.astype(np.float64)
    want = np.round(paper[:, :, :3] * paper[:, :, 3:4] / 65535)  # R = (1 - C)(1 - K), as Pillow does in 8 bits
    assert got.dtype == np.uint16 and got.shape == (6, 7, 4 if alpha else 3)
    np.testing.assert_array_equal(got[:, :, :3], want)
    assert tuple(got[0, 0, :3]) == (65535,) * 3 and tuple(got[0, 1, :3]) == (0, 0, 0)
    if alpha:
        np.testing.assert_array_equal(got[:, :, 3], cmyk[:, :, 4])
    else:  # Pillow opens CMYK without alpha only, in 8 bits: the same colours
        pillow = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(int)
        assert np.abs(np.round(got / 257) - pillow).max() <= 1
    (tmp_path / "out.tif").write_bytes(encode_image(got, ".tif"))
    np.testing.assert_array_equal(read_image(tmp_path / "out.tif").array, got)  # and written at 16 bits


def test_a_folder_or_a_pipe_is_refused_in_one_line_without_being_read(tmp_path):
    import os
    import threading

    from swinir_app.files import FileReadError, read_regular_file
    from swinir_app.frames import read_animation
    folder = tmp_path / "photos.png"
    folder.mkdir()
    for read in (read_image, read_animation):
        with pytest.raises(ImageReadError, match=rf"^{folder}: is a folder, not an image file$"):
            read(folder)
    with pytest.raises(FileReadError, match=rf"^{folder}: is a folder, not a file$"):
        read_regular_file(folder, str(folder), None)
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading without a writer would wait forever
    done = threading.Event()

    def read_pipe():
        with pytest.raises(ImageReadError, match=r"pipe\.png: not a regular file \(a device, pipe or socket\)"):
            read_image(tmp_path / "pipe.png")
        done.set()

    threading.Thread(target=read_pipe, daemon=True).start()
    assert done.wait(10)
