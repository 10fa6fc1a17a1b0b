"""The front ends against an official network: a helper for the tests of every architecture."""
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import photo


def official_uint8(ref: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    """The official network's output for an HxWx3 uint8 image, rounded as every front end rounds."""
    with torch.no_grad():
        y = ref(torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255)[0]
    return np.round(y.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def check_front_ends(tmp_path: Path, ckpt: Path, ref: torch.nn.Module, scale: int) -> None:
    """The batch CLI, the web app and convert run ``ckpt``, each within one level of ``ref``; the
    safetensors copy carries the config."""
    from swinir_app import load_model
    from swinir_app.convert import convert
    from swinir_app.images import read_image
    from swinir_app.upscale import main as upscale
    from swinir_app.webui.service import AppConfig, RunSettings, WebApp

    lq = np.ascontiguousarray(photo("chelsea")[50:80, 100:140])
    expected = official_uint8(ref, lq)
    (tmp_path / "in").mkdir()
    Image.fromarray(lq).save(tmp_path / "in" / "a.png")
    assert upscale([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--device", "cpu",
                    "--precision", "fp32"]) == 0
    out = read_image(tmp_path / "out" / "a.png").array
    assert out.shape == (30 * scale, 40 * scale, 3) and np.abs(out.astype(int) - expected).max() <= 1

    app = WebApp(AppConfig(model=str(ckpt), device="cpu", models_dir=str(ckpt.parent)))
    assert app.describe(str(ckpt)).config == load_model(str(ckpt)).config
    r = app.restore_file(str(tmp_path / "in" / "a.png"), RunSettings(str(ckpt), precision="fp32", tile=None),
                         threading.Event())
    assert np.abs(r.output.astype(int) - expected).max() <= 1

    convert(str(ckpt), tmp_path / "c.safetensors")
    assert load_model(str(tmp_path / "c.safetensors")).config == load_model(str(ckpt)).config
