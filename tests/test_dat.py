"""DAT: exact against the official network (spandrel's port of zhengchen1999/DAT's dat_arch.py) in its outputs and
training gradients; official state dicts load strictly, with their config inferred from the tensors; presets."""
import pytest
import torch

from swinir_app.network import DAT, SwinIRConfig, build_network, derived_buffers, state_shapes

dat_arch = pytest.importorskip("spandrel.architectures.DAT.__arch.DAT",
                               reason="spandrel (requirements-dev.txt) carries the official DAT")


def official(c: SwinIRConfig) -> torch.nn.Module:
    return dat_arch.DAT(img_size=c.img_size, in_chans=c.in_chans, embed_dim=c.embed_dim, split_size=list(c.split_size),
                        depth=list(c.depths), num_heads=list(c.num_heads), expansion_factor=c.expansion_factor,
                        qkv_bias=c.qkv_bias, drop_path_rate=c.drop_path_rate, upscale=c.upscale,
                        img_range=c.img_range, resi_connection=c.resi_connection, upsampler=c.upsampler)


def random_state(module: torch.nn.Module, seed: int = 0) -> dict:
    """Seeded non-default values for every parameter and BatchNorm statistic (the derived buffers kept)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in module.state_dict().items():
        if k.endswith("running_var"):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith("running_mean"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif v.is_floating_point() and not k.endswith(("rpe_biases", "attn_mask_0", "attn_mask_1")):
            noise = torch.randn(v.shape, generator=g)
            scale_like = k.endswith(("norm.weight", "norm1.weight", "norm2.weight", "before_RG.1.weight",
                                     "temperature"))
            v = 1.0 + 0.1 * noise if scale_like else 0.05 * noise
        state[k] = v.clone()
    return state


# Small versions of the official models: their heads, splits and ratios, fewer and narrower blocks. The
# groups of 3 and 5 blocks hold shifted and unshifted spatial blocks in both even and odd groups.
SMALL = {
    "dat-light-x2": dict(depths=(3,), num_heads=(6,), embed_dim=36, img_size=32),
    "dat-s-x4": dict(depths=(3, 1), num_heads=(4, 2), embed_dim=32, img_size=32),
    "dat-2-x3": dict(depths=(1, 2), num_heads=(2, 4), embed_dim=32, img_size=32),
    "dat-x2": dict(depths=(2, 1), num_heads=(6, 6), embed_dim=36, img_size=64, split_size=(4, 8)),
}


def small(preset: str, **overrides) -> SwinIRConfig:
    return SwinIRConfig.preset(preset, **{**SMALL[preset], **overrides})


def pair(config: SwinIRConfig, seed: int = 0):
    ours, ref = build_network(config), official(config)
    state = random_state(ref, seed)
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    ref.load_state_dict(state, strict=True)
    return ours.eval(), ref.eval()


@pytest.mark.parametrize("preset", list(SMALL))
def test_output_equals_official(preset):
    config = small(preset)
    ours, ref = pair(config)
    assert isinstance(ours, DAT) and ours.config.window_size == max(config.split_size)
    for size, batch in [((37, 29), 1), ((16, 32), 2)]:  # odd, and multiples of the splits
        x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            got, expected = ours(x), ref(x)
        assert got.shape == expected.shape == (batch, 3, size[0] * config.upscale, size[1] * config.upscale)
        assert (got - expected).abs().max() < 1e-5, (size, batch)


def test_inference_mode_caches_and_follows_the_weights():
    ours, ref = pair(small("dat-s-x4"), seed=3)
    x = torch.rand(1, 3, 21, 19)
    with torch.inference_mode():
        first = ours(x)
        assert (first - ref(x)).abs().max() < 1e-5
        assert torch.equal(ours(x), first)  # from the caches
        assert ours(torch.rand(2, 3, 24, 40)).shape == (2, 3, 96, 160)  # another size and batch
    with torch.no_grad():  # an optimizer step or new weights: the cached biases and folded convs follow
        for model in (ours, ref):
            model.layers[0].blocks[0].attn.attns[1].pos.pos3[2].weight.add_(0.3)
            model.layers[0].blocks[1].attn.dwconv[1].running_var.mul_(2.0)
    with torch.inference_mode():
        assert (ours(x) - ref(x)).abs().max() < 1e-5


def test_training_gradients_equal_official():
    config = small("dat-s-x4", drop_path_rate=0.0)
    ours, ref = pair(config, seed=5)
    x = torch.rand(2, 3, 13, 19, generator=torch.Generator().manual_seed(2))
    target = torch.rand(2, 3, 52, 76)
    for model in (ours, ref):
        model.train()
        torch.nn.functional.l1_loss(model(x), target).backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        e = ref_grads[name].grad
        assert torch.allclose(p.grad, e, rtol=1e-4, atol=1e-6 * max(1.0, float(e.abs().max()))), name
    ref_buffers = dict(ref.named_buffers())
    for name, b in ours.named_buffers():  # BatchNorm statistics updated alike
        if name.endswith("running_mean"):
            assert torch.allclose(b, ref_buffers[name], atol=1e-6), name


# ---------------------------------------------------------------------------------------------
# State dicts: official layout, config inference, derived buffers


@pytest.mark.parametrize("preset", ["dat-light-x2", "dat-s-x4", "dat-2-x3"])
def test_official_state_dict_loads_and_its_config_is_inferred(preset):
    from swinir_app.checkpoint import detect_arch, infer_config, unwrap
    from spandrel.architectures.DAT import DATArch
    config = small(preset, split_size=(8, 16) if preset == "dat-s-x4" else (8, 32), img_size=64)
    ref = official(config)
    wrapped = {"params_ema": {"module." + k: v for k, v in random_state(ref, 1).items()}}
    state, _ = unwrap(wrapped)
    assert detect_arch(state) == "dat"
    inferred = infer_config(state)
    assert inferred == config
    spandrel_says = DATArch().load(state).model.hyperparameters
    assert (list(inferred.split_size), list(inferred.depths), list(inferred.num_heads), inferred.upscale,
            inferred.expansion_factor, inferred.upsampler, inferred.resi_connection, inferred.img_size) == \
           (spandrel_says["split_size"], spandrel_says["depth"], spandrel_says["num_heads"], spandrel_says["upscale"],
            spandrel_says["expansion_factor"], spandrel_says["upsampler"], spandrel_says["resi_connection"],
            spandrel_says["img_size"])
    build_network(inferred).load_state_dict(state, strict=True)
    # Without the derived buffers: the same config (img_size the official 64), and a strict load.
    bare = {k: v for k, v in state.items() if not k.endswith(("attn_mask_0", "attn_mask_1", "rpe_biases"))}
    assert infer_config(bare) == config
    build_network(config).load_state_dict(bare, strict=True)
    derived = derived_buffers(config)
    assert set(state) - set(bare) <= set(derived) <= set(state)
    assert all(torch.equal(derived[k], state[k]) for k in derived)


def test_derived_buffers_and_shapes_match_the_official_network():
    config = SwinIRConfig.preset("dat-light-x4")
    ref = official(config)
    official_state = ref.state_dict()
    assert state_shapes(config) == {k: tuple(v.shape) for k, v in official_state.items()}
    for key, value in derived_buffers(config).items():
        assert torch.equal(value, official_state[key]), key


def test_presets_round_trip_and_non_dat_arguments_are_refused():
    for name in ("dat-x4", "dat-s-x4", "dat-2-x4", "dat-light-x2"):
        config = SwinIRConfig.preset(name)
        assert SwinIRConfig.from_dict(config.to_dict()) == config and config.name == "DAT" and config.task == "sr"
    light = SwinIRConfig.preset("dat-light-x3")
    assert (light.embed_dim, light.depths, light.split_size, light.window_size, light.upsampler, light.upscale) == \
           (60, (18,), (8, 32), 32, "pixelshuffledirect", 3)
    official_kwargs = dict(upscale=4, in_chans=3, img_size=64, img_range=1.0, split_size=[8, 16], depth=[6] * 6,
                           embed_dim=180, num_heads=[6] * 6, expansion_factor=2, resi_connection="1conv")
    assert SwinIRConfig.from_dict({"arch": "dat", **official_kwargs}) == SwinIRConfig.preset("dat-s-x4")
    with pytest.raises(ValueError, match="mlp_ratio: not DAT arguments"):
        SwinIRConfig.preset("dat-x4", mlp_ratio=2.0)
    with pytest.raises(ValueError, match="compress_ratio"):
        SwinIRConfig.preset("dat-x4", compress_ratio=4)
    with pytest.raises(ValueError, match="split_size: DAT arguments, and this is swinir"):
        SwinIRConfig.preset("classical-x4", split_size=(8, 8))
    with pytest.raises(ValueError, match="DAT's heads"):
        SwinIRConfig.preset("dat-x4", upsampler="nearest+conv")
    with pytest.raises(ValueError, match="even num_heads"):
        SwinIRConfig.preset("dat-x4", num_heads=[5] * 6)
    assert "split_size" not in SwinIRConfig.preset("hat-x4").to_dict()


# ---------------------------------------------------------------------------------------------
# Training


def dat_training_options(tmp_path, hr, lr, name: str, total_iter: int):
    """A tiny DAT through helpers.tiny_options, network_g as zhengchen1999/DAT writes it (depth, split_size,
    expansion_factor, 3conv, pixelshuffledirect); drop_path draws random numbers, BatchNorm keeps statistics."""
    import yaml
    from helpers import tiny_options

    opt = tiny_options(tmp_path, hr, lr, name=name, total_iter=total_iter,
                       logger={"save_checkpoint_freq": 2, "print_freq": 1}, val={"val_freq": 4})
    options = yaml.safe_load(opt.read_text())
    options["network_g"] = {"type": "DAT", "upscale": 2, "in_chans": 3, "img_size": 16, "img_range": 1.0,
                            "split_size": [4, 8], "depth": [2], "embed_dim": 32, "num_heads": [2],
                            "expansion_factor": 2, "resi_connection": "3conv", "upsampler": "pixelshuffledirect",
                            "drop_path_rate": 0.1}
    opt.write_text(yaml.safe_dump(options, sort_keys=False))
    return opt


def test_dat_trains_and_resumes_exactly_with_the_pipeline(tmp_path):
    """network_g: {type: DAT}: options, EMA, validation, checkpoints, a model load_model reads; 4 iterations, then
    resumed to 8, equal to 8 straight (weights, EMA and BatchNorm statistics, Adam state)."""
    from helpers import write_pairs
    from swinir_app import load_model
    from swinir_app.train import load_options, train

    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    straight = train(load_options(dat_training_options(tmp_path, hr, lr, "straight", 8)))
    assert straight.iter == 8 and all(torch.isfinite(torch.tensor(loss)) for _, loss in straight.losses)
    exp = tmp_path / "experiments"
    model = load_model(str(exp / "straight"))
    assert isinstance(model, DAT) and model.config.split_size == (4, 8) and model.config.resi_connection == "3conv"

    opt = dat_training_options(tmp_path, hr, lr, "halves", 4)
    assert train(load_options(opt)).iter == 4
    resumed = train(load_options(opt, ["train:total_iter=8"]), auto_resume=True)
    assert resumed.iter == 8
    a = torch.load(exp / "straight" / "models" / "net_g_8.pth", weights_only=True)
    b = torch.load(exp / "halves" / "models" / "net_g_8.pth", weights_only=True)
    for key in ("params", "params_ema"):
        assert a[key].keys() == b[key].keys()
        assert max(float((a[key][k].double() - b[key][k].double()).abs().max()) for k in a[key]) <= 1e-6, key
    stats = [k for k in a["params"] if k.endswith(("running_mean", "running_var"))]
    assert stats  # the AIM's BatchNorm statistics are compared too, and the EMA carries the trained ones
    assert all(torch.equal(a["params_ema"][k], a["params"][k]) for k in stats)
    assert any(a["params_ema"][k].abs().max() > 0 for k in stats if k.endswith("running_mean"))
    first = torch.load(exp / "straight" / "models" / "net_g_4.pth", weights_only=True)["params"]
    assert max(float((a["params"][k] - first[k]).abs().max()) for k in first) > 1e-4  # the second half trained
    sa = torch.load(exp / "straight" / "training_states" / "8.state", weights_only=True)["optimizers"][0]["state"]
    sb = torch.load(exp / "halves" / "training_states" / "8.state", weights_only=True)["optimizers"][0]["state"]
    assert all(torch.allclose(sa[i][k], sb[i][k], atol=1e-6) for i in sa for k in sa[i])


@pytest.mark.slow
def test_dat_resumes_under_torchrun_with_two_processes(tmp_path):
    """DDP (gloo, 2 processes) carries DAT, its BatchNorm statistics included, from a single-process state."""

    from helpers import torchrun_resume, write_pairs
    from swinir_app import load_model
    from swinir_app.train import load_options, train

    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    opt = dat_training_options(tmp_path, hr, lr, "ddp", 4)
    assert train(load_options(opt)).iter == 4
    exp = tmp_path / "experiments" / "ddp"
    torchrun_resume(opt, 8)
    log = sorted(exp.glob("*.log"))[-1].read_text()
    assert "2 process(es) on cpu" in log and "[iter 8/8]" in log
    before, after = load_model(str(exp / "models" / "net_g_4.pth")), load_model(str(exp / "models" / "net_g_8.pth"))
    assert isinstance(after, DAT)
    changed = [k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert any("running_mean" in k for k in changed) and any(k.endswith("qkv.weight") for k in changed)
