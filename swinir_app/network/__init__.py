"""The SwinIR network family (SwinIR, Swin2SR, HAT): pure torch, no files, CLIs or YAML."""
from .config import ARCH_NAMES, PRESETS, SwinIRConfig
from .swinir import DERIVED_SUFFIXES, RSTB, SwinIR, SwinTransformerBlock
from .swin2sr import Swin2SR
from .hat import HAT
from .family import NETWORKS, build_network, derived_buffers, state_shapes
from .attention import WindowAttention
from . import hardware

__all__ = ["ARCH_NAMES", "DERIVED_SUFFIXES", "HAT", "NETWORKS", "PRESETS", "RSTB", "Swin2SR", "SwinIR", "SwinIRConfig",
           "SwinTransformerBlock", "WindowAttention", "build_network", "derived_buffers", "hardware", "state_shapes"]
