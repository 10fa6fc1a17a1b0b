"""Training data: aligned paired crops, HR-only with cached bicubic LR, degradations, lmdb, the resumable
sampler, and the checks that run before the first step. The tiny data and options the training tests
build on (``write_pairs``, ``tiny_options``) are in helpers.py."""
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import PHOTOS, box_downscale, prepare_module, tiny_options, write_pairs, write_rgb
from swinir_app.protocol.degrade import bicubic_downscale, jpeg_input, noisy_input
from swinir_app.train import load_options
from swinir_app.train import data as data_module
from swinir_app.train.data import DataError, RestorationDataset
from swinir_app.train.sampler import ResumableSampler, train_loader
from swinir_app.options import DatasetOptions, IOBackendOptions, parse_options

ROOT = Path(__file__).resolve().parents[1]
def dataset(kind="PairedImageDataset", *, scale=2, in_chans=3, gt_size=32, seed=0, cache_dir=None,
            **fields) -> RestorationDataset:
    opts = DatasetOptions(name="t", type=kind, gt_size=gt_size, **fields)
    return RestorationDataset(opts, scale=scale, in_chans=in_chans, seed=seed, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"), scale=2, lr="box")


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.round(t.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------


def test_paired_crops_stay_aligned_through_flips_and_rotations(pairs):
    hr, lr = pairs
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2", gt_size=32)
    assert len(ds) == len(PHOTOS)
    for index in range(24):
        lq, gt = ds[(0, index)]
        assert lq.shape == (3, 16, 16) and gt.shape == (3, 32, 32) and lq.dtype == torch.float32
        # The LR is the rounded 2x2 block mean of the HR: the crop pair is aligned iff this holds.
        np.testing.assert_array_equal(box_downscale(to_uint8(gt), 2), to_uint8(lq))


def test_sample_randomness_is_a_function_of_seed_epoch_and_index(pairs):
    hr, lr = pairs
    make = lambda seed: dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2", seed=seed)  # noqa
    a, b = make(0), make(0)
    for item in [(0, 0), (0, 5), (3, 2)]:
        assert all(torch.equal(x, y) for x, y in zip(a[item], b[item]))
    assert not torch.equal(a[(0, 1)][1], a[(1, 1)][1])  # another epoch, another crop
    assert not torch.equal(a[(0, 1)][1], make(1)[(0, 1)][1])  # another seed, another crop
    assert not torch.equal(a[(0, 1)][1], a[(0, 1 + len(a))][1])  # enlarged copies differ too


def test_hr_only_lr_is_matlab_bicubic_and_cached(pairs, tmp_path, monkeypatch):
    hr, _ = pairs
    ds = dataset("SingleHRDataset", dataroot_gt=str(hr), cache_dir=tmp_path / "cache", gt_size=32)
    gt_full, lq_full = ds.pair(1)
    ref_gt, ref_lq = bicubic_downscale(cv2.imread(str(hr / f"{ds.name(1)}.png"))[..., ::-1], 2)
    np.testing.assert_array_equal(gt_full, ref_gt)
    np.testing.assert_array_equal(lq_full, ref_lq)
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 1 and np.array_equal(np.load(cached[0]), ref_lq)
    # A new dataset (a new worker, a resumed run) reads the cache instead of resizing again.
    monkeypatch.setattr(data_module, "bicubic_downscale", lambda *a: pytest.fail("resized again"))
    again = dataset("SingleHRDataset", dataroot_gt=str(hr), cache_dir=tmp_path / "cache", gt_size=32)
    np.testing.assert_array_equal(again.pair(1)[1], ref_lq)
    lq, gt = again[(0, 1)]
    assert lq.shape == (3, 16, 16) and gt.shape == (3, 32, 32)
    # Without dataroot_lq, PairedImageDataset is the same thing.
    paired = dataset(dataroot_gt=str(hr), cache_dir=tmp_path / "cache")
    assert paired.bicubic and all(torch.equal(x, y) for x, y in zip(paired[(0, 1)], again[(0, 1)]))


def test_gaussian_noise_fixed_and_random_sigma(pairs):
    hr, _ = pairs
    ds = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=25.0, gt_size=48)
    stds = []
    for index in range(4):
        lq, gt = ds[(0, index)]
        assert lq.shape == gt.shape == (3, 48, 48)
        stds.append(float((lq - gt).std()) * 255)
    assert all(abs(s - 25) < 2 for s in stds)
    assert float(lq.min()) < 0 or float(lq.max()) > 1  # not clipped, as in the official training
    ranged = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=(0.0, 50.0), gt_size=48)
    levels = [float((lq - gt).std()) * 255 for lq, gt in (ranged[(0, i)] for i in range(8))]
    assert max(levels) - min(levels) > 10 and all(0 <= v < 52 for v in levels)
    # Validation: the official protocol's per-image seeded noise on the whole image.
    val = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=15.0)
    gt, lq = val.pair(0)
    np.testing.assert_array_equal(lq, noisy_input(gt, 15.0, 0))


def test_gray_noise_share_draws_one_plane_for_all_channels(pairs, tmp_path):
    """gray_noise_prob (Real-ESRGAN's name): that share of patches carries the same noise in R, G and B, as a
    gray photo has when given to a color model; unset (or 0) leaves the patch stream exactly as before."""
    hr, _ = pairs
    plain = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=25.0, gt_size=48)
    zero = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=25.0, gt_size=48, gray_noise_prob=0.0)
    assert all(torch.equal(a, b) for i in range(3) for a, b in zip(plain[(0, i)], zero[(0, i)]))
    always = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=25.0, gt_size=48, gray_noise_prob=1.0)
    lq, gt = always[(0, 1)]
    noise = lq - gt
    same = lambda a, b: torch.allclose(a, b, atol=1e-6)  # noqa: E731 - (gt + n) - gt rounds per channel
    assert same(noise[0], noise[1]) and same(noise[1], noise[2])
    assert abs(float(noise.std()) * 255 - 25) < 2
    half = dataset("DenoisingDataset", scale=1, dataroot_gt=str(hr), sigma=25.0, gt_size=48, gray_noise_prob=0.4)
    gray = [same((lq - gt)[0], (lq - gt)[2]) for lq, gt in (half[(0, i)] for i in range(40))]
    assert 6 <= sum(gray) <= 26  # about 40% of 40
    from swinir_app.options import OptionsError
    opt = tiny_options(tmp_path, hr, scale=1, name="badprob", datasets={"train": {
        "name": "n", "type": "DenoisingDataset", "dataroot_gt": str(hr), "sigma": [0, 50], "gray_noise_prob": 1.5,
        "gt_size": 32}}, network_g={"upscale": 1, "upsampler": "", "type": "SwinIR"})
    with pytest.raises(OptionsError, match=r"datasets.train.gray_noise_prob: 1.5 is not a probability in \[0, 1\]"):
        load_options(opt)
    opt = tiny_options(tmp_path, hr, scale=1, name="badkind", datasets={"train": {
        "name": "n", "type": "JPEGDataset", "dataroot_gt": str(hr), "quality": 40, "gray_noise_prob": 0.5,
        "gt_size": 32}}, network_g={"upscale": 1, "upsampler": "", "type": "SwinIR"})
    with pytest.raises(OptionsError, match="gray_noise_prob: Real-ESRGAN degradation keys are for RealESRGANDataset"):
        load_options(opt)


def test_jpeg_fixed_and_random_quality_color_and_gray(pairs):
    hr, _ = pairs
    ds = dataset("JPEGDataset", scale=1, dataroot_gt=str(hr), quality=20, gt_size=40)
    lq, gt = ds[(0, 3)]
    np.testing.assert_array_equal(to_uint8(lq), jpeg_input(to_uint8(gt), 20))
    gray = dataset("JPEGDataset", scale=1, in_chans=1, dataroot_gt=str(hr), quality=(10, 40), gt_size=40)
    lq, gt = gray[(0, 3)]
    assert lq.shape == gt.shape == (1, 40, 40)
    matches = [q for q in range(10, 41) if np.array_equal(to_uint8(lq)[..., 0], jpeg_input(to_uint8(gt)[..., 0], q))]
    assert matches  # some quality in the range made it
    val = dataset("JPEGDataset", scale=1, in_chans=1, dataroot_gt=str(hr), quality=10)
    gt, lq = val.pair(0)
    assert gt.ndim == 2 and np.array_equal(lq, jpeg_input(gt, 10))


def test_validation_pairs_crop_the_gt_to_lr_times_scale(tmp_path):
    hr, lr = write_pairs(tmp_path, scale=3, size=(61, 70), names=("coffee", "chelsea"))
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x3", scale=3)
    for i in range(len(ds)):
        gt, lq = ds.pair(i)
        assert gt.shape[:2] == (lq.shape[0] * 3, lq.shape[1] * 3) and gt.dtype == lq.dtype == np.uint8
    assert ds.check() == 2


def test_lmdb_reads_the_same_as_the_folders(pairs, tmp_path):
    hr, lr = pairs
    prepare = prepare_module()
    # An lmdb pair shares keys: LR named like the HR, as datasets/prepare.py sr makes them.
    lr_named = tmp_path / "lr_named"
    for f in lr.iterdir():
        write_rgb(lr_named / f.name.replace("x2", ""), cv2.imread(str(f))[..., ::-1])
    prepare.make_lmdb(hr, tmp_path / "hr.lmdb")
    prepare.make_lmdb(lr_named, tmp_path / "lr.lmdb")
    disk = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2")
    db = dataset(dataroot_gt=str(tmp_path / "hr.lmdb"), dataroot_lq=str(tmp_path / "lr.lmdb"),
                 io_backend=IOBackendOptions(type="lmdb"))
    assert db.check(32) == disk.check(32) == len(PHOTOS)
    for item in [(0, 0), (2, 3), (1, 6)]:
        assert all(torch.equal(x, y) for x, y in zip(disk[item], db[item]))
    assert (tmp_path / "hr.lmdb" / "meta_info.txt").read_text().splitlines()[0].startswith("astronaut.png (")


def test_sampler_is_resumable_and_shards_ranks():
    s = ResumableSampler(7, seed=3, enlarge=2)
    stream = list(itertools.islice(iter(s), 40))
    assert sorted(i for e, i in stream[:14]) == list(range(14)) and {e for e, _ in stream[:14]} == {0}
    assert [i for _, i in stream[:14]] != [i for _, i in stream[14:28]]  # a new order each epoch
    for start in (0, 5, 14, 23):
        resumed = ResumableSampler(7, seed=3, enlarge=2, start=start)
        assert list(itertools.islice(iter(resumed), 40 - start)) == stream[start:]
    ranks = [list(itertools.islice(iter(ResumableSampler(7, seed=3, rank=r, world_size=2)), 4)) for r in (0, 1)]
    assert len(set(ranks[0]) & set(ranks[1])) <= 1  # 7 over 2 ranks: one index repeats as padding
    assert {i for _, i in ranks[0] + ranks[1]} == set(range(7))
    fixed = ResumableSampler(5, shuffle=False)
    assert [i for _, i in itertools.islice(iter(fixed), 6)] == [0, 1, 2, 3, 4, 0]


def test_loader_batches_do_not_depend_on_workers(pairs):
    hr, lr = pairs
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2", batch_size_per_gpu=3,
                 seed=5)
    # OpenCV's thread pool busy in the parent: a forked worker must not touch it (cv2.setNumThreads hangs there).
    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (3000, 3000), interpolation=cv2.INTER_CUBIC)
    batches = {}
    for workers in (0, 1):
        ds.opts = ds.opts.model_copy(update={"num_worker_per_gpu": workers})
        loader, _ = train_loader(ds, seed=5, rank=0, world_size=1, start_iter=2)
        batches[workers] = list(itertools.islice(iter(loader), 3))
    for (a_lq, a_gt), (b_lq, b_gt) in zip(batches[0], batches[1]):
        assert torch.equal(a_lq, b_lq) and torch.equal(a_gt, b_gt)


# ---- checks before training ---------------------------------------------------------------------


def test_missing_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"folder .*nowhere does not exist"):
        dataset(dataroot_gt=str(tmp_path / "nowhere"))
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"folder .*a.png is a file, not a folder"):
        dataset(dataroot_gt=str(tmp_path / "a.png"))


def test_unreadable_file_is_named(pairs, tmp_path):
    hr, lr = pairs
    bad = tmp_path / "hr"
    bad.mkdir()
    for f in hr.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "broken.png").write_bytes(b"not a png at all")
    ds = dataset("SingleHRDataset", dataroot_gt=str(bad))
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        ds.check(32)


def test_mismatched_and_missing_pairs_are_named(pairs, tmp_path):
    hr, lr = pairs
    lr2 = tmp_path / "lr"
    for f in lr.iterdir():
        (lr2 / f.name).parent.mkdir(exist_ok=True)
        (lr2 / f.name).write_bytes(f.read_bytes())
    write_rgb(lr2 / f"{PHOTOS[2]}x2.png", np.zeros((10, 10, 3), np.uint8))
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr2), filename_tmpl="{}x2")
    with pytest.raises(DataError, match=rf"{PHOTOS[2]}x2\.png is 10x10 but its HR .*{PHOTOS[2]}\.png is"):
        ds.check()
    (lr2 / f"{PHOTOS[0]}x2.png").unlink()
    with pytest.raises(DataError, match=rf"{PHOTOS[0]}\.png: no LQ file {PHOTOS[0]}x2"):
        dataset(dataroot_gt=str(hr), dataroot_lq=str(lr2), filename_tmpl="{}x2")


def test_images_smaller_than_the_patch_are_named(pairs):
    hr, lr = pairs
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2")
    with pytest.raises(DataError, match=r"astronaut\.png is 90x72, smaller than the 80x80 training patch"):
        ds.check(80)


def test_cli_reports_bad_data_before_any_step(pairs, tmp_path, capsys):
    from swinir_app.train.cli import main

    hr, lr = pairs
    broken = tmp_path / "lr"
    broken.mkdir()
    for f in lr.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / f"{PHOTOS[3]}x2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    opt = tiny_options(tmp_path, hr, broken)
    assert main(["-opt", str(opt)]) == 2
    err = capsys.readouterr().err
    assert f"{PHOTOS[3]}x2.png" in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "experiments").exists()  # nothing written, nothing archived


def copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.timeout(30)  # the bug was a hang: fail instead
def test_special_files_are_refused_in_one_line_never_read(pairs, tmp_path):
    """A FIFO in a scanned folder or listed in a meta_info, or a FIFO or /dev/zero as the meta_info_file:
    one line naming the file, not a hang or a MemoryError."""
    import os

    hr, lr = pairs
    folder = copy_folder(hr, tmp_path / "hr")
    os.mkfifo(folder / "pipe.png")
    for ds in (dataset("SingleHRDataset", dataroot_gt=str(folder)),  # scanned: the FIFO is a key
               dataset("SingleHRDataset", dataroot_gt=str(folder), meta_info_file=str(
                   write_text(tmp_path / "meta.txt", f"{PHOTOS[0]}.png (72,90,3)\npipe.png (72,90,3)\n")))):
        assert "pipe.png" in ds.gt.keys
        with pytest.raises(DataError, match=r"pipe\.png: not a regular file"):
            ds.check(32)
        with pytest.raises(DataError, match=r"pipe\.png: not a regular file"):
            ds.gt.read("pipe.png")
    os.mkfifo(tmp_path / "meta_pipe.txt")
    for meta in (tmp_path / "meta_pipe.txt", Path("/dev/zero")):
        with pytest.raises(DataError, match=rf"cannot read meta_info_file {meta}: not a regular file"):
            dataset("SingleHRDataset", dataroot_gt=str(hr), meta_info_file=str(meta))
    from swinir_app.train.experiment import TrainingError, resume_from

    os.mkfifo(tmp_path / "8.state")  # path.resume_state
    with pytest.raises(TrainingError, match=r"cannot read training state .*8\.state: not a regular file"):
        resume_from(tmp_path / "8.state")


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_key_listed_twice_is_warned_about(pairs, tmp_path, capsys):
    """BasicSR trains a key listed twice twice (photo.png and photo.jpg in one lmdb made one key): say so."""
    from swinir_app.train.cli import main

    hr, lr = pairs
    meta = write_text(tmp_path / "meta.txt", "".join(f"{n}.png (72,90,3)\n" for n in (*PHOTOS, PHOTOS[1])))
    ds = dataset(dataroot_gt=str(hr), dataroot_lq=str(lr), filename_tmpl="{}x2", meta_info_file=str(meta))
    assert len(ds) == len(PHOTOS) + 1 and ds.warnings == [
        f"datasets.train (t) dataroot_gt: meta_info_file {meta} lists 1 key(s) more than once, each trained on "
        f"as often: {PHOTOS[1]}.png (2 times)"]
    opt = tiny_options(tmp_path, hr, lr, total_iter=1, val={"val_freq": 100})
    assert main(["-opt", str(opt), "--force_yml", f"datasets:train:meta_info_file={meta}"]) == 0
    out = capsys.readouterr().out
    assert f"WARNING: datasets.train (photos) dataroot_gt: meta_info_file {meta} lists 1 key(s)" in out
    log_file = next((tmp_path / "experiments" / "tiny").glob("train_*.log"))
    assert f"{PHOTOS[1]}.png (2 times)" in log_file.read_text()


def test_skimage_scheme_names_bundled_photos():
    opts = parse_options(yaml.safe_load((ROOT / "options" / "smoke.yml").read_text()), "smoke.yml")
    train, val = opts.train_set, opts.val_sets[0]
    ds_train = RestorationDataset(train, scale=4, in_chans=3, cache_dir=None)
    ds_val = RestorationDataset(val, scale=4, in_chans=3)
    assert not {ds_train.name(i) for i in range(len(ds_train))} & {ds_val.name(i) for i in range(len(ds_val))}
    with pytest.raises(DataError, match="no photo 'nosuchphoto'"):
        dataset(dataroot_gt="skimage://astronaut,nosuchphoto")
