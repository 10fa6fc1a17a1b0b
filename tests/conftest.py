"""Shared fixtures: real photos and a small SwinIR trained for a few seconds on them."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from swinir_app import SwinIR, SwinIRConfig

REPO = Path(__file__).resolve().parents[1]
TESTSETS = REPO.parent / "shared" / "testsets"


def photo(name: str) -> np.ndarray:
    """A real RGB uint8 photo shipped with scikit-image (astronaut, chelsea, coffee, ...)."""
    import skimage.data
    return getattr(skimage.data, name)()


def train_tiny(config: SwinIRConfig, steps: int = 120, seed: int = 0) -> SwinIR:
    """Train ``config`` briefly on bicubic-downscaled scikit-image photos: real, structured weights."""
    torch.manual_seed(seed)
    model = SwinIR(config)
    hr_images = [torch.from_numpy(photo(n)).permute(2, 0, 1).float() / 255 for n in ("astronaut", "coffee", "chelsea")]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    s, patch = config.upscale, 24
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = []
        for _ in range(8):
            img = hr_images[int(torch.randint(len(hr_images), (1,), generator=g))]
            y = int(torch.randint(img.shape[1] - patch * s, (1,), generator=g))
            x = int(torch.randint(img.shape[2] - patch * s, (1,), generator=g))
            batch.append(img[:, y:y + patch * s, x:x + patch * s])
        hr = torch.stack(batch)
        lr = F.interpolate(hr, scale_factor=1 / s, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        loss = F.l1_loss(model(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_x2() -> SwinIR:
    config = SwinIRConfig.preset("lightweight-x2").replace(depths=(2, 2), num_heads=(4, 4), embed_dim=32,
                                                            drop_path_rate=0.0)
    return train_tiny(config)


@pytest.fixture(scope="session")
def ckpt(trained_x2, tmp_path_factory):
    """trained_x2 saved as a BasicSR-style checkpoint file: a spec for the CLIs and the web app."""
    path = tmp_path_factory.mktemp("model") / "tiny_x2.pth"
    torch.save({"params": trained_x2.state_dict()}, path)
    return path


from swinir_app.network import hardware  # noqa: E402

CPU = hardware.cpu()
# Explicit bf16 runs only where it is native; elsewhere it is refused, which tests force everywhere.
native_bf16 = pytest.mark.skipif(not CPU.bf16, reason=f"this CPU has no native bf16 ({CPU.describe()}); "
                                                      f"the refusal is tested by forcing the capability off")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` (the CUDA paths: scripts/gpu_check.sh runs them) are skipped without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (a GPU): scripts/gpu_check.sh runs these where one is lent")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
