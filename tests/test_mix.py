"""Mixing two models' weights, (1 - w) x A + w x B, once at load: the ends are the two models exactly, the middle
is a hand-averaged network, mismatched models and weights are refused in one line, convert writes the mix."""
import copy

import numpy as np
import pytest
import torch

from conftest import photo
from swinir_app import Restorer, load_model
from swinir_app.checkpoint import ModelLoadError
from swinir_app.convert import main as convert_main
from swinir_app.errors import SettingError
from swinir_app.zoo import MIX_PAIRS, mix_models, mix_partner, parse_mix

A, B = "bundled-x4", "bundled-real-x4"


@pytest.fixture(scope="module")
def lq():
    x = photo("coffee")[100:132, 150:190]  # 32 x 40: not a multiple of the window
    return torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None]


def run(model_or_spec, x, **kw):
    return Restorer(model_or_spec, device="cpu", **kw).restore_tensor(x)


def test_the_ends_are_the_two_models_exactly(lq):
    assert torch.equal(run(A, lq, mix=(B, 0)), run(A, lq))
    assert torch.equal(run(A, lq, mix=(B, 1)), run(B, lq))
    assert torch.equal(run(A, lq, mix=f"{B}=1"), run(B, lq))  # as the CLI writes it


def test_half_is_a_network_averaged_by_hand(lq):
    a, b = load_model(A), load_model(B)
    by_hand = load_model(A)
    params = dict(b.named_parameters())
    with torch.no_grad():
        for name, p in by_hand.named_parameters():
            p.copy_((p + params[name]) / 2)
    mixed = run(A, lq, mix=(B, 0.5))
    assert torch.equal(mixed, run(by_hand, lq))
    assert torch.equal(run(a, lq, mix=(b, 0.5)), mixed)  # loaded models mix alike ...
    assert torch.equal(run(a, lq), run(A, lq))  # ... and are left as they were
    # between the two, and the derived buffers (masks, position indices) are the models' own
    assert not torch.equal(mixed, run(A, lq)) and not torch.equal(mixed, run(B, lq))
    m = mix_models(A, B, 0.3)
    for (name, t), (_, u) in zip(m.named_buffers(), a.named_buffers()):
        assert torch.equal(t, u), name


def test_mismatched_models_and_weights_are_refused_in_one_line():
    with pytest.raises(ModelLoadError) as e:
        load_model(A, mix=("bundled-dn", 0.5))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("bundled-x4 and bundled-dn cannot be mixed: they differ in upscale "
                                             "(4 vs 1)")
    for bad in (-0.1, 1.5, float("nan"), True, "0.3"):
        with pytest.raises(SettingError) as e:
            Restorer(A, device="cpu", mix=(B, bad))
        assert "\n" not in str(e.value) and "from 0" in str(e.value)
    for text in ("bundled-real-x4", "=0.3", "bundled-real-x4=much", "bundled-real-x4=2"):
        with pytest.raises(SettingError) as e:
            parse_mix(text)
        assert str(e.value).startswith(f"mix {text!r}: ")
    assert parse_mix("my=model.pth=0.25") == ("my=model.pth", 0.25)


def test_other_architectures_mix_when_every_shape_agrees():
    pytest.importorskip("spandrel")
    from spandrel.architectures import Compact
    from swinir_app.spandrel_loader import load_spandrel
    from test_spandrel import _random

    def compact(seed, feat=8):
        return load_spandrel(_random(Compact.Compact(num_feat=feat, num_conv=3, upscale=2), seed), f"c{seed}")

    a, b = compact(0), compact(1)
    x = torch.rand(1, 3, 12, 16)
    by_hand = copy.deepcopy(a)  # (a builder's weights start from its random initialisation)
    with torch.no_grad():
        for (_, p), (_, q) in zip(by_hand.named_parameters(), b.named_parameters()):
            p.copy_((p + q) / 2)
    assert torch.equal(run(a, x, mix=(b, 0.5)), run(by_hand, x))
    assert torch.equal(run(a, x, mix=(b, 1)), run(b, x))
    with pytest.raises(ModelLoadError, match=r"differ in the shape of body\.0\.weight \(\[8, 3, 3, 3\] vs \[16"):
        mix_models(a, compact(2, feat=16), 0.5)
    with pytest.raises(ModelLoadError, match=r"differ in architecture \(RealESRGAN Compact vs SwinIR\)"):
        mix_models(a, A, 0.5)


def test_convert_writes_the_mixed_network(tmp_path, lq, capsys):
    out = tmp_path / "mixed.safetensors"
    assert convert_main([A, str(out), "--mix", f"{B}=0.3"]) == 0
    assert torch.equal(run(str(out), lq), run(A, lq, mix=(B, 0.3)))
    with pytest.raises(SystemExit) as exit_:
        convert_main([A, str(tmp_path / "x.safetensors"), "--mix", "bundled-dn=0.3"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot be mixed: they differ in upscale (4 vs 1)" in err and not (tmp_path / "x.safetensors").exists()


def test_the_bundled_pair_is_declared_once_both_ways():
    assert MIX_PAIRS == (("bundled-x4", "detail", "bundled-real-x4", "clean"),)
    p = mix_partner("bundled-x4")
    assert (p.model, p.partner, p.slider) == ("bundled-x4", "bundled-real-x4", "detail \u2194 clean")
    q = mix_partner("bundled-real-x4.safetensors")  # any spelling of the name
    assert (q.model, q.partner, q.model_label, q.partner_label) == ("bundled-real-x4", "bundled-x4", "clean", "detail")
    assert mix_partner("classical-x4") is None and mix_partner("/no/such.pth") is None
