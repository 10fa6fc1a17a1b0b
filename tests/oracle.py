"""Test references: basicsr's copy of the official SwinIR, with the official pad-and-crop."""
import torch

from swinir_app._basicsr import OfficialReference
from swinir_app.network import SwinIRConfig


PaddedOracle = OfficialReference  # the official network with its reflect pad and crop


def random_state(module: torch.nn.Module, seed: int = 0) -> dict:
    """The module's state dict with every parameter replaced by seeded, non-default values."""
    g = torch.Generator().manual_seed(seed)
    params = dict(module.named_parameters())
    state = {}
    for k, v in module.state_dict().items():
        if k in params:
            noise = torch.randn(v.shape, generator=g)
            v = 1.0 + 0.1 * noise if k.endswith("norm.weight") or ".norm1.weight" in k or ".norm2.weight" in k \
                else 0.05 * noise
        state[k] = v.clone()
    return state


def small(preset: str, **overrides) -> SwinIRConfig:
    """A preset with its structure kept but shrunk for fast tests."""
    base = SwinIRConfig.preset(preset)
    heads = base.num_heads[0]
    return base.replace(depths=(2, 2), num_heads=(heads, heads), embed_dim=8 * heads, **overrides)
