"""datasets/prepare.py: BasicSR tile positions, aligned HR/LR sub-images, meta-info, lmdb."""
import cv2
import numpy as np
import pytest

from conftest import photo
from swinir_app.protocol.degrade import bicubic_downscale
from swinir_app.train.data import RestorationDataset
from swinir_app.options import DatasetOptions, IOBackendOptions
from helpers import prepare_module, write_rgb

prepare = prepare_module()


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    """Real photo crops whose sizes are not multiples of the scales."""
    folder = tmp_path_factory.mktemp("prep") / "HR"
    for name, (h, w) in {"0001": (101, 125), "0002": (77, 99)}.items():
        img = photo("astronaut" if name == "0001" else "coffee")[50:50 + h, 30:30 + w]
        write_rgb(folder / f"{name}.png", img)
    return folder


def test_positions_are_basicsrs():
    assert prepare.positions(100, 48, 24) == [0, 24, 48, 52]
    assert prepare.positions(96, 48, 24) == [0, 24, 48]
    assert prepare.positions(100, 48, 24, thresh=10) == [0, 24, 48]
    assert prepare.positions(40, 48, 24) == []
    assert prepare.strip_scale("0001x4") == "0001" and prepare.strip_scale("img_012x3") == "img_012"
    assert prepare.strip_scale("baby") == "baby"


def test_extract_tiles_one_folder(hr_folder, tmp_path):
    n = prepare.extract(hr_folder, tmp_path / "sub", crop=48, step=24)
    files = sorted((tmp_path / "sub").iterdir())
    assert n == len(files) == 4 * 5 + 3 * 4  # (101 -> 4 rows, 125 -> 5 cols) + (77 -> 3, 99 -> 4)
    assert files[0].name == "0001_s001.png" and cv2.imread(str(files[0])).shape == (48, 48, 3)
    src = cv2.imread(str(hr_folder / "0001.png"))
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "sub" / "0001_s005.png")), src[0:48, 77:125])


def test_sr_tiles_are_exactly_aligned_and_train(hr_folder, tmp_path):
    out = tmp_path / "DIV2K"
    assert prepare.main(["sr", "--hr", str(hr_folder), "--out", str(out), "--scales", "2", "3", "4",
                         "--crop-size", "48", "--step", "24", "--lmdb"]) == 0
    hr_tiles = sorted(p.name for p in (out / "HR_sub").iterdir())
    assert hr_tiles and all(sorted(p.name for p in (out / "LR_bicubic_sub" / f"X{k}").iterdir()) == hr_tiles
                            for k in (2, 3, 4))
    src = cv2.imread(str(hr_folder / "0002.png"))[..., ::-1]
    for k in (2, 3, 4):
        _, lr_full = bicubic_downscale(src, k)  # the LR of the whole image, then tiled
        np.testing.assert_array_equal(cv2.imread(str(out / "LR_bicubic" / f"X{k}" / f"0002x{k}.png"))[..., ::-1],
                                      lr_full)
        tile = cv2.imread(str(out / "LR_bicubic_sub" / f"X{k}" / "0002_s002.png"))[..., ::-1]
        np.testing.assert_array_equal(tile, lr_full[0:48 // k, 24 // k:24 // k + 48 // k])
    meta = (out / "meta_info_HR_sub.txt").read_text().splitlines()
    assert len(meta) == len(hr_tiles) and meta[0] == "0001_s001.png (48,48,3)"
    for backend, gt, lq in (("disk", out / "HR_sub", out / "LR_bicubic_sub" / "X3"),
                            ("lmdb", out / "HR_sub.lmdb", out / "LR_bicubic_sub_X3.lmdb")):
        opts = DatasetOptions(name="prep", dataroot_gt=str(gt), dataroot_lq=str(lq), gt_size=48,
                              meta_info_file=str(out / "meta_info_HR_sub.txt") if backend == "disk" else None,
                              io_backend=IOBackendOptions(type=backend))
        ds = RestorationDataset(opts, scale=3, in_chans=3)
        assert ds.check(48) == len(hr_tiles)
        lq_patch, gt_patch = ds[(0, 1)]
        assert lq_patch.shape == (3, 16, 16) and gt_patch.shape == (3, 48, 48)


def test_sr_refuses_grids_that_cannot_align(hr_folder, tmp_path):
    with pytest.raises(prepare.PrepareError, match="multiples of 12"):
        prepare.sr(hr_folder, tmp_path, (3, 4), crop=50, step=24)


def test_meta_info_and_bicubic_commands(hr_folder, tmp_path, capsys):
    assert prepare.main(["bicubic", str(hr_folder), str(tmp_path / "X4"), "--scale", "4"]) == 0
    assert sorted(p.name for p in (tmp_path / "X4").iterdir()) == ["0001x4.png", "0002x4.png"]
    assert cv2.imread(str(tmp_path / "X4" / "0001x4.png")).shape == (25, 31, 3)
    assert prepare.main(["meta-info", str(hr_folder), str(tmp_path / "meta.txt")]) == 0
    assert (tmp_path / "meta.txt").read_text() == "0001.png (101,125,3)\n0002.png (77,99,3)\n"
    assert prepare.main(["lmdb", str(tmp_path / "nowhere"), str(tmp_path / "x.lmdb")]) == 2


def test_same_named_pictures_are_refused_and_counts_are_what_was_written(tmp_path, capsys):
    """photo.png and photo.jpg would be one lmdb key and one set of tile names, one image silently lost (and
    the other trained twice): refused in one line naming both, before anything is written. Without them,
    the counts printed are the entries and files written."""
    import lmdb

    src, out = tmp_path / "in", tmp_path / "out"
    for name, crop in (("photo.png", "astronaut"), ("photo.jpg", "coffee"), ("other.png", "chelsea")):
        write_rgb(src / name, photo(crop)[:60, :72])
    commands = {"lmdb": ["lmdb", src, out / "x.lmdb"], "extract": ["extract", src, out / "tiles", "--crop-size", "24",
                                                                  "--step", "12"],
                "bicubic": ["bicubic", src, out / "X2", "--scale", "2"],
                "sr": ["sr", "--hr", src, "--out", out / "sr", "--scales", "2", "--crop-size", "24", "--step", "12",
                       "--lmdb"]}
    what = {"lmdb": "the lmdb key 'photo'", "extract": "the tiles photo_s*.png", "bicubic": "photox2.png",
            "sr": "the tiles photo_s*.png"}
    for name, args in commands.items():
        assert prepare.main([str(a) for a in args]) == 2, name
        assert capsys.readouterr().err == (f"error: {src / 'photo.jpg'} and {src / 'photo.png'} would both be "
                                           f"written as {what[name]}; rename or move one (nothing was written)\n")
    assert not out.exists()
    (src / "photo.jpg").unlink()
    for name, args in commands.items():
        assert prepare.main([str(a) for a in args]) == 0, name
    printed = capsys.readouterr().out.splitlines()
    with lmdb.open(str(out / "x.lmdb"), readonly=True, lock=False) as env:
        assert printed[0] == f"{env.stat()['entries']} images in {out / 'x.lmdb'}" and env.stat()["entries"] == 2
    assert len((out / "x.lmdb" / "meta_info.txt").read_text().splitlines()) == 2
    tiles = len(list((out / "tiles").iterdir()))
    assert printed[1] == f"{tiles} sub-images in {out / 'tiles'}" and tiles == 2 * 4 * 5  # 60 -> 4 rows, 72 -> 5
    assert printed[2] == f"2 images downscaled x2 into {out / 'X2'}" and len(list((out / "X2").iterdir())) == 2
    hr_tiles = len(list((out / "sr" / "HR_sub").iterdir()))
    assert printed[-1] == f"2 images -> {hr_tiles} tiles of 24px in {out / 'sr' / 'HR_sub'}" and hr_tiles == 40
