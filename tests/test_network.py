"""The network against basicsr's copy of the official SwinIR: keys, shapes and outputs."""
import pytest
import torch

from oracle import PaddedOracle, random_state, small
from swinir_app import PRESETS, SwinIR, SwinIRConfig
from swinir_app import network
from swinir_app.network import hardware, layers
from conftest import native_bf16

# Every preset family the oracle can build (basicsr's copy has nearest+conv at x4 only).
FAMILIES = ["classical-x2", "classical-x3", "classical-x4", "classical-x8", "lightweight-x2",
            "lightweight-x3", "lightweight-x4", "real-x4", "real-x4-large", "gray-dn", "color-dn",
            "gray-jpeg", "color-jpeg"]


def pair(config: SwinIRConfig, seed: int = 0):
    oracle = PaddedOracle(config).eval()
    state = random_state(oracle.net, seed)
    oracle.net.load_state_dict(state, strict=True)
    ours = SwinIR(config).eval()
    ours.load_state_dict(state, strict=True)
    return ours, oracle


# SwinIR's presets; Swin2SR's and HAT's are in tests/test_swin2sr.py and tests/test_hat.py.
@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if PRESETS[p].get("arch", "swinir") == "swinir"))
def test_state_dict_keys_and_shapes_match_official(preset):
    config = SwinIRConfig.preset(preset)
    ours = {k: tuple(v.shape) for k, v in SwinIR(config).state_dict().items()}
    if preset == "real-x2":  # not buildable in basicsr's copy; the official adds no conv_up2 at x2
        ref = {k: s for k, s in {k: tuple(v.shape) for k, v in
               SwinIR(SwinIRConfig.preset("real-x4")).state_dict().items()}.items() if "conv_up2" not in k}
    else:
        ref = {k: tuple(v.shape) for k, v in PaddedOracle(config).net.state_dict().items()}
    assert ours == ref


@pytest.mark.parametrize("preset", FAMILIES)
@pytest.mark.parametrize("size", [(16, 16), (29, 43), (64, 72)])
def test_output_equals_official(preset, size):
    config = small(preset)
    ours, oracle = pair(config, seed=hash(preset) % 1000)
    g = torch.Generator().manual_seed(1)
    for batch in (1, 2):
        x = torch.rand(batch, config.in_chans, *size, generator=g)
        with torch.no_grad():
            a, b = ours(x), oracle(x)
        assert a.shape == (batch, config.in_chans, size[0] * config.upscale, size[1] * config.upscale)
        assert (a - b).abs().max().item() <= 1e-4


def test_full_size_classical_x4_equals_official():
    ours, oracle = pair(SwinIRConfig.preset("classical-x4"), seed=3)
    x = torch.rand(1, 3, 20, 27, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(x) - oracle(x)).abs().max().item() <= 1e-4


def test_official_kwargs_and_config():
    kwargs = dict(upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1.0, depths=[6, 6],
                  embed_dim=60, num_heads=[6, 6], mlp_ratio=2, upsampler="pixelshuffledirect",
                  resi_connection="1conv")
    model = SwinIR(**kwargs)
    assert model.config == SwinIRConfig(**kwargs)
    assert model.config.depths == (6, 6) and model.config.out_chans == 3
    with pytest.raises(TypeError, match="embed_dimm"):
        SwinIR(embed_dimm=60)
    with pytest.raises(ValueError, match="num_heads"):
        SwinIR(embed_dim=50, num_heads=[6])
    assert SwinIRConfig.from_dict(model.config.to_dict()) == model.config


def test_dicts_without_derived_buffers_load_strictly():
    config = small("classical-x2")
    ours, oracle = pair(config)
    state = {k: v for k, v in oracle.net.state_dict().items()
             if not k.endswith(("attn_mask", "relative_position_index"))}
    fresh = SwinIR(config).eval()
    fresh.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(fresh(x), ours(x))


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (1, 9), (8, 1), (7, 7)])
@pytest.mark.parametrize("preset", ["classical-x3", "color-jpeg"])
def test_tiny_inputs(preset, size):
    config = small(preset)
    model = SwinIR(config).eval()
    with torch.no_grad():
        y = model(torch.rand(2, config.in_chans, *size))
    assert y.shape == (2, config.in_chans, size[0] * config.upscale, size[1] * config.upscale)
    assert torch.isfinite(y).all()


def test_pad_to_multiple_matches_reflect_and_handles_tiny():
    x = torch.arange(2 * 3 * 29 * 43, dtype=torch.float32).view(2, 3, 29, 43)
    ref = torch.nn.functional.pad(x, (0, 5, 0, 3), "reflect")
    assert torch.equal(layers.pad_to_multiple(x, 8), ref)
    assert layers.pad_to_multiple(torch.rand(1, 1, 1, 1), 8).shape == (1, 1, 8, 8)
    assert layers.pad_to_multiple(torch.rand(1, 1, 3, 5), 8).shape == (1, 1, 8, 8)


def test_masks_are_cached_per_size_not_rebuilt():
    model = SwinIR(small("classical-x2")).eval()
    block = model.layers[0].residual_group.blocks[1]
    assert block.shift_size == 4
    layers._shift_mask.cache_clear()
    layers.masked_windows.cache_clear()
    with torch.no_grad():
        model(torch.rand(1, 3, 24, 24))
        first = block._mask_cache[1]
        model(torch.rand(1, 3, 24, 24))
        assert block._mask_cache[1] is first  # reused across forwards
        assert layers._shift_mask.cache_info().misses == 1  # one region mask for all shifted blocks
        bias, (idx, masks) = first
        # 3x3 windows: only the last row and column (5 windows) carry a shift mask.
        assert bias.shape == (1, 6, 64, 64) and idx.tolist() == [2, 5, 6, 7, 8] and masks.shape == (5, 6, 64, 64)
        region = layers.shift_mask(24, 24, 8, 4, torch.device("cpu"))
        assert region[[0, 1, 3, 4]].abs().sum() == 0 and (region[idx] == -100).flatten(1).any(1).all()
        model(torch.rand(2, 3, 16, 32))
        bias, (idx, masks) = block._mask_cache[1]
        assert idx.tolist() == [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]  # batch 2 of 2x4 windows
    # A weight update invalidates the merged bias.
    with torch.no_grad():
        block.attn.relative_position_bias_table.add_(1.0)
        model(torch.rand(2, 3, 16, 32))
        assert torch.allclose(block._mask_cache[1][0], block.attn.relative_position_bias())


def test_training_gradients_and_checkpointing_agree():
    config = small("lightweight-x2", drop_path_rate=0.0)
    a = SwinIR(config)
    b = SwinIR(config.replace(use_checkpoint=True))
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 16, 16)
    for m in (a, b):
        m.train()
        m(x).square().mean().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert pa.grad is not None, name
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name
    assert a.layers[0].residual_group.blocks[1].attn.relative_position_bias_table.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", ["lightweight-x2", "color-dn"])
def test_training_gradients_equal_official(preset):
    # Training takes its own attention path (explicit, bias and shift mask merged): every
    # parameter's gradient, the bias tables' included, must match the official network's.
    ours, oracle = pair(small(preset, drop_path_rate=0.0), seed=3)
    x = torch.rand(2, 3, 24, 32)  # 3x4 windows: shifted blocks have masked windows
    target = torch.rand_like(oracle(x))
    for m in (ours, oracle):
        m.train()
        (m(x) - target).abs().mean().backward()
    ref = dict(oracle.net.named_parameters())
    for name, p in ours.named_parameters():
        r = ref[name].grad
        assert torch.allclose(p.grad, r, rtol=1e-4, atol=1e-6 * r.abs().max().item()), name
    table = ours.layers[0].residual_group.blocks[1].attn.relative_position_bias_table
    assert table.grad.abs().sum() > 0


def test_bf16_training_step_close_to_fp32():
    model = SwinIR(small("lightweight-x2", drop_path_rate=0.0)).train()
    x = torch.rand(2, 3, 24, 32)
    grads = []
    for precision in (None, torch.bfloat16):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision is not None):
            y = model(x)
        y.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cos > 0.99


def test_drop_path_is_stochastic_in_training_only():
    model = SwinIR(small("color-dn", drop_path_rate=0.5))
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        y1 = model(x)
        torch.manual_seed(1)
        y2 = model(x)
        model.eval()
        assert torch.equal(model(x), model(x))
    assert not torch.allclose(y1, y2)


def test_training_after_inference_mode_at_the_same_size():
    # Validation under inference_mode must not leave cached tensors that break the next training step.
    model = SwinIR(small("classical-x2"))
    x = torch.rand(1, 3, 24, 24)
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).mean().backward()
    assert model.layers[0].residual_group.blocks[1].attn.relative_position_bias_table.grad is not None


def wide(preset: str):
    """A preset at 2 groups of 2 blocks of 6 heads and 72 channels (so the Winograd convs run), and an input
    that is not a window multiple."""
    ws = SwinIRConfig.preset(preset).window_size
    config = SwinIRConfig.preset(preset).replace(depths=(2, 2), num_heads=(6, 6), embed_dim=72, img_size=2 * ws)
    return config, torch.rand(1, 3, 2 * ws + 3, 2 * ws - 5)


@pytest.mark.parametrize("preset", ["classical-x2", "swin2sr-classical-x2", "hat-x2"])
def test_networks_made_or_cast_under_inference_mode(preset):
    # Users wrap everything in inference_mode. The fast paths cache packed linears, Winograd filters and
    # attention biases keyed on version counters, which inference tensors lack: a network built there must
    # still make normal tensors, one cast there (inference tensors) must run uncached, and in-place weight
    # updates made under inference_mode must reach the output in both.
    import copy
    torch.manual_seed(0)
    config, x = wide(preset)
    ref = network.build_network(config).eval()
    ref.load_state_dict(random_state(ref, 1))
    with torch.inference_mode():
        built = network.build_network(config).eval()
        built.load_state_dict(ref.state_dict())
        cast = copy.deepcopy(ref).double().float()
        assert not built.conv_first.weight.is_inference() and cast.conv_first.weight.is_inference()
        for step in range(2):
            want = ref(x)
            for model in (built, cast):
                torch.testing.assert_close(model(x), want, rtol=0, atol=1e-6)
                torch.testing.assert_close(model(x), want, rtol=0, atol=1e-6)  # from the caches, if any
            for model in (ref, built, cast):  # every weight, bias table and cpb MLP changes in place
                for p in model.parameters():
                    p.mul_(1.5).add_(0.01)


@pytest.mark.parametrize("preset", ["classical-x2", "swin2sr-compressed-x4", "hat-x2"])
def test_networks_copied_saved_or_cast_after_a_forward(preset):
    # What users do with a network: deepcopy or torch.save it after using it (the packed oneDNN weights of the
    # fast path cannot be copied), and cast it wholly to half precision as with the official code.
    import copy
    import io
    torch.manual_seed(0)
    config, x = wide(preset)
    model = network.build_network(config).eval()
    with torch.no_grad():
        want = model(x)
        assert torch.equal(copy.deepcopy(model)(x), want)
        torch.save(model, io.BytesIO())  # the whole module, pickled
        for dtype, tolerance in ((torch.float16, 5e-3), (torch.bfloat16, 3e-2)):
            got = copy.deepcopy(model).to(dtype)(x.to(dtype))
            assert got.dtype == dtype and (got.float() - want).abs().max() < tolerance


def test_bf16_inference_close_to_fp32():
    # Any CPU: without native bf16 the plain (unfused) path runs, emulated but correct.
    config = small("classical-x2")
    model, _ = pair(config, seed=5)
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x)
    assert y.dtype == torch.float32
    assert (y - ref).abs().max().item() < 0.05 and (y - ref).abs().mean().item() < 5e-3


@native_bf16
def test_fused_bf16_linears_equal_the_plain_path():
    """The oneDNN bf16 linears run only with native bf16; forced off, the plain path is as accurate."""
    model, _ = pair(small("classical-x2"), seed=5)
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = model(x)
            with hardware.override(bf16=False, amx=False):
                plain = model(x)
    err_fused, err_plain = (fused - ref).abs().mean().item(), (plain - ref).abs().mean().item()
    assert 0 < err_fused < 5e-3 and 0 < err_plain < 5e-3 and 0.5 < err_plain / err_fused < 2


def test_fused_fp32_linears_equal_the_plain_path():
    model, _ = pair(small("classical-x2"), seed=5)
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        fused = model(x)
        with hardware.override(fused_linear=False):
            plain = model(x)
    assert torch.allclose(fused, plain, atol=1e-5)


@pytest.mark.parametrize("preset", ["classical-x2", "swin2sr-classical-x2"])
def test_window_chunks_equal_the_whole_map(preset, monkeypatch):
    """CPU inference runs each block over chunks of windows. Chunks of 3 windows on 2 images of 5x7
    windows straddle rows, images and the shifted blocks' masked windows (last row and column):
    the output and the per-chunk masks must be those of one pass over all windows."""
    config = small(preset)
    model = network.build_network(config).eval()
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        monkeypatch.setattr(network.swinir, "CHUNK_TOKENS", 10 ** 9)
        whole = model(x)
        monkeypatch.setattr(network.swinir, "CHUNK_TOKENS", 3 * config.window_size ** 2)
        chunked = model(x)
        monkeypatch.setattr(network.swinir, "CHUNK_TOKENS", 32 * config.window_size ** 2)
        default = model(x)
    block = model.layers[0].residual_group.blocks[1]
    (masked, _, chunks) = block._chunk_cache
    assert len(chunks) == 3 and sum(len(m[0]) for _, m in chunks if m is not None) == len(masked[0]) == 2 * 11
    assert (chunked - whole).abs().max().item() <= 1e-5 and (default - whole).abs().max().item() <= 1e-5


@pytest.mark.parametrize("bias", [True, False])
def test_winograd_conv_equals_direct_conv(bias, monkeypatch):
    """F(4x4, 3x3) against float64 direct convolution, on sizes that are not tile multiples, batch 2, with
    tile-row steps that split the map. Its error stays within 4x that of fp32 direct convolution (1.5-2x
    measured; the textbook points 0, +-1, +-2 give 7x)."""
    from swinir_app.network import winograd

    monkeypatch.setattr(winograd, "TILE_ROWS_TOKENS", 1000)  # 2 of the 8 tile rows per step
    conv = torch.nn.Conv2d(128, 136, 3, 1, 1, bias=bias)
    x = torch.randn(2, 128, 29, 43, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = torch.nn.functional.conv2d(x.double(), conv.weight.double(),
                                           conv.bias.double() if bias else None, padding=1)
        direct = conv(x)
        y = winograd.conv3x3(x, conv)
        assert winograd.applies(conv, x) and y.shape == direct.shape
        assert (y - exact).abs().max().item() <= 4 * max((direct - exact).abs().max().item(), 1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not winograd.applies(conv, x)
    assert not winograd.applies(conv, x)  # gradients on: training runs the direct conv
    assert not winograd.applies(torch.nn.Conv2d(64, 136, 3, 1, 1), x[:, :64])
    assert not winograd.applies(torch.nn.Conv2d(128, 136, 3, 2, 1), x)


@pytest.mark.parametrize("preset", ["classical-x2", "color-jpeg", "lightweight-x4"])
def test_derived_buffers_equal_the_models(preset):
    config = small(preset)
    state = SwinIR(config).state_dict()
    derived = network.derived_buffers(config)
    assert derived and all(torch.equal(state[k], v) for k, v in derived.items())
    assert set(derived) == {k for k in state if k.endswith(("attn_mask", "relative_position_index"))}


def test_traced_index_and_mask_helpers_equal_the_cached_ones():
    """While tracing (ONNX export) padding, shift masks and token orders are computed in the graph from the
    size; they must be the very values of the cached helpers, down to 1-pixel sides."""
    cpu = torch.device("cpu")
    x = torch.rand(1, 2, 37, 41)
    for h, w in [(1, 1), (1, 5), (2, 3), (3, 9), (7, 8), (9, 17), (37, 41)]:
        for m in (7, 8):
            assert torch.equal(layers._mirror_pad_traced(x[..., :h, :w], m), layers.pad_to_multiple(x[..., :h, :w], m))
    for (h, w), ws in [((16, 24), 8), ((14, 21), 7), ((8, 8), 8)]:
        assert torch.equal(layers._shift_mask_traced(h, w, ws, ws // 2, cpu),
                           layers._shift_mask(h, w, ws, ws // 2, cpu))

        def official_order(shift):  # raster ids in the official roll + window_partition order
            if shift is None:
                return torch.arange(h * w)
            ids = torch.roll(torch.arange(h * w).view(1, h, w, 1), (-shift, -shift), (1, 2))
            return layers.window_partition(ids, ws).flatten()
        for src, dst in [(None, 0), (None, ws // 2), (0, ws // 2), (ws // 2, 0), (ws // 2, None)]:
            index = layers._reorder_index(h, w, ws, src, dst, cpu)
            assert torch.equal(official_order(src)[index], official_order(dst))
