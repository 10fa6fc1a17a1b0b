"""Checkpoints: safe reading, unwrapping and config inference, against basicsr's SwinIR."""
import functools
import os
import subprocess
import sys

import pytest
import torch

from oracle import PaddedOracle, random_state, small
from swinir_app import SwinIR, load_model
from swinir_app.checkpoint import ModelLoadError, infer_config, load_checkpoint, save_safetensors
from swinir_app.convert import main as convert_main

# Every preset family the oracle can build (basicsr's copy has nearest+conv at x4 only).
FAMILIES = ["classical-x2", "classical-x3", "classical-x4", "classical-x8", "lightweight-x2",
            "lightweight-x3", "lightweight-x4", "real-x4", "real-x4-large", "gray-dn", "color-dn",
            "gray-jpeg", "color-jpeg"]


def shifted(state: dict, by: float) -> dict:
    """Other weights of the same network."""
    return {k: v + by if v.is_floating_point() else v for k, v in state.items()}


# How trainers and tools wrap and rename the official state dict.
WRAPPERS = {
    "bare": lambda sd: sd,  # KAIR, torch.save(model.state_dict())
    "params": lambda sd: {"params": sd},  # official releases, BasicSR
    "params_ema": lambda sd: {"params": shifted(sd, 1.0), "params_ema": sd},  # BasicSR with EMA: EMA wins
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 7},
    "model": lambda sd: {"model": sd, "optimizer": {"lr": 1e-4}},
    "module": lambda sd: {"params": {"module." + k: v for k, v in sd.items()}},  # DataParallel
    "compiled": lambda sd: {"module._orig_mod." + k: v for k, v in sd.items()},  # DDP + torch.compile
    "lightning": lambda sd: {"state_dict": {**{"net_g." + k: v for k, v in sd.items()}, "loss.w": torch.ones(1)}},
}


@functools.lru_cache(maxsize=None)
def official(preset: str, img_size=None):
    """basicsr's SwinIR for a shrunk preset, with random weights: (config, padded oracle, state dict)."""
    config = small(preset) if img_size is None else small(preset, img_size=img_size)
    oracle = PaddedOracle(config).eval()
    oracle.net.load_state_dict(random_state(oracle.net, seed=len(preset)), strict=True)
    return config, oracle, oracle.net.state_dict()


def assert_same_output(model, oracle, in_chans):
    x = torch.rand(1, in_chans, 19, 23, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x) - oracle(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("preset", FAMILIES)
def test_inferred_config_loads_strictly_and_matches_oracle(preset):
    config, oracle, state = official(preset)
    assert infer_config(state) == config
    model = SwinIR(infer_config(state)).eval()
    model.load_state_dict(state, strict=True)
    assert_same_output(model, oracle, config.in_chans)


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize("preset", FAMILIES)
def test_every_wrapper_gives_the_official_state_dict_and_config(tmp_path, preset, wrapper):
    config, _, state = official(preset)
    torch.save(WRAPPERS[wrapper](state), tmp_path / "net.pth")
    ckpt = load_checkpoint(tmp_path / "net.pth")
    assert ckpt.config_source == "inferred" and ckpt.config == config
    assert ckpt.state_dict.keys() == state.keys()  # so it loads strictly, as the bare dict above
    assert all(torch.equal(ckpt.state_dict[k], v) for k, v in state.items())


def test_load_model_returns_the_loaded_model_in_eval_mode(tmp_path):
    config, oracle, state = official("real-x4-large")
    torch.save({"params_ema": state}, tmp_path / "net.pth")
    model = load_model(str(tmp_path / "net.pth"), device="cpu")
    assert not model.training and model.config == config
    assert_same_output(model, oracle, config.in_chans)


@pytest.mark.parametrize("preset,img_size", [("classical-x2", 48), ("lightweight-x3", 32), ("gray-jpeg", 28),
                                             ("color-dn", 96)])
def test_img_size_comes_from_attn_mask_else_the_family_default(preset, img_size):
    config, _, state = official(preset, img_size)
    assert infer_config(state).img_size == img_size
    bare = {k: v for k, v in state.items() if not k.endswith("attn_mask")}
    official_patch = 128 if preset.endswith("-dn") else 126 if preset.endswith("-jpeg") else 64
    assert infer_config(bare) == config.replace(img_size=official_patch)


def test_img_range_is_255_for_window7_restoration_and_can_be_overridden(tmp_path):
    config, oracle, state = official("color-jpeg")
    assert config.img_range == 255.0 and infer_config(state).img_range == 255.0
    assert infer_config(official("color-dn")[2]).img_range == 1.0
    assert infer_config(state, img_range=1.0).img_range == 1.0
    torch.save({"params": state}, tmp_path / "jpeg.pth")
    assert load_model(tmp_path / "jpeg.pth", img_range=1.0).config.img_range == 1.0


@pytest.mark.parametrize("changes", [dict(ape=True), dict(patch_norm=False), dict(qkv_bias=False),
                                     dict(num_feat=32), dict(mlp_ratio=4.0), dict(num_heads=(2, 4)),
                                     dict(depths=(1, 3), num_heads=(4, 4))])
def test_non_default_hyperparameters_are_inferred(changes):
    config = small("classical-x3", img_size=32).replace(**changes)
    assert infer_config(SwinIR(config).state_dict()) == config


@pytest.mark.parametrize("preset,scale", [("real-x2", 2), ("real-x4", 8), ("classical-x2", 8)])
def test_scales_the_oracle_cannot_build_are_inferred(preset, scale):
    config = small(preset, upscale=scale)
    assert infer_config(SwinIR(config).state_dict()) == config


def test_stored_config_is_used_instead_of_inference(tmp_path):
    config, oracle, state = official("classical-x2")
    stored = config.replace(img_range=2.0, drop_path_rate=0.0)  # nothing in the tensors says so
    torch.save({"params": state, "config": {**stored.to_dict(), "type": "SwinIR"}}, tmp_path / "net_g.pth")
    ckpt = load_checkpoint(tmp_path / "net_g.pth")
    assert ckpt.config_source == "embedded" and ckpt.config == stored


def test_safetensors_round_trip_keeps_config_and_metadata(tmp_path):
    config, oracle, state = official("lightweight-x2")
    stored = config.replace(drop_path_rate=0.0)
    path = save_safetensors(tmp_path / "m.safetensors", state, stored, {"name": "mine"})
    ckpt = load_checkpoint(path)
    assert ckpt.config_source == "metadata" and ckpt.config == stored
    assert ckpt.metadata["name"] == "mine" and ckpt.metadata["task"] == "sr"
    assert_same_output(load_model(path), oracle, 3)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_plain_safetensors_without_config_is_inferred(tmp_path):
    from safetensors.torch import save_file

    config, _, state = official("gray-dn")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "plain.safetensors")
    ckpt = load_checkpoint(tmp_path / "plain.safetensors")
    assert ckpt.config_source == "inferred" and ckpt.config == config


class CreatesFile:
    """A pickle that creates a file when it is loaded, by calling ``call(*args)``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("how", ["open", "os.system"])
def test_unsafe_pickle_is_refused_and_never_executed(tmp_path, how):
    marker = tmp_path / "pwned"
    payload = CreatesFile(open, str(marker), "w") if how == "open" else CreatesFile(os.system, f"touch {marker}")
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "hook": payload}, tmp_path / "evil.pth")
    with pytest.raises(ModelLoadError, match=r"refusing to load .*evil\.pth.*arbitrary code") as e:
        load_model(tmp_path / "evil.pth")
    assert "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("name,content,message", [
    ("junk.pth", b"this is not a checkpoint", "not a valid PyTorch checkpoint"),
    ("junk.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage", "not a valid safetensors file"),
    ("missing.pth", None, "no such file or folder"),
])
def test_unreadable_files_give_one_line_errors(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as e:
        load_model(tmp_path / name)
    assert "\n" not in str(e.value)


def test_truncated_checkpoint_and_foreign_state_dicts_are_rejected(tmp_path):
    _, _, state = official("classical-x2")
    torch.save({"params": state}, tmp_path / "full.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "full.pth").read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="not a valid PyTorch checkpoint"):
        load_model(tmp_path / "cut.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError, match="is not a model this app knows: no SwinIR/Swin2SR/HAT/DAT keys"):
        load_model(tmp_path / "other.pth")
    del state["layers.1.conv.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ModelLoadError, match="does not fit its inferred config: missing layers.1.conv.weight"):
        load_model(tmp_path / "partial.pth")


def test_experiment_folder_loads_the_latest_net_g_with_ema(tmp_path):
    _, _, state = official("lightweight-x2")
    models = tmp_path / "experiments" / "run" / "models"
    models.mkdir(parents=True)
    for it in (900, 1000):  # numeric order, not file-name order
        torch.save({"params": shifted(state, it), "params_ema": shifted(state, it + 0.5)}, models / f"net_g_{it}.pth")
    first = "conv_first.weight"

    def loaded(folder):
        return load_model(folder).state_dict()[first]

    assert torch.equal(loaded(tmp_path / "experiments" / "run"), state[first] + 1000.5)
    assert torch.equal(loaded(models), state[first] + 1000.5)
    torch.save({"params": shifted(state, 3.0)}, models / "net_g_latest.pth")
    assert torch.equal(loaded(models.parent), state[first] + 3.0)

    kair = tmp_path / "kair" / "models"
    kair.mkdir(parents=True)
    for name, by in (("800_E.pth", 1.0), ("1200_G.pth", 2.0), ("1200_E.pth", 4.0)):
        torch.save(shifted(state, by), kair / name)
    assert torch.equal(loaded(kair.parent), state[first] + 4.0)
    with pytest.raises(ModelLoadError, match="folder without weights"):
        load_model(tmp_path / "experiments")


def test_convert_writes_safetensors_that_load_without_inference(tmp_path, capsys):
    config, oracle, state = official("gray-jpeg")
    bare = {k: v for k, v in state.items() if not k.endswith(("attn_mask", "relative_position_index"))}
    torch.save({"params": bare}, tmp_path / "006_CAR_custom.pth")
    out = tmp_path / "car.safetensors"
    assert convert_main([str(tmp_path / "006_CAR_custom.pth"), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.config_source == "metadata" and ckpt.config == config
    assert ckpt.metadata["name"] == "006_CAR_custom" and ckpt.metadata["task"] == "jpeg"
    assert set(ckpt.state_dict) == set(state)  # derived buffers restored: the official code loads it
    assert_same_output(load_model(out), oracle, 1)
    described = tmp_path / "described.safetensors"
    assert convert_main([str(out), str(described), "--description", "scanned documents"]) == 0
    assert load_checkpoint(described).metadata["description"] == "scanned documents"
    capsys.readouterr()

    with pytest.raises(SystemExit) as e:
        convert_main([str(tmp_path / "006_CAR_custom.pth"), str(tmp_path / "car.pth")])
    assert e.value.code == 2 and "must be a .safetensors file" in capsys.readouterr().err
    with pytest.raises(ModelLoadError):
        convert_main([str(tmp_path / "nope.pth"), str(out), "--debug"])


def test_convert_cli_bad_spec_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "swinir_app.convert", "no-such-model",
                             str(tmp_path / "o.safetensors")],
                            capture_output=True, text=True, env={**os.environ, "SWINIR_APP_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'no-such-model'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# ---- hostile files: every loader path refuses them in one line, quickly, without allocating ----------


def _hwm_reset() -> int:
    """Reset the process's peak RSS (Linux) and return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _config_only_safetensors(path, **config):
    """A few hundred bytes: one tiny tensor and a config in the header, as save_safetensors writes it."""
    import json

    from safetensors.torch import save_file
    cfg = {**SwinIR(small("lightweight-x2")).config.to_dict(), **config}
    save_file({"conv_first.weight": torch.zeros(1)}, str(path), metadata={"swinir_config": json.dumps(cfg)})
    return path


@pytest.mark.timeout(60)  # without the guards the loader would recurse or loop, not fail
def test_self_referencing_dict_is_refused_at_once(tmp_path):
    d = {}
    d["params"] = d
    torch.save(d, tmp_path / "loop.pth")
    with pytest.raises(ModelLoadError, match="nest into themselves"):
        load_model(tmp_path / "loop.pth")
    deep = {"x": 1}
    for _ in range(20):
        deep = {"params": deep}
    torch.save(deep, tmp_path / "deep.pth")
    with pytest.raises(ModelLoadError, match="over 8 levels deep"):
        load_model(tmp_path / "deep.pth")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak RSS needs Linux /proc")
@pytest.mark.parametrize("config, message", [
    (dict(embed_dim=4096, num_heads=[8, 8]), "embed_dim must be a whole number from 1 to 1024"),
    (dict(depths=[100000], num_heads=[4]), "depths\\[0\\] must be a whole number from 1 to 64"),
    (dict(embed_dim=512, depths=[6] * 6, num_heads=[8] * 6), "missing"),  # in bounds: 75M parameters, no tensors
])
def test_a_small_file_claiming_a_huge_network_allocates_nothing(tmp_path, config, message):
    import time

    path = _config_only_safetensors(tmp_path / "bomb.safetensors", **config)
    assert path.stat().st_size < 2000
    base, start = _hwm_reset(), time.perf_counter()
    with pytest.raises(ModelLoadError, match=message) as e:
        load_model(path)
    assert _status("VmHWM") - base < 50 * 2 ** 20 and time.perf_counter() - start < 5
    assert "\n" not in str(e.value)


def test_compressed_tensors_are_refused_before_they_inflate(tmp_path):
    import zipfile

    torch.save({"params": {"conv_first.weight": torch.zeros(64, 1024, 1024)}}, tmp_path / "plain.pth")  # 256 MB
    with zipfile.ZipFile(tmp_path / "plain.pth") as src, \
            zipfile.ZipFile(tmp_path / "zipped.pth", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    (tmp_path / "plain.pth").unlink()
    assert (tmp_path / "zipped.pth").stat().st_size < 2 * 2 ** 20
    with pytest.raises(ModelLoadError, match="is compressed .* torch.save never compresses"):
        load_model(tmp_path / "zipped.pth")


def test_non_finite_weights_are_refused(tmp_path):
    _, _, state = official("lightweight-x2")
    state = dict(state)
    state["layers.0.residual_group.blocks.0.mlp.fc1.weight"] = state[
        "layers.0.residual_group.blocks.0.mlp.fc1.weight"].clone().index_fill_(0, torch.tensor([3]), float("nan"))
    torch.save({"params": state}, tmp_path / "nan.pth")
    with pytest.raises(ModelLoadError, match="fc1.weight holds NaN or Inf"):
        load_model(tmp_path / "nan.pth")


@pytest.mark.parametrize("config, message", [
    (dict(window_size=0), "window_size must be a whole number from 1 to 32, got 0"),
    (dict(mlp_ratio=float("nan")), "mlp_ratio must be a number from 0.01 to 16, got nan"),
    (dict(img_range=-1), "img_range must be a number"),
    (dict(img_size=100, window_size=7), "img_size 100 must be a multiple of window_size 7"),
    (dict(depths=[60, 60, 60, 60, 60], num_heads=[6] * 5), "hold 300 blocks, over the limit of 256"),
])
def test_bad_config_values_are_one_line_in_every_front_end(tmp_path, capsys, config, message):
    path = _config_only_safetensors(tmp_path / "bad.safetensors", **config)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)
    with pytest.raises(SystemExit) as e:
        convert_main([str(path), str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message.split(",")[0] in err and "Traceback" not in err
