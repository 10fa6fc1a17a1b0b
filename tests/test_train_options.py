"""Training options: every shipped file and BasicSR's own SwinIR files parse; misspellings are named;
--force_yml and --debug; the learning-rate schedules and losses are BasicSR's."""
from pathlib import Path

import pytest
import torch
import yaml

from swinir_app.network import SwinIRConfig
from swinir_app.options import OptionsError, apply_override, load_options, parse_options
from swinir_app.train.schedule import EMA, lr_schedule, make_loss
from swinir_app.train.trainer import format_eta

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "options").glob("*.yml") if p.name != "test_x4.yml")

# BasicSR's options/train/SwinIR/train_SwinIR_SRx4_scratch.yml, verbatim.
BASICSR_SRX4 = """\
# general settings
name: train_SwinIR_SRx4_scratch_P48W8_DIV2K_500k_B4G8
model_type: SwinIRModel
scale: 4
num_gpu: auto
manual_seed: 0

# dataset and data loader settings
datasets:
  train:
    name: DIV2K
    type: PairedImageDataset
    dataroot_gt: datasets/DF2K/DIV2K_train_HR_sub
    dataroot_lq: datasets/DF2K/DIV2K_train_LR_bicubic_X4_sub
    meta_info_file: basicsr/data/meta_info/meta_info_DIV2K800sub_GT.txt
    filename_tmpl: '{}'
    io_backend:
      type: disk

    gt_size: 192
    use_hflip: true
    use_rot: true

    # data loader
    use_shuffle: true
    num_worker_per_gpu: 6
    batch_size_per_gpu: 4
    dataset_enlarge_ratio: 1
    prefetch_mode: ~

  val:
    name: Set5
    type: PairedImageDataset
    dataroot_gt: datasets/Set5/GTmod12
    dataroot_lq: datasets/Set5/LRbicx4
    io_backend:
      type: disk

# network structures
network_g:
  type: SwinIR
  upscale: 4
  in_chans: 3
  img_size: 48
  window_size: 8
  img_range: 1.
  depths: [6, 6, 6, 6, 6, 6]
  embed_dim: 180
  num_heads: [6, 6, 6, 6, 6, 6]
  mlp_ratio: 2
  upsampler: 'pixelshuffle'
  resi_connection: '1conv'

# path
path:
  pretrain_network_g: ~
  strict_load_g: true
  resume_state: ~

# training settings
train:
  ema_decay: 0.999
  optim_g:
    type: Adam
    lr: !!float 2e-4
    weight_decay: 0
    betas: [0.9, 0.99]

  scheduler:
    type: MultiStepLR
    milestones: [250000, 400000, 450000, 475000]
    gamma: 0.5

  total_iter: 500000
  warmup_iter: -1  # no warm up

  # losses
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

# validation settings
val:
  val_freq: !!float 5e3
  save_img: false

  metrics:
    psnr: # metric name, can be arbitrary
      type: calculate_psnr
      crop_border: 4
      test_y_channel: false

# logging settings
logger:
  print_freq: 100
  save_checkpoint_freq: !!float 5e3
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~

# dist training settings
dist_params:
  backend: nccl
  port: 29500
"""
# Its x2 sibling differs in these lines (and writes the older use_flip).
BASICSR_SRX2 = (BASICSR_SRX4.replace("SRx4", "SRx2").replace("scale: 4", "scale: 2").replace("X4_sub", "X2_sub")
                .replace("gt_size: 192", "gt_size: 96").replace("use_hflip", "use_flip").replace("LRbicx4", "LRbicx2")
                .replace("upscale: 4", "upscale: 2").replace("crop_border: 4", "crop_border: 2"))


def write(tmp_path, text, name="opt.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_options_file_parses(path):
    opts = load_options(path)
    cfg = opts.network_g.config
    assert opts.train_set.gt_size % opts.scale == 0
    assert parse_options(opts.to_dict(), opts.source) == opts  # the logged options read back as they were
    retrain = path.stem.startswith("retrain_")  # issue 32: the same recipes on ../shared/trainsets
    stem = path.stem.removeprefix("retrain_")
    if stem in ("smoke", "bundled_x4", "bundled_dn", "bundled_dn_gray", "bundled_real_x4") or \
            path.stem.startswith("convergence_"):
        if retrain:  # today's file's network; trained on the listed photos, validated on the 8 held back
            today = load_options(path.with_name(stem + ".yml"))
            assert opts.network_g == today.network_g and opts.train_set.type == today.train_set.type
            assert opts.train_set.dataroot_gt == opts.val_sets[0].dataroot_gt == "../shared/trainsets"
            listed = [(ROOT / s.meta_info_file).read_text().split("\n") for s in (opts.train_set, opts.val_sets[0])]
            train_names, val_names = ({n for n in lines if n and not n.startswith("#")} for lines in listed)
            assert len(val_names) == 8 and len(train_names) > 500 and not train_names & val_names
            assert opts.train.scheduler.args["periods"] == (opts.train.total_iter,)
        # short CPU schedules of their own, not the paper's
        if stem.startswith("bundled_dn"):  # blind color denoiser: a level per patch, validated at 25
            assert opts.train_set.sigma == (0.0, 50.0) and opts.val_sets[0].sigma == 25.0
            assert (cfg.in_chans, cfg.upsampler, cfg.task) == (3, "", "denoise")
            # stage 2 fine-tunes stage 1 with gray noise on part of the patches, on the same photos
            if stem.endswith("gray"):
                stage1 = load_options(path.with_name(path.stem.removesuffix("_gray") + ".yml"))
                assert opts.train_set.gray_noise_prob == 0.4 and stage1.train_set.gray_noise_prob is None
                assert opts.network_g == stage1.network_g and opts.train_set.dataroot_gt == stage1.train_set.dataroot_gt
                assert opts.path.pretrain_network_g == \
                    f"experiments/{stage1.name}/models/net_g_{stage1.train.total_iter}.pth"
        if stem == "bundled_real_x4":  # bundled-x4 fine-tuned on Real-ESRGAN's degradation
            x4 = load_options(path.with_name(path.stem.replace("real_x4", "x4") + ".yml"))
            assert opts.network_g == x4.network_g and opts.path.pretrain_network_g == (
                f"experiments/{x4.name}/models/net_g_{x4.train.total_iter}.pth" if retrain else "bundled-x4")
            assert opts.train_set.type == opts.val_sets[0].type == "RealESRGANDataset"
            assert opts.train_set.dataroot_gt == x4.train_set.dataroot_gt and opts.train_set.gt_usm is False
            assert retrain or "skimage://" in opts.val_sets[0].dataroot_gt
            assert opts.val_sets[0].realesrgan == opts.train_set.realesrgan  # validated on the same degradation
        if path.stem.startswith("convergence_"):  # Swin2SR against SwinIR: one setup, only the network differs
            other = load_options(path.with_name(path.name.replace("swin2sr", "swinir") if "swin2sr" in path.name
                                                else path.name.replace("swinir", "swin2sr")))
            assert {cfg.arch, other.network_g.config.arch} == {"swinir", "swin2sr"}
            assert cfg.replace(arch="swinir") == other.network_g.config.replace(arch="swinir")
            assert (opts.train, opts.train_set, opts.val) == (other.train, other.train_set, other.val)
        return
    if path.stem.startswith("realworld_x4"):  # the two-stage real-world recipe: SwinIR-M, nearest+conv
        gan = path.stem.endswith("gan")
        assert (cfg.embed_dim, len(cfg.depths), cfg.upsampler, cfg.upscale) == (180, 6, "nearest+conv", 4)
        assert opts.train_set.type == "BSRGANDataset" and opts.train_set.gt_size == 256
        assert opts.train.ema_decay == 0.999 and opts.train.gan == gan
        assert opts.train.optim_g.args["lr"] == (1e-4 if gan else 2e-4)
        if gan:
            t = opts.train
            assert opts.network_d.type == "UNetDiscriminatorSN" and t.optim_d.args["lr"] == 1e-4
            assert t.pixel_opt.args["loss_weight"] == 1.0 and t.gan_opt.args["loss_weight"] == 0.1
            assert t.perceptual_opt.args["layer_weights"] == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0,
                                                              "conv4_4": 1.0, "conv5_4": 1.0}
            assert opts.path.pretrain_network_g.endswith("SwinIR_realworldSR_x4_psnr_DF2K_OST/models/net_g_latest.pth")
        return
    assert opts.train.optim_g.type == "Adam" and opts.train.optim_g.args["lr"] == (1e-4 if path.stem == "hat_x4"
                                                                                   else 2e-4)
    assert opts.train.ema_decay == 0.999 and opts.val.metrics
    # Swin2SR's, HAT's and DAT's files: SwinIR's settings, as their papers train them.
    arch = next((a for a in ("swin2sr", "hat", "dat") if path.stem.startswith(a + "_")), "swinir")
    stem = path.stem.removeprefix(arch + "_")
    assert (cfg.arch, opts.network_g.type) == (arch, {"swinir": "SwinIR", "swin2sr": "Swin2SR", "hat": "HAT",
                                                      "dat": "DAT"}[arch])
    if arch == "dat":  # DAT-light, zhengchen1999/DAT's options/Train: x2 from scratch, x4 fine-tuned from it
        k = cfg.upscale
        assert cfg == SwinIRConfig.preset(f"dat-light-x{k}", drop_path_rate=0.1)  # the official default
        assert "depths" in opts.network_g.given  # written `depth`, as the official files do
        assert (opts.scale, opts.train_set.gt_size, opts.train_set.batch_size_per_gpu * 8) == (k, 64 * k, 32)
        assert opts.train.total_iter == 500000 and opts.train.optim_g.args["betas"] == (0.9, 0.99)
        assert opts.train.scheduler.args["milestones"] == (250000, 400000, 450000, 475000)
        assert all(opts.crop_border(m) == k and m.test_y_channel for m in opts.val.metrics.values())
        if k == 2:
            assert opts.path.pretrain_network_g is None and opts.path.strict_load_g is True
        else:
            assert opts.path.pretrain_network_g == "experiments/DAT_light_SRx2_DF2K/models/net_g_latest.pth"
            assert opts.path.strict_load_g is False
    elif arch == "hat":  # x2 from scratch; x4 fine-tuned from it, as XPixelGroup/HAT's options/train
        assert (cfg.window_size, cfg.compress_ratio, cfg.squeeze_factor, cfg.overlap_ratio) == (16, 3, 30, 0.5)
        k = cfg.upscale
        assert opts.train_set.gt_size == 64 * k and opts.train_set.batch_size_per_gpu * 8 == 32
        if k == 2:
            assert opts.train.total_iter == 500000 and opts.path.pretrain_network_g is None
            assert opts.train.scheduler.args["milestones"] == (250000, 400000, 450000, 475000)
        else:
            assert opts.train.total_iter == 250000 and opts.train.optim_g.args["lr"] == 1e-4
            assert opts.train.scheduler.args["milestones"] == (125000, 200000, 225000, 240000)
            assert opts.path.pretrain_network_g == "experiments/HAT_SRx2_DF2K/models/net_g_latest.pth"
            assert opts.path.strict_load_g is False
    elif stem.startswith("x") or stem.startswith("lightweight"):
        k = int(stem[-1])
        assert (cfg.upscale, opts.scale, opts.train_set.gt_size, cfg.window_size) == (k, k, 64 * k, 8)
        assert opts.train.total_iter == 500000
        assert opts.train.scheduler.args["milestones"] == (250000, 400000, 450000, 475000)
        assert opts.train.scheduler.args["gamma"] == 0.5
        embed, blocks, upsampler, batch = ((180, 6, "pixelshuffle", 32) if stem.startswith("x")
                                           else (60, 4, "pixelshuffledirect", 64))
        assert (cfg.embed_dim, len(cfg.depths), cfg.upsampler) == (embed, blocks, upsampler)
        assert opts.train_set.batch_size_per_gpu * 8 == batch  # per process, with 8 processes
        assert all(opts.crop_border(m) == k and m.test_y_channel for m in opts.val.metrics.values())
    elif path.stem.startswith("denoise"):
        assert opts.train_set.type == "DenoisingDataset" and opts.train_set.sigma == float(path.stem[-2:])
        assert (cfg.window_size, cfg.img_range, cfg.upsampler, opts.train_set.gt_size) == (8, 1.0, "", 128)
        assert cfg.in_chans == (3 if "color" in path.stem else 1)
        assert opts.train.total_iter == 1600000
    else:
        assert path.stem.startswith("jpeg") and opts.train_set.type == "JPEGDataset"
        assert opts.train_set.quality == int(path.stem[-2:]) and opts.val_sets[0].quality == int(path.stem[-2:])
        assert (cfg.window_size, cfg.img_range, cfg.img_size, opts.train_set.gt_size) == (7, 255.0, 126, 126)
        assert cfg.in_chans == (3 if "color" in path.stem else 1)


def test_the_shipped_set_is_complete():
    names = {p.stem for p in SHIPPED}
    expected = {"x2", "x3", "x4", "x8", "lightweight_x2", "lightweight_x3", "lightweight_x4", "smoke",
                "realworld_x4_psnr", "realworld_x4_gan", "hat_x2", "hat_x4", "dat_light_x2", "dat_light_x4"}
    expected |= {f"denoise_{c}_s{s}" for c in ("color", "gray") for s in (15, 25, 50)}
    expected |= {f"jpeg_{c}_q{q}" for c in ("color", "gray") for q in (10, 20, 30, 40)}
    assert expected <= names


def test_dat_takes_the_official_argument_names(tmp_path):
    """network_g: {type: DAT} as zhengchen1999/DAT writes it (depth, use_chk); one name per argument."""
    text = (ROOT / "options" / "dat_light_x4.yml").read_text()
    opts = load_options(write(tmp_path, text.replace("  depth: [18]", "  depth: [18]\n  use_chk: true")))
    assert opts.network_g.config.depths == (18,) and opts.network_g.config.use_checkpoint is True
    assert {"depths", "use_checkpoint"} <= set(opts.network_g.given)  # evaluation compares them by our names
    with pytest.raises(OptionsError, match=r"network_g\.depth: and depths are the same argument"):
        load_options(write(tmp_path, text.replace("  depth: [18]", "  depth: [18]\n  depths: [18]")))
    with pytest.raises(OptionsError, match=r"unknown option network_g\.depth "):  # SwinIR's name only for SwinIR
        load_options(write(tmp_path, (ROOT / "options" / "lightweight_x4.yml").read_text().replace(
            "depths:", "depth:")))
    with pytest.raises(OptionsError, match=r"network_g: .*mlp_ratio: not DAT arguments"):
        load_options(write(tmp_path, text.replace("  expansion_factor: 2", "  mlp_ratio: 2")))
    with pytest.raises(OptionsError, match=r"datasets\.train\.batch_size_per_gpu: DAT needs at least 2 per process"):
        load_options(write(tmp_path, text.replace("batch_size_per_gpu: 4", "batch_size_per_gpu: 1")))


@pytest.mark.parametrize("text", [BASICSR_SRX4, BASICSR_SRX2], ids=["SRx4", "SRx2"])
def test_basicsrs_own_swinir_files_parse_unchanged(tmp_path, text):
    opts = load_options(write(tmp_path, text))
    scale = opts.scale
    assert opts.network_g.config.upscale == scale and opts.train_set.gt_size == 48 * scale
    assert opts.train_set.hflip and opts.train_set.use_rot and opts.train_set.batch_size_per_gpu == 4
    assert opts.val.val_freq == 5000 and opts.logger.save_checkpoint_freq == 5000
    assert opts.val.metrics["psnr"].test_y_channel is False and opts.crop_border(opts.val.metrics["psnr"]) == scale
    assert opts.train.scheduler.args["milestones"][0] == 250000 and opts.num_gpu == "auto"


@pytest.mark.parametrize("override, key", [
    ("train:optim_g:lrr=1e-4", "train.optim_g.lrr"),
    ("datasets:train:gt_sise=96", "datasets.train.gt_sise"),
    ("network_g:embed_dims=60", "network_g.embed_dims"),
    ("val:metrics:psnr:crop_boarder=4", "val.metrics.psnr.crop_boarder"),
    ("logger:print_frq=10", "logger.print_frq"),
    ("train:scheduler:milestone=[1]", "train.scheduler.milestone"),
    ("train:pixel_opt:weight=1", "train.pixel_opt.weight"),
    ("nmae=x", "nmae"),
])
def test_unknown_keys_are_named_with_their_path(tmp_path, override, key):
    with pytest.raises(OptionsError) as err:
        load_options(write(tmp_path, BASICSR_SRX4), [override])
    message = str(err.value)
    assert f"unknown option {key}" in message and "\n" not in message and "opt.yml" in message


@pytest.mark.parametrize("override, message", [
    ("train:total_iter=lots", "train.total_iter: expected a number"),
    ("datasets:train:use_rot=maybe", "datasets.train.use_rot: expected true or false"),
    ("datasets:train:type=WeirdDataset", "datasets.train.type: 'WeirdDataset' is not one of"),
    ("train:amp=fp8", "train.amp: 'fp8' is not one of bf16, fp16"),
    ("scale=3", "scale: 3 but network_g.upscale is 4"),
    ("datasets:train:gt_size=190", "datasets.train.gt_size: 190 is not a multiple of scale 4"),
    ("network_g:embed_dim=100", "network_g: embed_dim 100 is not divisible"),
    ("train:optim_g:type=Adagradd", "train.optim_g.type: 'Adagradd' is not one of"),
    ("datasets:test_1:dataroot_gt=x", "datasets.test_1: dataset keys are train, val or val_<anything>"),
])
def test_bad_values_are_named(tmp_path, override, message):
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_options(write(tmp_path, BASICSR_SRX4), [override])


def test_force_yml_overrides_before_checking(tmp_path):
    path = write(tmp_path, BASICSR_SRX4)
    opts = load_options(path, ["train:total_iter=1000", "train:optim_g:lr=1e-3", "datasets:train:batch_size_per_gpu=8",
                               "network_g:depths=[2, 2]", "network_g:num_heads=[6, 6]", "train:amp=bf16",
                               "path:pretrain_network_g=classical-x4", "train:scheduler:milestones=[500, 750]"])
    assert opts.train.total_iter == 1000 and opts.train.optim_g.args["lr"] == 1e-3  # 1e-3: a YAML string, read
    assert opts.train_set.batch_size_per_gpu == 8 and opts.network_g.config.depths == (2, 2)
    assert opts.train.amp == "bf16" and opts.path.pretrain_network_g == "classical-x4"
    assert opts.train.scheduler.args["milestones"] == (500, 750)
    with pytest.raises(OptionsError, match="expected key:sub=value"):
        load_options(path, ["train:total_iter"])
    with pytest.raises(OptionsError, match="datasets.train.name is not a mapping"):
        apply_override(yaml.safe_load(BASICSR_SRX4), "datasets:train:name:x=1")


def test_debug_mode_is_basicsrs(tmp_path):
    opts = load_options(write(tmp_path, BASICSR_SRX4), debug=True)
    assert opts.name == "debug_train_SwinIR_SRx4_scratch_P48W8_DIV2K_500k_B4G8"
    assert (opts.logger.print_freq, opts.logger.save_checkpoint_freq, opts.val.val_freq) == (1, 8, 8)
    assert opts.experiments_root == Path("experiments") / opts.name


def test_required_sections(tmp_path):
    raw = yaml.safe_load(BASICSR_SRX4)
    for key, message in (("train", "train is missing"), ("network_g", "network_g: is required")):
        broken = {k: v for k, v in raw.items() if k != key}
        with pytest.raises(OptionsError, match=message):
            parse_options(broken, "x.yml")
    raw["datasets"]["train"].pop("gt_size")
    with pytest.raises(OptionsError, match="datasets.train.gt_size: is required"):
        parse_options(raw, "x.yml")


# ---- schedules, losses, EMA ------------------------------------------------------------------


def schedule(tmp_path, **train):
    raw = yaml.safe_load(BASICSR_SRX4)
    raw["train"].update(train)
    return lr_schedule(parse_options(raw, "x.yml").train)


def basicsr_rates(train: dict, iterations: int):
    """The learning rate of iterations 1..n as BasicSR's own schedulers and update_learning_rate give it."""
    import types

    import swinir_app._basicsr  # noqa: F401 - the torchvision alias basicsr needs
    from basicsr.models import lr_scheduler
    from basicsr.models.base_model import BaseModel

    args = {k: v for k, v in train["scheduler"].items() if k != "type"}
    kind = train["scheduler"]["type"]
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=float(train["optim_g"]["lr"]))
    cosine = kind == "CosineAnnealingRestartLR"
    cls = lr_scheduler.CosineAnnealingRestartLR if cosine else lr_scheduler.MultiStepRestartLR
    model = types.SimpleNamespace(schedulers=[cls(optimizer, **args)], optimizers=[optimizer])
    model._get_init_lr = types.MethodType(BaseModel._get_init_lr, model)
    model._set_lr = types.MethodType(BaseModel._set_lr, model)
    rates = []
    for it in range(1, iterations + 1):
        BaseModel.update_learning_rate(model, it, warmup_iter=train.get("warmup_iter", -1))
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


@pytest.mark.parametrize("train", [
    {"scheduler": {"type": "MultiStepLR", "milestones": [10, 30, 45], "gamma": 0.5}},
    {"scheduler": {"type": "MultiStepLR", "milestones": [10, 30], "gamma": 0.5}, "warmup_iter": 8},
    {"scheduler": {"type": "MultiStepRestartLR", "milestones": [10, 30], "gamma": 0.1, "restarts": [20],
                   "restart_weights": [0.5]}},
    {"scheduler": {"type": "CosineAnnealingRestartLR", "periods": [20, 40], "restart_weights": [1, 0.5],
                   "eta_min": 1e-7}},
    {"scheduler": {"type": "CosineAnnealingRestartLR", "periods": [60], "restart_weights": [1]}, "warmup_iter": 5},
], ids=["multistep", "warmup", "restarts", "cosine-restarts", "cosine-warmup"])
@pytest.mark.filterwarnings("ignore::UserWarning")  # basicsr steps schedulers before optimizers
def test_schedules_are_basicsrs(train):
    raw = yaml.safe_load(BASICSR_SRX4)
    raw["train"].update(train)
    ours = lr_schedule(parse_options(raw, "x.yml").train)
    theirs = basicsr_rates(raw["train"], 60)
    assert [ours(it) for it in range(1, 61)] == pytest.approx(theirs, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("kind, args", [("L1Loss", {}), ("MSELoss", {"loss_weight": 2.0}),
                                        ("CharbonnierLoss", {"eps": 1e-6}), ("L1Loss", {"reduction": "sum"}),
                                        ("CharbonnierLoss", {"loss_weight": 0.5, "reduction": "sum"})])
def test_losses_are_basicsrs(kind, args):
    import swinir_app._basicsr  # noqa: F401 - the torchvision alias basicsr needs
    from basicsr.losses import basic_loss as losses
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    ours = make_loss(type("T", (), {"type": kind, "args": args})())(pred, target)
    theirs = getattr(losses, kind)(**args)(pred, target)
    torch.testing.assert_close(ours, theirs)


def test_ema_is_basicsrs():
    import copy
    import types

    import swinir_app._basicsr  # noqa: F401
    from basicsr.models.base_model import BaseModel
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    ours = EMA(model, 0.9)
    theirs = types.SimpleNamespace(net_g=model, net_g_ema=copy.deepcopy(model), get_bare_model=lambda net: net)
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.update()
        BaseModel.model_ema(theirs, decay=0.9)
    for (k, a), b in zip(ours.module.state_dict().items(), theirs.net_g_ema.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert not any(p.requires_grad for p in ours.module.parameters())


def test_ema_carries_batchnorm_statistics():
    """DAT's BatchNorm statistics: the model's, copied at every update (BasicSR's EMA would keep the initial
    mean 0 and variance 1, and a params_ema model would normalise with them)."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    ema = EMA(model, 0.9)
    model(torch.rand(2, 3, 5, 5) * 3)
    ema.update()
    for (k, a), b in zip(ema.module.state_dict().items(), model.state_dict().values()):
        if "running" in k or "num_batches" in k:
            assert torch.equal(a, b), k
    assert ema.module[1].running_mean.abs().max() > 0 and ema.module[1].num_batches_tracked == 1


def test_eta_format():
    assert format_eta(2 * 86400 + 3 * 3600 + 59) == "2d 3h"
    assert format_eta(3 * 3600 + 12 * 60) == "3h 12m" and format_eta(245) == "4m 5s" and format_eta(12.7) == "12s"
