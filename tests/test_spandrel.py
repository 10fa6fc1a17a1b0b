"""Architectures other than the native ones, through spandrel: a random-weight file of each, built with
spandrel's own class in its official key layout, loads through ``load_model`` and runs in the engine (whole
and tiled) and the batch CLI with spandrel's own output; unknown and hostile files are refused in one line."""
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photo
from swinir_app import Restorer, load_model
from swinir_app.checkpoint import ModelLoadError
from swinir_app.network.capabilities import Capabilities
from swinir_app.spandrel_loader import SpandrelModel, pad
from swinir_app.zoo import resolve

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures import (ATD, DRCT, ESRGAN, PLKSR, RGT, SAFMN, SPAN, Compact, DnCNN, MoSR,  # noqa: E402
                                    OmniSR)

H, W = 29, 37  # a multiple of nothing: every model pads


def _esrgan_new_layout(old: dict, scale: int) -> dict:
    """The RRDBNet state dict of BasicSR / Real-ESRGAN (conv_first, body.N.rdbM, conv_body, conv_upK, conv_hr,
    conv_last) from the old ESRGAN layout (model.N.sub...) of the same weights."""
    n_blocks = 1 + max(int(m.group(1)) for k in old if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k)))
    ups = int(np.log2(scale))
    names = {0: "conv_first", 3 * ups + 2: "conv_hr", 3 * ups + 4: "conv_last",
             **{3 * (i + 1): f"conv_up{i + 1}" for i in range(ups)}}
    new = {}
    for k, v in old.items():
        if m := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", k):
            new[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = v
        elif m := re.fullmatch(rf"model\.1\.sub\.{n_blocks}\.(weight|bias)", k):
            new[f"conv_body.{m.group(1)}"] = v
        elif m := re.fullmatch(r"model\.(\d+)\.(weight|bias)", k):
            new[f"{names[int(m.group(1))]}.{m.group(2)}"] = v
        else:
            raise AssertionError(k)
    return new


def _esrgan(new_layout: bool):
    net = ESRGAN.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=2, scale=4)
    state = _random(net)
    return _esrgan_new_layout(state, 4) if new_layout else state


# name -> (state dict of random weights, spandrel's architecture name, scale, size multiple, tiling)
CASES = {
    "ESRGAN-old": (lambda: _esrgan(False), "ESRGAN", 4, 1, "supported"),
    "ESRGAN-new": (lambda: _esrgan(True), "ESRGAN", 4, 1, "supported"),
    "Compact": (lambda: _random(Compact.Compact(num_feat=8, num_conv=3, upscale=2)), "RealESRGAN Compact", 2, 1,
                "supported"),
    "SPAN": (lambda: _random(SPAN.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)), "SPAN", 2, 1,
             "supported"),
    "RealPLKSR": (lambda: _random(PLKSR.RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7)),
                  "RealPLKSR", 2, 1, "supported"),
    "RealPLKSR-DySample": (lambda: _random(PLKSR.RealPLKSR(dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7,
                                                           dysample=True)), "RealPLKSR", 2, 1, "supported"),
    "OmniSR": (lambda: _random(OmniSR.OmniSR(num_feat=16, block_num=1, res_num=1, up_scale=2, window_size=8)),
               "OmniSR", 2, 1, "supported"),
    "SAFMN": (lambda: _random(SAFMN.SAFMN(dim=8, n_blocks=2, upscaling_factor=2)), "SAFMN", 2, 8, "supported"),
    "RGT": (lambda: _random(RGT.RGT(embed_dim=12, depth=[2], num_heads=[2], split_size=[4, 8], upscale=2)),
            "RGT", 2, 1, "supported"),
    "ATD": (lambda: _random(ATD.ATD(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, category_size=32,
                                    num_tokens=16, upscale=2, upsampler="pixelshuffledirect")), "ATD", 2, 1,
            "supported"),
    "DRCT": (lambda: _random(DRCT.DRCT(embed_dim=12, depths=(2,), num_heads=(2,), window_size=4, upscale=2,
                                       upsampler="pixelshuffle", gc=8)), "DRCT", 2, 16, "supported"),
    "MoSR": (lambda: _random(MoSR.MoSR(upscale=2, n_block=2, dim=16)), "MoSR", 2, 1, "supported"),
    "DnCNN": (lambda: _random(DnCNN.DnCNN(in_nc=3, out_nc=3, nc=8, nb=4)), "DnCNN", 1, 1, "supported"),
}


def _random(net: torch.nn.Module, seed: int = 0) -> dict:
    """The net's state dict with every float tensor made random (no zero-initialised layer left to hide a
    difference), small enough that outputs stay near [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if v.is_floating_point() and v.numel() > 1 and "relative_position" not in k and "index" not in k:
            v = v * (1 + 0.2 * torch.randn(v.shape, generator=g)) + 0.02 * torch.randn(v.shape, generator=g)
        state[k] = v.contiguous()
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spandrel")
    out = {}
    for name, (make, *_) in CASES.items():
        torch.manual_seed(0)
        out[name] = folder / f"{name}.pth"
        torch.save(make(), out[name])
    return out


def _reference(path) -> "spandrel.ImageModelDescriptor":
    """Spandrel loading the file its own way (a trusted test file), in eval mode."""
    return spandrel.ModelLoader().load_from_file(path).eval()


class _SpandrelCall(torch.nn.Module):
    """Spandrel's own call of a descriptor (its padding, call function and crop), unclamped, declaring what the
    tested model declares: the engine tiles both alike."""

    def __init__(self, descriptor, capabilities: Capabilities):
        super().__init__()
        self.descriptor, self._caps = descriptor, capabilities
        self.net = descriptor.model

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def forward(self, x):
        from spandrel.__helpers.size_req import pad_tensor
        h, w = x.shape[-2:]
        _, padded = pad_tensor(x, self.descriptor.size_requirements)
        s = self.descriptor.scale
        return self.descriptor._call_fn(self.net, padded)[..., :h * s, :w * s]


@pytest.mark.parametrize("name", list(CASES))
def test_each_architecture_loads_and_matches_spandrel_whole_and_tiled(files, name):
    _, arch, scale, multiple, tiling = CASES[name]
    model = load_model(files[name])
    assert isinstance(model, SpandrelModel) and model.config is None
    caps = model.capabilities
    assert (caps.arch, caps.scale, caps.in_chans, caps.out_chans) == (arch, scale, 3, 3)
    assert caps.task == ("sr" if scale > 1 else "denoise") and caps.size_multiple == multiple
    assert caps.tiling == tiling and caps.precisions[0] == "fp32" and caps.bytes_per_pixel > 0
    assert model.info["architecture"] == arch and model.info["parameters"] == sum(
        p.numel() for p in model.parameters())
    for stage in caps.stages:
        model.get_submodule(stage)

    ref = _reference(files[name])
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    expected = ref(x.clone())  # spandrel's output, padded by spandrel, clamped to [0, 1]
    assert expected.shape == (1, 3, H * scale, W * scale) and expected.std() > 1e-3
    whole = Restorer(model, precision="fp32", device="cpu").restore_tensor(x)
    assert whole.shape == expected.shape
    diff_whole = (whole.clamp(0, 1) - expected).abs().max().item()
    assert diff_whole <= 1e-5, diff_whole

    # Tiled: each tile is spandrel's own call on that tile, blended by the engine: the same tiles and weights
    # for spandrel's call give the same image, so only float noise may differ (the blend is linear).
    tiled = Restorer(model, tile=16, tile_overlap=4, precision="fp32", device="cpu").restore_tensor(x)
    spandrel_tiled = Restorer(_SpandrelCall(ref, caps), tile=16, tile_overlap=4, precision="fp32",
                              device="cpu").restore_tensor(x)
    assert tiled.shape == expected.shape
    diff_tiled = (tiled - spandrel_tiled).abs().max().item()
    assert diff_tiled <= 1e-5, diff_tiled
    print(f"{name}: whole {diff_whole:.2e}, tiled {diff_tiled:.2e}, tiled vs whole "
          f"{(tiled.clamp(0, 1) - expected).abs().max().item():.3f}")


def test_padding_is_spandrels():
    from spandrel import SizeRequirements
    from spandrel.__helpers.size_req import pad_tensor
    x = torch.rand(1, 3, 5, 7)
    for req in (SizeRequirements(minimum=16), SizeRequirements(multiple_of=8), SizeRequirements(multiple_of=4,
                                                                                                square=True)):
        assert torch.equal(pad(x, req.minimum, req.multiple_of, req.square), pad_tensor(x, req)[1])


@pytest.mark.parametrize("name", list(CASES))
def test_the_cli_runs_each_architecture_end_to_end(files, tmp_path, capsys, name):
    """swinir-app upscale with the file as --model: whole, spandrel's output within a level of 255 after saving
    (tiled, it is spandrel's tile by tile: the test above)."""
    from swinir_app.images import read_image
    from swinir_app.upscale import main

    rng = np.random.default_rng(0)
    lq = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(lq).save(tmp_path / "in" / "a.png")
    ref = _reference(files[name])
    with torch.no_grad():
        y = ref(torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255)[0].clamp(0, 1)
    whole = np.round(y.permute(1, 2, 0).numpy() * 255).astype(int)
    rc = main([str(tmp_path / "in"), "-o", str(tmp_path / "whole"), "--model", str(files[name]),
               "--device", "cpu", "--precision", "fp32", "--tile", "0"])
    assert rc == 0, capsys.readouterr().err
    out = read_image(tmp_path / "whole" / "a.png").array
    assert out.shape == whole.shape and np.abs(out.astype(int) - whole).max() <= 1
    if name == "ESRGAN-new":  # and tiled, through the CLI's flags
        rc = main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(files[name]),
                   "--device", "cpu", "--precision", "fp32", "--tile", "16"])
        assert rc == 0 and read_image(tmp_path / "out" / "a.png").array.shape == (H * 4, W * 4, 3)


def test_a_file_no_loader_knows_is_one_line_naming_what_was_looked_for(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ModelLoadError) as e:
        load_model(tmp_path / "other.pth")
    text = str(e.value)
    assert "\n" not in text and "other.pth is not a model this app knows" in text
    assert "no SwinIR/Swin2SR/HAT/DAT keys" in text and "spandrel recognised no architecture" in text
    assert "ESRGAN" in text and "PLKSR" in text


def test_a_hostile_pickle_is_refused_before_spandrel_sees_it(files, tmp_path, monkeypatch):
    from swinir_app import spandrel_loader

    class CreatesFile:
        def __init__(self, call, *args):
            self.call, self.args = call, args

        def __reduce__(self):
            return self.call, self.args

    def never(*_):
        raise AssertionError("spandrel saw a hostile file")

    monkeypatch.setattr(spandrel_loader, "detect", never)
    monkeypatch.setattr(spandrel.ModelLoader, "load_from_state_dict", never)
    marker = tmp_path / "pwned"
    state = torch.load(files["Compact"], weights_only=True)
    torch.save({"params": state, "hook": CreatesFile(os.system, f"touch {marker}")}, tmp_path / "evil.pth")
    with pytest.raises(ModelLoadError, match=r"refusing to load .*evil\.pth.*arbitrary code"):
        load_model(tmp_path / "evil.pth")
    assert not marker.exists()


def test_wrappers_and_safetensors_load_too_and_config_needing_paths_refuse(files, tmp_path):
    from safetensors.torch import save_file
    state = torch.load(files["SPAN"], weights_only=True)
    torch.save({"params_ema": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pth")
    save_file(state, str(tmp_path / "span.safetensors"))
    for f in ("wrapped.pth", "span.safetensors"):
        assert load_model(tmp_path / f).architecture == "SPAN"
    with pytest.raises(ModelLoadError, match="is a SPAN model, not a SwinIR, Swin2SR, HAT or DAT checkpoint") as e:
        resolve(tmp_path / "span.safetensors")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelLoadError, match="img_range and conv_scale are SwinIR-family settings"):
        load_model(tmp_path / "span.safetensors", img_range=255.0)


def test_an_unsupported_precision_is_one_line(files):
    from swinir_app.engine import SettingError
    model = load_model(files["SAFMN"])  # spandrel: no fp16
    assert "fp16" not in model.capabilities.precisions
    with pytest.raises(SettingError):
        Restorer(model, precision="fp16", device="cpu")
    # int8 is for the native transformer family; another architecture is refused in one line, before any run.
    with pytest.raises(SettingError, match=r"does not run in int8; use fp32 .*or auto$") as e:
        Restorer(model, precision="int8", device="cpu")
    assert "\n" not in str(e.value) and not any(type(m).__name__ == "Int8Linear" for m in model.modules())


def test_progress_and_cancel_reach_inside_the_network(files):
    model = load_model(files["ESRGAN-old"])
    stages = model.capabilities.stages
    assert stages == ("net.model.1.sub.0", "net.model.1.sub.1")  # the RRDBs
    calls = []
    Restorer(model, precision="fp32", device="cpu").restore_tensor(torch.rand(1, 3, 8, 8),
                                                                   callback=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    polls = []

    def cancel():
        polls.append(1)
        if len(polls) == 2:  # the run's first poll, then the first RRDB's
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Restorer(model, precision="fp32", device="cpu").restore_tensor(torch.rand(1, 3, 8, 8), cancel=cancel)


def test_the_docs_list_every_restoring_architecture_with_its_code_licence():
    """docs/models.md has a row for each architecture of spandrel's main registry that runs here, with the
    licence the loader reports for it (refused purposes and the native four aside)."""
    import spandrel

    from conftest import REPO
    from swinir_app.spandrel_loader import CODE_LICENCES, NATIVE

    rows = [line.split("|") for line in (REPO / "docs" / "models.md").read_text().splitlines()
            if line.startswith("| ") and line.count("|") == 4]
    refused = {"GFPGAN", "RestoreFormer", "LaMa"}  # faces and inpainting
    for support in spandrel.MAIN_REGISTRY.architectures():
        arch = support.architecture
        if arch.id in refused or arch.id in NATIVE:
            continue
        assert arch.id in CODE_LICENCES, arch.id
        names = {arch.name, arch.id, arch.name.replace("RealESRGAN ", "")}
        found = [r for r in rows if any(n in r[1] for n in names)]
        assert found, f"no row for {arch.name} in docs/models.md"
        assert any(r[3].strip() == CODE_LICENCES[arch.id] for r in found), (arch.name, [r[3] for r in found])


@pytest.mark.parametrize("name", ["ESRGAN-old", "RealPLKSR-DySample"])
def test_convert_writes_another_architecture_as_safetensors_that_runs_the_same(files, tmp_path, capsys, name):
    """convert re-saves the tensors as spandrel reads them (the old ESRGAN layout comes out in the new one): the
    .safetensors holds no code, and loads back into the same network."""
    from safetensors import safe_open

    from swinir_app.convert import main
    out = tmp_path / "model.safetensors"
    assert main([str(files[name]), str(out), "--description", "test"]) == 0
    assert f"wrote {out}: " in capsys.readouterr().out
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == load_model(files[name]).capabilities.arch and meta["description"] == "test"
    x = torch.rand(1, 3, 29, 37)
    a = Restorer(load_model(files[name]), precision="fp32", device="cpu").restore_tensor(x)
    b = Restorer(load_model(out), precision="fp32", device="cpu").restore_tensor(x)
    assert torch.equal(a, b)
    with pytest.raises(SystemExit):
        main([str(files[name]), str(tmp_path / "x.safetensors"), "--img-range", "255"])
    assert "--img-range applies to SwinIR-family models" in capsys.readouterr().err


def test_evaluate_scores_another_architecture_as_its_own_scripts_run_it(files, tmp_path):
    """evaluate runs a spandrel model without the SwinIR family's mirror padding, and its PSNR is that of the
    model's own output, scored by basicsr."""
    import swinir_app._basicsr  # noqa: F401 - basicsr 1.4.2 needs torchvision's old module name first
    from basicsr.metrics.psnr_ssim import calculate_psnr

    from swinir_app.evaluate import evaluate
    from swinir_app.protocol.degrade import bicubic_downscale

    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    gt = photo("chelsea")[:48, :64]
    Image.fromarray(gt).save(gt_dir / "a.png")
    model = load_model(files["Compact"])
    r = evaluate(model, gt_dir, scale=2, device="cpu", metrics=["psnr"], progress=False)
    assert r.protocol.padding.startswith("none (the model's own padding") and r.protocol.window_size is None
    gt, lq = bicubic_downscale(gt, 2)
    x = torch.from_numpy(lq.astype(np.float32) / 255).permute(2, 0, 1)[None]
    out = Restorer(model, precision="fp32", device="cpu").restore_tensor(x)[0].clamp(0, 1)
    sr = np.round(out.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    want = calculate_psnr(sr[..., ::-1], gt[..., ::-1], crop_border=r.protocol.crop_border, input_order="HWC",
                          test_y_channel=True)  # basicsr's images are BGR
    assert r.summary["psnr_y"] == pytest.approx(want, abs=1e-9)


def test_a_dat_file_runs_in_the_native_network_through_the_cli(tmp_path, capsys):
    """A DAT file (spandrel's class, official key layout) is not spandrel's to run: it loads into this app's
    own DAT, and the CLI's output is spandrel's within a level of 255."""
    from spandrel.architectures.DAT import DAT as SpandrelDAT

    from swinir_app.images import read_image
    from swinir_app.network import DAT
    from swinir_app.upscale import main

    torch.manual_seed(0)
    net = SpandrelDAT(upscale=2, img_size=16, split_size=[4, 8], depth=[2], embed_dim=32, num_heads=[2],
                      expansion_factor=2, resi_connection="1conv", upsampler="pixelshuffledirect")
    state = _random(net)
    state.update({k: v for k, v in net.state_dict().items() if k.endswith(("rpe_biases", "relative_position_index",
                                                                           "attn_mask_0", "attn_mask_1"))})
    torch.save(state, tmp_path / "dat.pth")  # random weights, the position tables as the network makes them
    assert isinstance(load_model(tmp_path / "dat.pth"), DAT)
    lq = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(lq).save(tmp_path / "in" / "a.png")
    ref = _reference(tmp_path / "dat.pth")
    with torch.no_grad():
        y = ref(torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255)[0].clamp(0, 1)
    rc = main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "dat.pth"),
               "--device", "cpu", "--precision", "fp32", "--tile", "0"])
    assert rc == 0, capsys.readouterr().err
    out = read_image(tmp_path / "out" / "a.png").array.astype(int)
    assert np.abs(out - np.round(y.permute(1, 2, 0).numpy() * 255)).max() <= 1
