"""GAN and perceptual training (the second stage of SwinIR's real-world recipe): basicsr's U-Net discriminator,
GANLoss and PerceptualLoss on a locally made VGG19 file; exact resume with D; two processes."""
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from conftest import REPO
from swinir_app.options import OptionsError
from swinir_app.train import load_options
from swinir_app.train.cli import main as train_main
from helpers import tiny_options, write_pairs


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME holding torchvision's VGG19 file, made here (random weights): nothing is downloaded."""
    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg19().state_dict(), home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")
    return home


def gan_options(root, hr, name, total_iter=4, **sections):
    gan = {"network_d": {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 8, "skip_connection": True},
           "train": {"ema_decay": 0.9, "total_iter": total_iter,
                     "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
                     "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
                     "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
                     "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
                     "perceptual_opt": {"type": "PerceptualLoss",
                                        "layer_weights": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1,
                                                          "conv5_4": 1},
                                        "vgg_type": "vgg19", "use_input_norm": True, "perceptual_weight": 1.0,
                                        "style_weight": 0, "range_norm": False, "criterion": "l1"},
                     "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0,
                                 "fake_label_val": 0.0, "loss_weight": 0.1},
                     "net_d_iters": 1, "net_d_init_iters": 0}}
    gan.update(sections)
    return tiny_options(root, hr, scale=2, name=name, **gan)


def test_gan_training_resumes_exactly_with_its_discriminator(tmp_path, torch_home, monkeypatch, capsys):
    """The real-world recipe's second stage as shipped: Real-ESRGAN's degradation per patch, the pair pool
    (queue_size: two batches, so full from iteration 3), G, EMA and D: resumed, all exactly as one run."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    hr, _ = write_pairs(tmp_path, scale=2, size=(96, 112))
    real = {"datasets": {"train": {"name": "photos", "type": "RealESRGANDataset", "dataroot_gt": str(hr),
                                   "gt_size": 80, "batch_size_per_gpu": 2, "num_worker_per_gpu": 0}},
            "queue_size": 4}
    straight = gan_options(tmp_path, hr, "straight", logger={"print_freq": 1, "save_checkpoint_freq": 1}, **real)
    assert train_main(["-opt", str(straight)]) == 0
    log = capsys.readouterr()
    models = tmp_path / "experiments" / "straight" / "models"
    assert (models / "net_d_4.pth").is_file() and (models / "net_g_4.pth").is_file()
    # Half, then resumed to the end from the state at 2: the same G, EMA and D.
    half = gan_options(tmp_path, hr, "resumed", total_iter=2, **real)
    assert train_main(["-opt", str(half)]) == 0
    assert (tmp_path / "experiments" / "resumed" / "training_states" / "2.pool_rank0").is_file()
    # Only the two newest pools are kept (the straight run saved a state at every iteration).
    assert sorted(p.name for p in (tmp_path / "experiments" / "straight" / "training_states").glob("*.pool*")) == [
        "3.pool_rank0", "4.pool_rank0"]
    full = gan_options(tmp_path, hr, "resumed", total_iter=4, **real)
    assert train_main(["-opt", str(full), "--auto_resume"]) == 0
    capsys.readouterr()
    resumed = tmp_path / "experiments" / "resumed" / "models"
    for name, keys in (("net_g_4.pth", ("params", "params_ema")), ("net_d_4.pth", ("params",))):
        a, b = (torch.load(m / name, weights_only=True) for m in (models, resumed))
        for key in keys:
            assert a[key].keys() == b[key].keys()
            assert max(float((a[key][k].float() - b[key][k].float()).abs().max()) for k in a[key]) < 1e-6
    state = torch.load(tmp_path / "experiments" / "resumed" / "training_states" / "4.state", weights_only=True)
    assert len(state["optimizers"]) == 2  # G's and D's
    del log


def test_d_only_warm_up_leaves_g_untouched(tmp_path, torch_home, monkeypatch, capsys):
    """net_d_init_iters: the first iterations train D alone; G moves only after them."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    hr, _ = write_pairs(tmp_path, scale=2)
    opt = gan_options(tmp_path, hr, "warm", total_iter=2, logger={"print_freq": 1, "save_checkpoint_freq": 1,
                                                                "use_tb_logger": False},
                      val={"val_freq": 100, "save_img": False, "metrics": {}})
    import yaml
    data = yaml.safe_load(opt.read_text())
    data["train"]["net_d_init_iters"] = 2
    opt.write_text(yaml.safe_dump(data))
    assert train_main(["-opt", str(opt)]) == 0
    capsys.readouterr()
    m = tmp_path / "experiments" / "warm" / "models"
    g1, g2 = (torch.load(m / f"net_g_{i}.pth", weights_only=True)["params"] for i in (1, 2))
    d1, d2 = (torch.load(m / f"net_d_{i}.pth", weights_only=True)["params"] for i in (1, 2))
    assert all(torch.equal(g1[k], g2[k]) for k in g1)
    assert any(not torch.equal(d1[k], d2[k]) for k in d1)


def test_missing_vgg_weights_are_one_line_naming_the_file_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty_home"
    monkeypatch.setenv("TORCH_HOME", str(empty))
    monkeypatch.setattr("torch.hub.download_url_to_file", _offline)
    hr, _ = write_pairs(tmp_path, scale=2)
    opt = gan_options(tmp_path, hr, "novgg")
    assert train_main(["-opt", str(opt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vgg19-dcbb9e9d.pth" in err[0] and str(empty / "hub" / "checkpoints") in err[0]
    assert not (tmp_path / "experiments" / "novgg").exists()


def _offline(url, *args, **kwargs):
    import urllib.error
    raise urllib.error.URLError(f"no network here ({url})")


def test_gan_options_are_checked_in_one_line(tmp_path):
    hr, _ = write_pairs(tmp_path, scale=2)
    cases = [({"network_d": None}, "train.optim_d: GAN training needs a discriminator"),
             ({"network_d": {"type": "PatchGAN"}}, "network_d.type: 'PatchGAN' is not one of"),
             ({"network_d": {"type": "UNetDiscriminatorSN", "depth": 3}}, "network_d.depth"),
             ({"train": {"optim_d": None}}, "train.optim_d: is required with network_d"),
             ({"train": {"gan_opt": {"type": "GANLoss", "gan_type": "relativistic"}}}, "gan_type: 'relativistic'"),
             ({"train": {"perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1},
                                            "vgg_type": "resnet50"}}}, "not a torchvision VGG")]
    import yaml
    for i, (change, message) in enumerate(cases):
        opt = gan_options(tmp_path, hr, f"bad{i}")
        data = yaml.safe_load(opt.read_text())
        for key, value in change.items():
            if isinstance(value, dict) and key == "train":
                data["train"].update(value)
            else:
                data[key] = value
        data = {k: v for k, v in data.items() if v is not None}
        data["train"] = {k: v for k, v in data["train"].items() if v is not None}
        opt.write_text(yaml.safe_dump(data))
        with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_options(opt)


@pytest.mark.slow
def test_gan_training_with_two_processes(tmp_path, torch_home):
    hr, _ = write_pairs(tmp_path, scale=2)
    opt = gan_options(tmp_path, hr, "ddp", total_iter=2)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "swinir_app.train", "-opt", str(opt), "--launcher", "pytorch"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO), TORCH_HOME=str(torch_home),
                                                        OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "experiments" / "ddp" / "models" / "net_d_2.pth").is_file()
    assert "l_d" in r.stdout + r.stderr


def test_one_gan_iteration_is_basicsrs_step_by_hand(tmp_path, torch_home, monkeypatch):
    """The trainer's first GAN iteration equals BasicSR's SRGANModel.optimize_parameters written out here with
    basicsr's own loss modules, on the same batch from the same weights: G on L1 + perceptual + GAN with D frozen,
    then D on real and fake, one backward each."""
    import copy

    from basicsr.losses.basic_loss import L1Loss, PerceptualLoss
    from basicsr.losses.gan_loss import GANLoss

    from swinir_app.distributed import Dist
    from swinir_app.train.trainer import Trainer
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    hr, _ = write_pairs(tmp_path, scale=2)
    opts = load_options(gan_options(tmp_path, hr, "byhand", total_iter=1,
                                    val={"val_freq": 100, "save_img": False, "metrics": {}}))
    trainer = Trainer(opts, Dist())
    try:
        g, d = copy.deepcopy(trainer.model), copy.deepcopy(trainer.model_d)
        opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, weight_decay=0, betas=(0.9, 0.99))
        opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, weight_decay=0, betas=(0.9, 0.99))
        lq, gt = next(iter(trainer.loader))
        rng = torch.get_rng_state()
        trainer.run()
    finally:
        trainer.close()
    torch.set_rng_state(rng)  # the drop-path draws of G's forward, as in the run
    t = opts.train
    pix = L1Loss(loss_weight=1.0)
    percep = PerceptualLoss(**t.perceptual_opt.args)
    gan = GANLoss(**t.gan_opt.args)
    for p in d.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    out = g(lq)
    l_percep, _ = percep(out, gt)
    (pix(out, gt) + l_percep + gan(d(out), True, is_disc=False)).backward()
    opt_g.step()
    for p in d.parameters():
        p.requires_grad = True
    opt_d.zero_grad()
    gan(d(gt), True, is_disc=True).backward()
    gan(d(out.detach().clone()), False, is_disc=True).backward()
    opt_d.step()
    for mine, ref in ((trainer.model, g), (trainer.model_d, d)):
        a, b = mine.state_dict(), ref.state_dict()
        assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-6
