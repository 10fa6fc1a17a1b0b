"""Real-ESRGAN's second-order degradation as a training dataset: basicsr's pieces, one seed per patch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import photo
from swinir_app._basicsr import calculate_psnr
from swinir_app.options import DatasetOptions
from swinir_app.train import load_options
from swinir_app.train.cli import main as train_main
from swinir_app.train.data import RestorationDataset
from swinir_app.train.realworld import RealESRGANDegradation, RealESRGANSettings
from helpers import tiny_options, write_pairs

TINY_REAL_WORLD_G = {"type": "SwinIR", "upscale": 4, "in_chans": 3, "img_size": 16, "window_size": 8, "img_range": 1.0,
                     "depths": [2], "embed_dim": 16, "num_heads": [2], "mlp_ratio": 2, "upsampler": "nearest+conv",
                     "resi_connection": "1conv"}
GT = torch.from_numpy(photo("astronaut")[100:228, 120:248].copy()).permute(2, 0, 1).float() / 255


def test_a_seed_is_one_patch_whatever_ran_before_and_global_rngs_are_untouched():
    d = RealESRGANDegradation(4)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    a, target = d(GT, seed=11)
    d(GT, seed=12)
    b, _ = RealESRGANDegradation(4)(GT, seed=11)
    assert torch.equal(a, b) and a.shape == (3, 32, 32) and target.shape == GT.shape
    assert not torch.equal(a, d(GT, seed=12)[0])
    assert np.array_equal(np.random.get_state()[1], before[0]) and torch.equal(torch.get_rng_state(), before[1])
    assert torch.equal(a, (a * 255).round() / 255) and 0 <= a.min() and a.max() <= 1  # 8-bit LQ, as Real-ESRGAN's


def test_the_target_is_basicsrs_usm_sharpened_gt():
    from basicsr.utils.img_process_util import USMSharp, usm_sharp
    _, target = RealESRGANDegradation(4)(GT, seed=0)
    ref = usm_sharp(GT.permute(1, 2, 0).numpy().copy())
    assert np.abs(target.permute(1, 2, 0).numpy() - np.clip(ref, 0, 1)).max() < 1e-6
    assert (target - USMSharp()(GT[None])[0].clamp(0, 1)).abs().max() < 1e-3  # its torch twin, on GPUs
    _, plain = RealESRGANDegradation(4, RealESRGANSettings(gt_usm=False))(GT, seed=0)
    assert torch.equal(plain, GT)


def test_with_every_random_step_switched_off_it_is_a_plain_downscale():
    """Identity-like settings (a near-delta blur, keep the size, no noise, JPEG 99, no second blur, a pulse
    as the final filter): the LQ is the USM-sharpened GT resized to 1/4, within JPEG 99's rounding."""
    quiet = RealESRGANSettings(kernel_list=("iso",), kernel_prob=(1.0,), sinc_prob=0, blur_sigma=(0.1, 0.12),
                               resize_prob=(0, 0, 1), gaussian_noise_prob=1, noise_range=(0, 0), jpeg_range=(99, 99),
                               second_blur_prob=0, resize_prob2=(0, 0, 1), gaussian_noise_prob2=1,
                               noise_range2=(0, 0), jpeg_range2=(99, 99), final_sinc_prob=0)
    to8 = lambda t: (t.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)  # noqa: E731 (BGR)
    for seed in range(4):
        lq, target = RealESRGANDegradation(4, quiet)(GT, seed=seed)
        # The resize mode is drawn (area, bilinear or bicubic): the LQ is one of the three, to JPEG 99's 4:2:0
        # chroma, so Y is compared.
        psnr = max(calculate_psnr(to8(lq), to8(F.interpolate(target[None], size=(32, 32), mode=m)[0]), 0,
                                  test_y_channel=True) for m in ("area", "bilinear", "bicubic"))
        assert psnr > 35, (seed, psnr)


def test_gray_noise_is_the_same_in_every_channel():
    """gray_noise_prob 1: Gaussian noise identical in R, G and B (what real sensors and scans show)."""
    noisy = RealESRGANSettings(kernel_list=("iso",), kernel_prob=(1.0,), sinc_prob=0, blur_sigma=(0.1, 0.12),
                               resize_prob=(0, 0, 1), gaussian_noise_prob=1, noise_range=(25, 25), gray_noise_prob=1,
                               jpeg_range=(99, 99), second_blur_prob=0, resize_prob2=(0, 0, 1),
                               gaussian_noise_prob2=1, noise_range2=(0, 0), jpeg_range2=(99, 99),
                               final_sinc_prob=0, gt_usm=False)
    gray = GT.mean(0, keepdim=True).expand(3, -1, -1).contiguous()
    lq, _ = RealESRGANDegradation(1, noisy)(gray, seed=3)
    residual = lq - gray
    assert residual.std() > 0.05  # sigma 25/255, less the JPEG
    assert (residual[0] - residual[1]).abs().mean() < 0.25 * residual.abs().mean()


def test_dataset_patches_are_pure_functions_of_seed_epoch_and_index(tmp_path):
    hr, _ = write_pairs(tmp_path, scale=4, size=(96, 112))
    opts = DatasetOptions(name="t", type="RealESRGANDataset", dataroot_gt=str(hr), gt_size=96, noise_range=[5, 10])
    a = RestorationDataset(opts, scale=4, in_chans=3, seed=5)
    first = a[(1, 2)]
    a[(0, 0)]
    again = RestorationDataset(opts, scale=4, in_chans=3, seed=5)[(1, 2)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))  # so a resumed run sees the same patches
    assert first[0].shape == (3, 24, 24) and first[1].shape == (3, 96, 96)
    assert not torch.equal(first[0], a[(2, 2)][0])
    gt, lq = a.pair(0)  # validation: one fixed draw per image
    assert lq.dtype == np.uint8 and lq.shape == (gt.shape[0] // 4, gt.shape[1] // 4, 3)
    assert np.array_equal(a.pair(0)[1], lq)


def test_options_are_checked_in_one_line(tmp_path):
    hr, _ = write_pairs(tmp_path, scale=4, size=(96, 112))
    base = {"type": "RealESRGANDataset", "dataroot_gt": str(hr), "gt_size": 64}
    cases = {"sinc_prob": (1.5, r"sinc_prob: 1.5: probabilities are in \[0, 1\]"),
             "kernel_list": (["box"], "kernels are iso"),
             "jpeg_range": ([20, 100], "JPEG qualities are in 1..99"),
             "blur_kernel_size": (8, "an odd size of at least 7")}
    from swinir_app.options import OptionsError
    for key, (value, message) in cases.items():
        opt = tiny_options(tmp_path, hr, scale=4, name=key, datasets={"train": {**base, key: value}})
        with pytest.raises(OptionsError, match=message):
            load_options(opt)
    opt = tiny_options(tmp_path, hr, scale=4, name="wrong", datasets={
        "train": {"type": "PairedImageDataset", "dataroot_gt": str(hr), "gt_size": 64, "noise_range": [1, 2]}})
    with pytest.raises(OptionsError, match="Real-ESRGAN degradation keys are for RealESRGANDataset"):
        load_options(opt)


def test_a_short_training_run_on_real_esrgan_degradations(tmp_path, capsys):
    hr, _ = write_pairs(tmp_path, scale=4, size=(96, 112))

    def options(gt_size, name):
        return tiny_options(tmp_path, hr, scale=4, total_iter=2, name=name,
                            datasets={"train": {"name": "photos", "type": "RealESRGANDataset", "dataroot_gt": str(hr),
                                                "gt_size": gt_size, "batch_size_per_gpu": 2, "num_worker_per_gpu": 0},
                                      "val": {"name": "val", "type": "RealESRGANDataset", "dataroot_gt": str(hr)}},
                            network_g=TINY_REAL_WORLD_G)

    assert train_main(["-opt", str(options(96, "real"))]) == 0
    assert (tmp_path / "experiments" / "real" / "models" / "net_g_2.pth").is_file()
    capsys.readouterr()
    # 64 px shrinks to 9 px at the smallest first resize (0.15x), where the 21x21 second blur cannot pad:
    # refused in one line before anything is written (it used to fail now and then, mid-run).
    assert train_main(["-opt", str(options(64, "small"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gt_size 64 is too small for Real-ESRGAN's degradation" in err, err
    assert "use gt_size 74 or more" in err and not (tmp_path / "experiments" / "small").exists()


# ---- BSRGAN's random-order degradation ------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bsrgan_patches_are_seeded_sized_and_degraded(scale):
    """Deterministic per seed; LR of exactly 1/scale; near the clean bicubic LR but clearly not it (blur, noise
    and JPEG on top); gray images stay gray."""
    from swinir_app.train.realworld import BSRGANDegradation
    from swinir_app.protocol.degrade import bicubic_downscale
    d = BSRGANDegradation(scale)
    gt = GT[:, :120, :120]
    hr = (gt.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    _, clean = bicubic_downscale(hr, scale)
    psnrs = []
    for seed in range(12):
        lq, target = d(gt, seed)
        assert lq.shape == (3, 120 // scale, 120 // scale) and torch.equal(target, gt)
        assert torch.equal(lq, d(gt, seed)[0]) and 0 <= lq.min() and lq.max() <= 1
        psnrs.append(calculate_psnr((lq.permute(1, 2, 0).numpy() * 255).round(), clean.astype(np.float64), 0))
    assert 15 < np.median(psnrs) < 40 and max(psnrs) - min(psnrs) > 2  # degraded, and differently per seed
    gray, _ = d(gt[:1], 0)
    assert gray.shape == (1, 120 // scale, 120 // scale)


def test_bsrgan_dataset_and_a_short_training_run(tmp_path, capsys):
    hr, _ = write_pairs(tmp_path, scale=4, size=(96, 112))
    opts = DatasetOptions(name="t", type="BSRGANDataset", dataroot_gt=str(hr), gt_size=64)
    a = RestorationDataset(opts, scale=4, in_chans=3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a[(0, 1)], RestorationDataset(opts, scale=4, in_chans=3,
                                                                               seed=1)[(0, 1)]))
    opt = tiny_options(tmp_path, hr, scale=4, total_iter=2, name="bsrgan",
                       datasets={"train": {"name": "photos", "type": "BSRGANDataset", "dataroot_gt": str(hr),
                                           "gt_size": 64, "batch_size_per_gpu": 2, "num_worker_per_gpu": 0},
                                 "val": {"name": "val", "type": "BSRGANDataset", "dataroot_gt": str(hr)}},
                       network_g=TINY_REAL_WORLD_G)
    assert train_main(["-opt", str(opt)]) == 0
    capsys.readouterr()
