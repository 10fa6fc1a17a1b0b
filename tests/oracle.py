"""Test references: basicsr's copy of the official SwinIR, with the official pad-and-crop."""
import torch
import torch.nn.functional as F

from swinir_app._basicsr import OfficialSwinIR
from swinir_app.network import SwinIRConfig


class PaddedOracle(torch.nn.Module):
    """basicsr's SwinIR needs window-multiple input; wrap it in the official reflect pad and crop."""

    def __init__(self, config: SwinIRConfig):
        super().__init__()
        c = config
        self.net = OfficialSwinIR(upscale=c.upscale, in_chans=c.in_chans, img_size=c.img_size,
                                  window_size=c.window_size, img_range=c.img_range, depths=list(c.depths),
                                  embed_dim=c.embed_dim, num_heads=list(c.num_heads), mlp_ratio=c.mlp_ratio,
                                  upsampler=c.upsampler, resi_connection=c.resi_connection)
        self.window_size, self.scale = c.window_size, c.upscale

    def forward(self, x):
        h, w = x.shape[-2:]
        ws = self.window_size
        x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), "reflect")
        return self.net(x)[..., :h * self.scale, :w * self.scale]


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
