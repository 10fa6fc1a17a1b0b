"""The SwinIR network family (SwinIR, Swin2SR, HAT): pure torch, no files, CLIs or YAML."""
from .config import ARCH_NAMES, PRESETS, SwinIRConfig
from .swinir import DERIVED_SUFFIXES, RSTB, SwinIR, SwinTransformerBlock, derived_buffers, state_shapes
from .swin2sr import Swin2SR
from .hat import HAT
from .attention import WindowAttention
from . import hardware

NETWORKS = {"swinir": SwinIR, "swin2sr": Swin2SR, "hat": HAT}


def build_network(config: SwinIRConfig) -> SwinIR:
    """The network of ``config`` (by ``config.arch``): a :class:`SwinIR`, :class:`Swin2SR` or :class:`HAT`."""
    return NETWORKS[config.arch](config)


__all__ = ["ARCH_NAMES", "DERIVED_SUFFIXES", "HAT", "NETWORKS", "PRESETS", "RSTB", "Swin2SR", "SwinIR", "SwinIRConfig",
           "SwinTransformerBlock", "WindowAttention", "build_network", "derived_buffers", "hardware", "state_shapes"]
