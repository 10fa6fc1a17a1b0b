"""Swin2SR: exact against the official network (spandrel's port of mv-lab/swin2sr's network_swin2sr.py), for
every head, size and batch, in its outputs and in its training gradients."""
import copy

import pytest
import torch

from oracle import random_state, small
from swinir_app.network import Swin2SR, SwinIRConfig, build_network, derived_buffers

spandrel_arch = pytest.importorskip("spandrel.architectures.Swin2SR.__arch.Swin2SR",
                                    reason="spandrel (requirements-dev.txt) carries the official Swin2SR")

HEADS = ["swin2sr-classical-x2", "swin2sr-classical-x4", "swin2sr-lightweight-x2", "swin2sr-compressed-x4",
         "swin2sr-real-x4", "swin2sr-gray-jpeg"]


def official(config: SwinIRConfig) -> torch.nn.Module:
    """The official Swin2SR with the same hyperparameters."""
    c = config
    return spandrel_arch.Swin2SR(img_size=c.img_size, patch_size=1, in_chans=c.in_chans, embed_dim=c.embed_dim,
                                 depths=list(c.depths), num_heads=list(c.num_heads), window_size=c.window_size,
                                 mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias, drop_rate=c.drop_rate,
                                 attn_drop_rate=c.attn_drop_rate, drop_path_rate=c.drop_path_rate, ape=c.ape,
                                 patch_norm=c.patch_norm, upscale=c.upscale, img_range=c.img_range,
                                 upsampler=c.upsampler, resi_connection=c.resi_connection)


def pair(config: SwinIRConfig, seed: int = 0):
    """(ours, official), with the same random non-default weights loaded strictly into both."""
    ours = build_network(config)
    ref = official(config)
    state = random_state(ours, seed)
    assert set(state) == set(ref.state_dict())
    ours.load_state_dict(state, strict=True)
    ref.load_state_dict(state, strict=True)
    return ours.eval(), ref.eval()


def small_v2(preset: str, **overrides) -> SwinIRConfig:
    c = small(preset, **overrides)
    return c.replace(img_size=16 if c.window_size == 8 else 14)


@pytest.mark.parametrize("preset", HEADS)
def test_state_dict_keys_and_shapes_match_official(preset):
    config = SwinIRConfig.preset(preset)
    with torch.device("meta"):
        ours = build_network(config)
    ref = official(config)  # spandrel's constructor cannot run on the meta device
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert isinstance(ours, Swin2SR)


@pytest.mark.parametrize("preset", HEADS)
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("size", [(16, 16), (29, 43), (64, 72)])
def test_output_equals_official(preset, size, batch):
    config = small_v2(preset)
    ours, ref = pair(config)
    x = torch.rand(batch, config.in_chans, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(x)
        got = ours(x)
    assert got.shape == expected.shape == (batch, config.in_chans, size[0] * config.upscale, size[1] * config.upscale)
    assert (got - expected).abs().max() <= 1e-4, preset  # on the 0-1 output scale, the JPEG model too


def test_aux_output_is_the_official_one():
    config = small_v2("swin2sr-compressed-x4")
    ours, ref = pair(config)
    x = torch.rand(2, 3, 21, 18)
    with torch.no_grad():
        image, aux = ours(x, aux=True)
        # The official forward, spelled out up to its aux output (spandrel's port drops it).
        xp = ref.check_image_size(x)
        xp = (xp - ref.mean) * ref.img_range
        feat = ref.conv_first(xp)
        feat = ref.conv_after_body(ref.forward_features(feat)) + feat
        expected_aux = ref.conv_aux(ref.conv_before_upsample(feat)) / ref.img_range + ref.mean
    assert (image - ref(x)).abs().max() <= 1e-4
    assert aux.shape == (2, 3, 21, 18)
    assert (aux - expected_aux[:, :, :21, :18]).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="aux=True needs the pixelshuffle_aux head"):
        build_network(small_v2("swin2sr-classical-x2"))(x, aux=True)


def test_full_size_compressed_x4_equals_official():
    config = SwinIRConfig.preset("swin2sr-compressed-x4")
    ours, ref = pair(config, seed=3)
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("preset", ["swin2sr-classical-x2", "swin2sr-lightweight-x2", "swin2sr-compressed-x4",
                                    "swin2sr-real-x4", "swin2sr-gray-jpeg"])  # the five heads
def test_training_gradients_equal_official(preset):
    """Ours (fp32) against the official network in float64, the exact gradient: as close as the official network
    itself is in fp32, or within 5e-4 of each tensor's largest gradient (ours sums the cached continuous bias in
    another order: measured up to 1.2e-4 on the tiny cpb_mlp gradients; a wrong gradient is off by far more)."""
    config = small_v2(preset, drop_path_rate=0.0)
    ours, ref = pair(config, seed=5)
    exact = copy.deepcopy(ref).double()
    x = torch.rand(2, config.in_chans, 24, 32, generator=torch.Generator().manual_seed(2))
    target = torch.rand(2, config.in_chans, 24 * config.upscale, 32 * config.upscale)
    for model, dtype in ((ours, torch.float32), (ref, torch.float32), (exact, torch.float64)):
        model.train()  # MSE: L1's sign flips where the outputs differ by 1e-7 around the target
        torch.nn.functional.mse_loss(model(x.to(dtype)), target.to(dtype)).backward()
    ref_grads, exact_grads = dict(ref.named_parameters()), dict(exact.named_parameters())
    for name, p in ours.named_parameters():
        g, e, x64 = p.grad, ref_grads[name].grad, exact_grads[name].grad
        assert e is not None and g is not None, name
        ref_error = float((e.double() - x64).abs().max())
        assert float((g.double() - x64).abs().max()) <= max(2 * ref_error, 5e-4 * float(x64.abs().max())), name


def test_official_kwargs_and_dicts_without_derived_buffers():
    kwargs = dict(upscale=2, in_chans=3, img_size=16, window_size=8, img_range=1.0, depths=[2], embed_dim=16,
                  num_heads=[2], mlp_ratio=2, upsampler="pixelshuffledirect", resi_connection="1conv")
    model = Swin2SR(**kwargs)
    assert model.config.arch == "swin2sr" and model.config.embed_dim == 16
    state = {k: v for k, v in random_state(model).items() if not k.endswith(
        ("attn_mask", "relative_position_index", "relative_coords_table"))}
    fresh = Swin2SR(**kwargs)
    fresh.load_state_dict(state, strict=True)
    for k, v in derived_buffers(model.config).items():
        assert torch.equal(fresh.state_dict()[k], v), k
    with pytest.raises(ValueError, match="qk_scale must be None for swin2sr"):
        SwinIRConfig.preset("swin2sr-classical-x2", qk_scale=0.5)
    with pytest.raises(ValueError, match="pixelshuffle_aux"):
        SwinIRConfig.preset("classical-x4", upsampler="pixelshuffle_aux")


def test_bias_is_cached_until_the_mlp_changes():
    model = build_network(small_v2("swin2sr-classical-x2")).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a = model(x)
        block = model.layers[0].residual_group.blocks[1]
        assert block._mask_cache is not None
        cached = block._mask_cache[1][0]
        assert block.attention_masks(16, 16, 1, x)[0] is cached  # no bias work per forward
        block.attn.cpb_mlp[0].weight.add_(0.5)  # an optimizer step: the bias must follow
        b = model(x)
    assert not torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# Checkpoints: the official files, config inference, the zoo


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private weights cache; nothing is downloaded."""
    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


SWIN2SR_NAMES = ["swin2sr-classical-x2", "swin2sr-classical-x4", "swin2sr-lightweight-x2", "swin2sr-compressed-x4",
                 "swin2sr-real-x4-psnr", "swin2sr-gray-jpeg"]


@pytest.mark.parametrize("name", SWIN2SR_NAMES)
def test_each_official_file_loads_with_its_config_inferred(name, home, tmp_path):
    from swinir_app import load_model, zoo
    entry = zoo.ZOO[name]
    assert entry.url == f"https://github.com/mv-lab/swin2sr/releases/download/v0.0.1/{entry.filename}"
    torch.manual_seed(0)
    ref = official(entry.config).eval()  # random weights, the official key layout, attn_mask buffers included
    wrapped = {"params": ref.state_dict()} if "x2" in name else ref.state_dict()  # both layouts are published
    torch.save(wrapped, home / entry.filename)
    model = load_model(name)
    assert model.config == entry.config and isinstance(model, Swin2SR)
    # The same file under another name: everything comes from the tensors (img_size 48 from attn_mask).
    other = tmp_path / "renamed.pth"
    torch.save(wrapped, other)
    inferred = load_model(str(other)).config
    assert inferred == entry.config.replace(drop_path_rate=inferred.drop_path_rate)
    x = torch.rand(1, entry.config.in_chans, 20, 17)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-4 * entry.config.img_range


def test_compressed_sr_trained_at_48_is_not_a_mask_mismatch(tmp_path):
    """The failure users meet elsewhere: a patch-48 file read with a patch-64 config."""
    from swinir_app import load_model
    config = SwinIRConfig.preset("swin2sr-compressed-x4")
    torch.save(official(config).state_dict(), tmp_path / "Swin2SR_CompressedSR_X4_48.pth")
    assert load_model(str(tmp_path / "Swin2SR_CompressedSR_X4_48.pth")).config.img_size == 48


# ---------------------------------------------------------------------------------------------
# transformers


transformers = pytest.importorskip("transformers", reason="transformers (requirements-dev.txt) is the HF oracle")

SHARED_HEADS = ["swin2sr-classical-x2", "swin2sr-lightweight-x2", "swin2sr-real-x4"]


def hf_model(folder):
    return transformers.Swin2SRForImageSuperResolution.from_pretrained(str(folder)).eval()


@pytest.mark.parametrize("preset", SHARED_HEADS)
def test_a_transformers_folder_loads_and_an_exported_one_loads_into_transformers(preset, tmp_path):
    from swinir_app import load_model
    from swinir_app.convert import main as convert_main
    config = small_v2(preset)
    ours, _ = pair(config, seed=4)
    ws = config.window_size
    x = torch.rand(2, 3, 2 * ws, 3 * ws)  # transformers' model needs window multiples: it does not pad
    # Ours -> transformers: the CLI writes the folder, transformers loads it.
    src = tmp_path / "ours.pth"
    torch.save({"params": ours.state_dict()}, src)
    assert convert_main([str(src), str(tmp_path / "hf"), "--to", "transformers"]) == 0
    theirs = hf_model(tmp_path / "hf")
    with torch.no_grad():
        expected = ours(x)
        assert (theirs(pixel_values=x).reconstruction - expected).abs().max() <= 1e-4
    # transformers -> ours: its own save_pretrained folder, and a bare transformers-layout state dict.
    theirs.save_pretrained(str(tmp_path / "saved"))
    back = load_model(str(tmp_path / "saved"))
    assert back.config == config.replace(drop_path_rate=back.config.drop_path_rate)
    torch.save(theirs.state_dict(), tmp_path / "bare.bin")
    with pytest.warns(UserWarning, match=f"the window size is not stored in these Swin2SR weights; assuming {ws}"):
        bare = load_model(str(tmp_path / "bare.bin"))
    with torch.no_grad():
        assert (back(x) - expected).abs().max() <= 1e-4
        assert (bare(x) - expected).abs().max() <= 1e-4


@pytest.mark.parametrize("preset", ["swin2sr-compressed-x4", "swin2sr-gray-jpeg"])
def test_where_transformers_differs_ours_follows_the_official_code(preset, tmp_path):
    """transformers' aux head upsamples the un-normalised input, and its '' head adds the residual
    before de-normalising; ours is the official network (test_output_equals_official)."""
    from swinir_app import hf
    config = small_v2(preset)
    ours, ref = pair(config, seed=6)
    hf.write_folder(tmp_path / "hf", ours.state_dict(), config)
    theirs = hf_model(tmp_path / "hf")
    ws = config.window_size
    x = torch.rand(1, config.in_chans, 2 * ws, 3 * ws)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() <= 1e-4 * config.img_range
        assert (theirs(pixel_values=x).reconstruction - ref(x)).abs().max() > 1e-2  # README: the measured difference


def test_what_transformers_cannot_hold_is_refused_in_one_line(tmp_path):
    from swinir_app.checkpoint import ModelLoadError
    from swinir_app.convert import convert
    for overrides, message in [(dict(resi_connection="3conv"), "1conv conv_after_body only"),
                               (dict(ape=True), "ape")]:
        config = small_v2("swin2sr-classical-x2", **overrides)
        torch.save(build_network(config).state_dict(), tmp_path / "m.pth")
        with pytest.raises(ModelLoadError, match=message):
            convert(str(tmp_path / "m.pth"), tmp_path / "out", to="transformers")
    torch.save(build_network(small("classical-x2")).state_dict(), tmp_path / "v1.pth")
    with pytest.raises(ModelLoadError, match="only Swin2SR has a transformers layout"):
        convert(str(tmp_path / "v1.pth"), tmp_path / "out", to="transformers")


# ---------------------------------------------------------------------------------------------
# Every front end


def test_every_front_end_runs_swin2sr(tmp_path, capsys, monkeypatch):
    import numpy as np
    from PIL import Image

    from conftest import photo
    from frontends import check_front_ends, official_uint8
    from swinir_app.evaluate import evaluate
    from swinir_app.protocol import compute_metrics
    from swinir_app.protocol.degrade import bicubic_downscale, jpeg_input

    monkeypatch.setenv("SWINIR_APP_HOME", str(tmp_path / "home"))
    _, ref = pair(small_v2("swin2sr-compressed-x4"), seed=8)
    ckpt = tmp_path / "models" / "Swin2SR_CompressedSR_X4_48.pth"
    ckpt.parent.mkdir()
    torch.save(ref.state_dict(), ckpt)
    check_front_ends(tmp_path, ckpt, ref, scale=4)
    # evaluate, with the Swin2SR paper's compressed-SR protocol: bicubic, then JPEG quality 10.
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    gt = np.ascontiguousarray(photo("coffee")[:64, :80])
    Image.fromarray(gt).save(gt_dir / "coffee.png")
    result = evaluate(str(ckpt), gt_dir, device="cpu", progress=False)
    assert result.protocol.jpeg_quality == 10 and "JPEG quality 10" in result.protocol.lq_source
    cropped, bicubic = bicubic_downscale(gt, 4)
    expected = compute_metrics(official_uint8(ref, jpeg_input(bicubic, 10)), cropped, crop_border=4)
    assert result.images[0].metrics == pytest.approx(expected, abs=0.05)
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.slow
def test_swin2sr_trains_and_resumes_with_the_pipeline(tmp_path):
    """network_g: {type: Swin2SR}: options, EMA, validation, checkpoints and resume, as for SwinIR."""
    from swinir_app import load_model
    from swinir_app.train import load_options, train
    from helpers import torchrun_resume, tiny_options, write_pairs

    hr, lr = write_pairs(tmp_path, scale=2, size=(48, 64))
    net = {"type": "Swin2SR", "upscale": 2, "in_chans": 3, "img_size": 16, "window_size": 8, "img_range": 1.0,
           "depths": [2], "embed_dim": 16, "num_heads": [2], "mlp_ratio": 2, "upsampler": "pixelshuffle_aux",
           "resi_connection": "1conv"}
    opt = tiny_options(tmp_path, hr, lr, total_iter=4, network_g=net)
    result = train(load_options(opt))
    assert result.iter == 4 and all(torch.isfinite(torch.tensor(loss)) for _, loss in result.losses)
    exp = tmp_path / "experiments" / "tiny"
    model = load_model(str(exp))
    assert isinstance(model, Swin2SR) and model.config.upsampler == "pixelshuffle_aux"
    # Resumed under torchrun with 2 processes (gloo): DDP carries Swin2SR too.
    torchrun_resume(opt, 8)
    log = sorted(exp.glob("*.log"))[-1].read_text()
    assert "2 process(es) on cpu" in log and "[iter 8/8]" in log
    resumed = load_model(str(exp / "models" / "net_g_8.pth"))
    assert isinstance(resumed, Swin2SR)
    assert any(not torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), model.state_dict().values()))
