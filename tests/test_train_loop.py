"""The training loop in-process: BasicSR-style outputs that load_model reads, validation with the
evaluation's code, fine-tuning from official-style files, AMP, clipping, the NaN guard, resume states."""
import re
import shutil

import pytest
import torch
import yaml

from swinir_app.checkpoint import ModelLoadError, save_safetensors
from swinir_app.evaluate import evaluate
from swinir_app.train import load_options, train
from swinir_app.train import trainer as trainer_module
from swinir_app.train.cli import main
from swinir_app.distributed import Dist
from swinir_app.train.experiment import Experiment
from swinir_app.train.trainer import Trainer, TrainingError
from swinir_app.zoo import load_model
from conftest import native_bf16
from swinir_app.network import hardware
from helpers import tiny_options, write_pairs


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("loop"), scale=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory, pairs):
    """One tiny run: 4 iterations, validation and checkpoints every 2, TensorBoard and images on."""
    root = tmp_path_factory.mktemp("run")
    hr, lr = pairs
    opt = tiny_options(root, hr, lr, val={"save_img": True}, logger={"use_tb_logger": True})
    assert main(["-opt", str(opt)]) == 0
    return root / "experiments" / "tiny", opt


def state_dicts_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_outputs_are_basicsr_style(run):
    exp, _ = run
    models = sorted(p.name for p in (exp / "models").iterdir())
    assert models == ["net_g_2.pth", "net_g_4.pth", "net_g_latest.pth"]
    assert sorted(p.name for p in (exp / "training_states").iterdir()) == ["2.state", "4.state"]
    saved = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)
    assert set(saved) == {"params", "params_ema", "config"} and saved["config"]["embed_dim"] == 16
    latest = torch.load(exp / "models" / "net_g_latest.pth", weights_only=True)
    assert state_dicts_equal(saved["params_ema"], latest["params_ema"])
    assert not state_dicts_equal(saved["params"], saved["params_ema"])
    state = torch.load(exp / "training_states" / "4.state", weights_only=True)
    assert state["iter"] == 4 and state["optimizers"][0]["state"] and len(state["rng"]) == 1
    assert (exp / "tiny.yml").read_text().count("embed_dim: 16") == 1  # the copy of the options
    logs = list(exp.glob("train_tiny_*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert re.search(r"\[iter 4/4\] loss [\d.]+ lr 1\.0e-03 [\d.]+ it/s eta \d+s", text)
    assert "validation val_photos at iteration 4" in text and "psnr" in text
    assert list((exp / "tb_logger").glob("events.out.tfevents.*"))
    assert len(list((exp / "visualization").rglob("*_4.png"))) == 4
    assert not list(exp.rglob("*.part"))  # atomic writes leave no temp files


def test_a_checkpoint_loads_with_load_model(run):
    exp, _ = run
    saved = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)
    for spec in (exp, exp / "models" / "net_g_4.pth"):
        model = load_model(spec)
        assert model.config.embed_dim == 16 and model.config.drop_path_rate == 0.1
        assert state_dicts_equal(model.state_dict(), saved["params_ema"])


def test_validation_uses_the_evaluation_protocol(run, pairs):
    exp, opt = run
    hr, lr = pairs
    logged = re.findall(r"validation val_photos at iteration 4 .*: psnr ([\d.]+) .* ssim ([\d.]+)",
                        next(exp.glob("*.log")).read_text())
    result = evaluate(load_model(exp), hr, lq=lr, lq_template="{}x2", progress=False, device="cpu")
    assert float(logged[0][0]) == pytest.approx(result.summary["psnr_y"], abs=1e-4)
    assert float(logged[0][1]) == pytest.approx(result.summary["ssim_y"], abs=1e-4)


def test_auto_resume_takes_the_latest_complete_state(run, tmp_path):
    exp, _ = run
    copy = tmp_path / "tiny"
    shutil.copytree(exp, copy)
    assert Experiment(copy).latest_resume().state["iter"] == 4
    (copy / "training_states" / "4.state").write_bytes(b"half a file")
    assert Experiment(copy).latest_resume().state["iter"] == 2
    (copy / "training_states" / "6.state").write_bytes((copy / "training_states" / "2.state").read_bytes())
    # 6.state says iteration 2: net_g_2.pth, and it is the same
    assert Experiment(copy).latest_resume().state["iter"] == 2
    (copy / "models" / "net_g_2.pth").unlink()
    assert Experiment(copy).latest_resume() is None


def test_resuming_a_finished_run_does_nothing_and_a_fresh_start_archives(run, tmp_path, pairs):
    exp, opt = run
    shutil.copytree(exp, tmp_path / "experiments" / "tiny")
    opts = load_options(opt, [f"path:experiments_root={tmp_path / 'experiments' / 'tiny'}"])
    assert train(opts, auto_resume=True).iter == 4
    result = train(load_options(opt, [f"path:experiments_root={tmp_path / 'experiments' / 'tiny'}",
                                      "train:total_iter=1", "val:val_freq=100"]))
    assert result.iter == 1
    archived = list((tmp_path / "experiments").glob("tiny_archived_*"))
    assert len(archived) == 1 and (archived[0] / "models" / "net_g_4.pth").is_file()
    assert sorted(p.name for p in (tmp_path / "experiments" / "tiny" / "models").iterdir()) == [
        "net_g_1.pth", "net_g_latest.pth"]


# ---- fine-tuning ------------------------------------------------------------------------------


def finetune(tmp_path, pairs, **path):
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, total_iter=1, name="ft", path=path, val={"val_freq": 100},
                       train={"optim_g": {"type": "Adam", "lr": 0.0}, "ema_decay": 0.0})
    return load_options(opt)


def test_finetune_from_an_official_style_file(run, tmp_path, pairs):
    exp, _ = run
    saved = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)
    official = tmp_path / "official.pth"
    torch.save({"params": saved["params"]}, official)  # as the official releases: params, no config
    result = train(finetune(tmp_path, pairs, pretrain_network_g=str(official)))
    out = torch.load(result.experiment / "models" / "net_g_1.pth", weights_only=True)
    assert state_dicts_equal(out["params"], saved["params"])  # lr 0: the weights are the pretrained ones
    # param_key_g picks the copy; a folder and a .safetensors work like load_model's specs.
    result = train(finetune(tmp_path, pairs, pretrain_network_g=str(exp), param_key_g="params_ema"))
    assert state_dicts_equal(torch.load(result.experiment / "models" / "net_g_1.pth", weights_only=True)["params"],
                             saved["params_ema"])
    st = save_safetensors(tmp_path / "w.safetensors", saved["params"], load_model(exp).config)
    result = train(finetune(tmp_path, pairs, pretrain_network_g=str(st)))
    assert state_dicts_equal(torch.load(result.experiment / "models" / "net_g_1.pth", weights_only=True)["params"],
                             saved["params"])


def test_finetune_from_another_architecture(run, tmp_path, pairs):
    exp, _ = run
    saved = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)
    other = {k: v for k, v in saved["params"].items()}
    other["upsample.0.weight"] = torch.zeros(27, 16, 3, 3)  # an x3 tail
    other["upsample.0.bias"] = torch.zeros(27)
    torch.save({"params": other}, tmp_path / "x3.pth")
    with pytest.raises(ModelLoadError, match=r"does not fit network_g: .*upsample\.0\.weight"):
        train(finetune(tmp_path, pairs, pretrain_network_g=str(tmp_path / "x3.pth")))
    result = train(finetune(tmp_path, pairs, pretrain_network_g=str(tmp_path / "x3.pth"), strict_load_g=False))
    out = torch.load(result.experiment / "models" / "net_g_1.pth", weights_only=True)["params"]
    assert torch.equal(out["conv_first.weight"], saved["params"]["conv_first.weight"])
    assert out["upsample.0.weight"].shape == (12, 16, 3, 3)


# ---- the step ---------------------------------------------------------------------------------


@native_bf16
def test_bf16_autocast_trains(tmp_path, pairs):
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, total_iter=2, train={"amp": "bf16"}, val={"val_freq": 100})
    result = train(load_options(opt))
    assert result.iter == 2 and all(torch.isfinite(torch.tensor(v)) for _, v in result.losses)


def test_fp16_needs_a_gpu(tmp_path, pairs, capsys):
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, train={"amp": "fp16"})
    assert main(["-opt", str(opt)]) == 2
    assert "train.amp fp16: fp16 is for GPUs; leave train.amp empty to train in fp32" in capsys.readouterr().err


def test_bf16_without_native_bf16_is_refused_before_anything_is_written(tmp_path, pairs, capsys):
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, train={"amp": "bf16"})
    with hardware.override(bf16=False, amx=False):
        assert main(["-opt", str(opt)]) == 2
    err = capsys.readouterr().err
    assert "train.amp bf16: this CPU (" in err and "would emulate bf16" in err and err.count("\n") == 1
    assert not (tmp_path / "experiments").exists()


def test_gradient_clipping_bounds_the_step(tmp_path, pairs):
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, total_iter=1, val={"val_freq": 100},
                       train={"optim_g": {"type": "SGD", "lr": 1.0}, "ema_decay": 0.0, "grad_clip": 1e-3})
    t = Trainer(load_options(opt), Dist())
    try:
        before = [p.detach().clone() for p in t.params]
        t.run()
        with torch.no_grad():
            step = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(t.params, before)))
            assert 0 < float(step) <= 1e-3 * 1.0001
    finally:
        t.close()


def test_nan_guard_skips_steps_and_stops_a_diverged_run(tmp_path, pairs, monkeypatch):
    hr, lr = pairs
    real = trainer_module.make_loss
    calls = {"n": 0}

    def poisoned(opts, bad=(2, 3)):
        loss = real(opts)

        def fn(pred, target):
            calls["n"] += 1
            value = loss(pred, target)
            return value * float("nan") if calls["n"] in bad else value
        return fn

    monkeypatch.setattr(trainer_module, "make_loss", poisoned)
    opt = tiny_options(tmp_path, hr, lr, total_iter=4, val={"val_freq": 100}, train={"ema_decay": 0.0},
                       logger={"save_checkpoint_freq": 1})
    result = train(load_options(opt))
    assert result.iter == 4
    models = result.experiment / "models"
    w = [torch.load(models / f"net_g_{i}.pth", weights_only=True)["params"] for i in (1, 2, 3, 4)]
    assert state_dicts_equal(w[0], w[1]) and state_dicts_equal(w[1], w[2])  # iterations 2, 3 skipped
    assert not state_dicts_equal(w[2], w[3])
    log = next(result.experiment.glob("*.log")).read_text()
    assert "iteration 2: non-finite loss or gradients" in log and "(2 in a row)" in log
    assert all(torch.isfinite(v).all() for v in w[3].values())

    monkeypatch.setattr(trainer_module, "make_loss", lambda opts: poisoned(opts, bad=range(1, 100)))
    opt = tiny_options(tmp_path, hr, lr, name="diverged", total_iter=8, val={"val_freq": 100},
                       train={"nan_tolerance": 3})
    with pytest.raises(TrainingError, match=r"3 non-finite steps in a row .* at iteration 3"):
        train(load_options(opt))


def test_cli_usage_errors(tmp_path, pairs, capsys, monkeypatch):
    hr, lr = pairs
    assert main(["-opt", str(tmp_path / "missing.yml")]) == 2
    assert "cannot read options file" in capsys.readouterr().err
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert main(["-opt", str(tiny_options(tmp_path, hr, lr)), "--launcher", "pytorch"]) == 2
    assert "--launcher pytorch runs under torchrun" in capsys.readouterr().err
    opt = tiny_options(tmp_path, hr, lr, path={"pretrain_network_g": str(tmp_path / "nope.pth")})
    assert main(["-opt", str(opt)]) == 2
    assert "nope.pth" in capsys.readouterr().err
    assert main(["-opt", str(opt), "--force_yml", "train:optim_g:lrr=1"]) == 2
    assert "unknown option train.optim_g.lrr" in capsys.readouterr().err
    yaml.safe_load(opt.read_text())  # the file itself is untouched


@pytest.mark.parametrize("force, message", [
    ("train:optim_g:lr=-1e-3", "train.optim_g.lr: -0.001 is not a number >= 0"),
    ("train:optim_g:lr=nan", "train.optim_g.lr: nan is not a number >= 0"),
    ("network_g:window_size=0", "window_size must be a whole number from 1 to 32, got 0"),
    ("network_g:embed_dim=-16", "embed_dim must be a whole number from 1 to 1024, got -16"),
    ("network_g:img_size=20", "img_size 20 must be a multiple of window_size"),
    ("manual_seed=-1", "manual_seed: -1 is not in 0 to 2**32 - 1"),
    ("train:optim_g:betas=[0.9, 2.0]", "train.optim_g: Invalid beta parameter at index 1: 2.0"),
    # checked by the trainer, not the schema: a folder that is a file, memory that cannot be had
    (("datasets:train:dataroot_lq=null", "datasets:train:lq_cache={tmp}/tiny.yml"),  # the bicubic LR cached there
     "datasets.train.lq_cache: {tmp}/tiny.yml is a file, not a folder"),
    ("queue_size=1000000000000", "queue_size: 1,000,000,000,000 pairs of (3, 16, 16) + (3, 32, 32) floats need "),
])
def test_a_bad_option_leaves_an_existing_run_alone(tmp_path, pairs, capsys, force, message):
    """Every value is checked, and every allocation made, before the experiment folder is touched: no
    archive, no restart from 0."""
    hr, lr = pairs
    force = [f.format(tmp=tmp_path) for f in ((force,) if isinstance(force, str) else force)]
    message = message.format(tmp=tmp_path)
    opt = tiny_options(tmp_path, hr, lr, total_iter=2, val={"val_freq": 100})
    assert main(["-opt", str(opt)]) == 0
    root = tmp_path / "experiments" / "tiny"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(["-opt", str(opt), "--force_yml", *force]) == 2  # without --auto_resume: a new run would archive
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing archived or written
    assert main(["-opt", str(opt), "--auto_resume", "--force_yml", "train:total_iter=3"]) == 0
    assert "resumed from" in capsys.readouterr().out and (root / "models" / "net_g_3.pth").is_file()


def test_the_first_sample_and_the_resume_state_are_read_before_the_folder_is_touched(tmp_path, pairs, capsys):
    """A file whose header reads but whose pixels do not fails at setup, not at the first step after archiving;
    a resume state that does not fit network_g fails before a log is started and the options copy replaced."""
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, total_iter=2, val={"val_freq": 100})
    assert main(["-opt", str(opt)]) == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    bad = tmp_path.parent / f"{tmp_path.name}_hr"  # outside tmp_path: the snapshot is of the run only
    shutil.copytree(hr, bad)
    first = sorted(bad.iterdir())[0]
    first.write_bytes(first.read_bytes()[:200])  # the header (size) intact, the pixels cut
    assert main(["-opt", str(opt), "--force_yml", f"datasets:train:dataroot_gt={bad}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {first}: not a readable image\n"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    copy = (tmp_path / "experiments" / "tiny" / "tiny.yml").read_bytes()
    assert main(["-opt", str(opt), "--auto_resume", "--force_yml", "network_g:embed_dim=24"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume from ") and "does not fit network_g" in err and err.count("\n") == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "experiments" / "tiny" / "tiny.yml").read_bytes() == copy


def test_part_files_of_a_killed_run_are_removed_on_resume(tmp_path, pairs, capsys):
    """SIGKILL while a checkpoint is written leaves a .part file (about 0.5 GB for a full-size model)."""
    import os
    import time
    hr, lr = pairs
    opt = tiny_options(tmp_path, hr, lr, total_iter=2, val={"val_freq": 100})
    assert main(["-opt", str(opt)]) == 0
    root = tmp_path / "experiments" / "tiny"
    leftovers = [root / "models" / ".net_g_4.pth.a8d_k2m1.part", root / "training_states" / ".4.state.zz9q0w1e.part"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert main(["-opt", str(opt), "--auto_resume", "--force_yml", "train:total_iter=3"]) == 0
    assert not any(p.exists() for p in leftovers)
    assert f"removed {leftovers[0]}, left by an interrupted run" in capsys.readouterr().out
