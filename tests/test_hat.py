"""HAT: exact against the official network (spandrel's port of XPixelGroup/HAT's hat_arch.py, with the official
padding), in its outputs and its training gradients; its published files load by name with their config
inferred; every front end runs it."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photo
from oracle import random_state
from swinir_app.network import HAT, SwinIRConfig, build_network, derived_buffers

hat_arch = pytest.importorskip("spandrel.architectures.HAT.__arch.HAT",
                               reason="spandrel (requirements-dev.txt) carries the official HAT")


def official(config: SwinIRConfig) -> torch.nn.Module:
    c = config
    return hat_arch.HAT(img_size=c.img_size, patch_size=1, in_chans=c.in_chans, embed_dim=c.embed_dim,
                        depths=list(c.depths), num_heads=list(c.num_heads), window_size=c.window_size,
                        compress_ratio=c.compress_ratio, squeeze_factor=c.squeeze_factor, conv_scale=c.conv_scale,
                        overlap_ratio=c.overlap_ratio, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
                        drop_path_rate=c.drop_path_rate, upscale=c.upscale, img_range=c.img_range,
                        upsampler=c.upsampler, resi_connection=c.resi_connection)


def small_hat(preset: str, **overrides) -> SwinIRConfig:
    """A preset shrunk for fast tests: 2 groups of 2 blocks, 6 heads of 6 or 8 channels, the ratios kept
    where the width allows."""
    base = SwinIRConfig.preset(preset)
    embed = 48 if base.compress_ratio == 24 else 36
    ratios = dict(compress_ratio=4, squeeze_factor=4) if base.compress_ratio == 24 else {}
    return base.replace(depths=(2, 2), num_heads=(6, 6), embed_dim=embed, img_size=32, **{**ratios, **overrides})


def pair(config: SwinIRConfig, seed: int = 0):
    ours, ref = build_network(config), official(config)
    state = random_state(ours, seed)
    assert set(state) == set(ref.state_dict())
    ours.load_state_dict(state, strict=True)
    ref.load_state_dict(state, strict=True)
    return ours.eval(), ref.eval()


NON_DEFAULT = dict(window_size=8, overlap_ratio=0.25, conv_scale=0.05, compress_ratio=6, squeeze_factor=8)


@pytest.mark.parametrize("preset", ["hat-x2", "hat-x3", "hat-s-x4", "hat-l-x4", "hat-x4-non-default"])
@pytest.mark.parametrize("size, batch", [((16, 16), 1), ((29, 43), 2), ((40, 72), 1)])
def test_output_equals_official(preset, size, batch):
    config = small_hat("hat-x4", **NON_DEFAULT) if preset.endswith("non-default") else small_hat(preset)
    ours, ref = pair(config)
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = ours(x), ref(x)
    assert got.shape == expected.shape == (batch, 3, size[0] * config.upscale, size[1] * config.upscale)
    assert (got - expected).abs().max() <= 1e-4


def test_full_size_hat_s_equals_official_and_keys_match_every_preset():
    ours, ref = pair(SwinIRConfig.preset("hat-s-x4"), seed=2)
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() <= 1e-4
    config = SwinIRConfig.preset("hat-x4")  # HAT-L and Real-HAT-GAN differ only in depth and weights
    with torch.device("meta"):
        ours = build_network(config)
    assert isinstance(ours, HAT)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
           {k: v.shape for k, v in official(config).state_dict().items()}


def test_training_gradients_equal_official():
    config = small_hat("hat-s-x4", drop_path_rate=0.0)
    ours, ref = pair(config, seed=5)
    ours.train()
    ref.train()
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    target = torch.rand(2, 3, 128, 192)
    for model in (ours, ref):
        torch.nn.functional.l1_loss(model(x), target).backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        e = ref_grads[name].grad
        assert torch.allclose(p.grad, e, rtol=1e-4, atol=1e-6 * max(1.0, float(e.abs().max()))), name


def test_dicts_without_the_index_buffers_load_and_hat_arguments_are_checked():
    from swinir_app.checkpoint import detect_arch, infer_config
    config = small_hat("hat-x2", overlap_ratio=0.25)
    state = {k: v for k, v in random_state(build_network(config)).items() if "relative_position_index" not in k}
    build_network(config).load_state_dict(state, strict=True)
    # Told apart by the CAB convs, and the overlap read from OCAB's bias table instead of its index.
    assert detect_arch(state) == "hat"
    inferred = infer_config(state)
    assert (inferred.overlap_ratio, inferred.window_size, inferred.depths, inferred.embed_dim) == (0.25, 16, (2, 2), 36)
    build_network(inferred).load_state_dict(state, strict=True)  # ratios giving the same conv widths are one net
    with pytest.raises(ValueError, match="compress_ratio: HAT arguments, and this is swinir"):
        SwinIRConfig.preset("classical-x4", compress_ratio=4)
    assert "compress_ratio" not in SwinIRConfig.preset("classical-x4").to_dict()


def test_ocab_bias_is_gathered_once_until_its_table_changes():
    ours, ref = pair(small_hat("hat-s-x4"), seed=3)
    ocab = ours.layers[0].residual_group.overlap_attn
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        ours(x)
        first = ocab.inference_bias(torch.float32)
        ours(torch.rand(1, 3, 33, 17))  # another size: the same bias
        assert ocab.inference_bias(torch.float32) is first and not first.is_inference()
    with torch.no_grad():
        ocab.relative_position_bias_table.add_(0.5)  # an optimizer step, or loaded weights
        ref.layers[0].residual_group.overlap_attn.relative_position_bias_table.add_(0.5)
        assert ocab.inference_bias(torch.float32) is not first
        assert (ours(x) - ref(x)).abs().max() <= 1e-4


def test_auto_tiles_keep_hat_within_swinirs_memory_budget():
    """HAT's activations take about 2.1x SwinIR-M's per input pixel (measured: 61 KB against 29 KB at
    128², fp32; README): the engine's estimate says so, so auto tiles are smaller for the same budget."""
    from swinir_app.engine import bytes_per_pixel
    hat, hat_s, swinir = (bytes_per_pixel(SwinIRConfig.preset(p)) for p in ("hat-x4", "hat-s-x4", "classical-x4"))
    assert hat >= 2.1 * swinir and hat_s >= 2.1 * 28_753 and swinir >= 28_753


# ---------------------------------------------------------------------------------------------
# The published files: params_ema dicts, placed by hand


HAT_NAMES = ["hat-x2", "hat-x3", "hat-x4", "hat-x2-imagenet", "hat-x3-imagenet", "hat-x4-imagenet", "hat-s-x2",
             "hat-s-x3", "hat-s-x4", "hat-l-x2", "hat-l-x3", "hat-l-x4", "real-hat-gan-x4",
             "real-hat-gan-x4-sharper"]


def official_layout(config: SwinIRConfig) -> dict:
    """Every key and shape of the official network's state dict, each tensor one seeded value broadcast
    (a file of a few kilobytes, even for HAT-L's 41M parameters)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_network(config).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {k: (0.01 * torch.randn(1, generator=g)).expand(s) if len(s) else torch.randn((), generator=g)
             for k, s in shapes.items()}
    return {**state, **derived_buffers(config)}  # the real position indices, as the official file stores them


@pytest.mark.parametrize("name", HAT_NAMES)
def test_each_published_file_loads_by_name_with_its_config_inferred(name, tmp_path, monkeypatch):
    from swinir_app import load_model, zoo
    from swinir_app.checkpoint import ModelLoadError
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path))
    entry = zoo.ZOO[name]
    assert entry.manual and entry.url is None
    with pytest.raises(ModelLoadError, match=f"{entry.filename} cannot be downloaded automatically .*"
                                             f"place it at {tmp_path / entry.filename}"):
        load_model(name)
    torch.save({"params_ema": official_layout(entry.config)}, tmp_path / entry.filename)
    # By name (checked against the entry) and by path: the config inferred from the tensors, checked
    # against every name and shape on the meta device. One of them is built and run too.
    assert zoo.resolve(name).config == entry.config
    assert zoo.resolve(str(tmp_path / entry.filename)).config == entry.config
    if name == "hat-s-x2":
        model = load_model(name)
        assert isinstance(model, HAT) and model.config == entry.config
        with torch.no_grad():
            assert torch.isfinite(model(torch.rand(1, 3, 16, 16))).all()


# ---------------------------------------------------------------------------------------------
# Every front end, training included


def test_every_front_end_runs_hat(tmp_path, capsys, monkeypatch):
    from frontends import check_front_ends
    from swinir_app.evaluate import evaluate

    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "home"))
    _, ref = pair(small_hat("hat-x2"), seed=8)
    ckpt = tmp_path / "models" / "HAT_SRx2.pth"
    ckpt.parent.mkdir()
    torch.save({"params_ema": ref.state_dict()}, ckpt)
    check_front_ends(tmp_path, ckpt, ref, scale=2)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    Image.fromarray(np.ascontiguousarray(photo("coffee")[:64, :80])).save(gt_dir / "coffee.png")
    result = evaluate(str(ckpt), gt_dir, device="cpu", progress=False)
    assert result.protocol.window_size == 16 and result.images[0].metrics["psnr_y"] > 10
    capsys.readouterr()


def test_hat_trains_with_the_pipeline(tmp_path):
    from swinir_app import load_model
    from swinir_app.train import load_options, train
    from helpers import tiny_options, write_pairs

    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    net = {"type": "HAT", "upscale": 2, "in_chans": 3, "img_size": 16, "window_size": 8, "img_range": 1.0,
           "depths": [2], "embed_dim": 12, "num_heads": [2], "mlp_ratio": 2, "upsampler": "pixelshuffle",
           "resi_connection": "1conv", "compress_ratio": 3, "squeeze_factor": 4, "overlap_ratio": 0.5}
    opt = tiny_options(tmp_path, hr, lr, total_iter=4, network_g=net)
    assert train(load_options(opt)).iter == 4
    model = load_model(str(tmp_path / "experiments" / "tiny"))
    assert isinstance(model, HAT) and model.config.squeeze_factor == 4
