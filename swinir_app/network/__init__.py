"""The SwinIR network family: pure torch, no files, CLIs or YAML."""
from .config import PRESETS, SwinIRConfig
from .swinir import DERIVED_SUFFIXES, RSTB, SwinIR, SwinTransformerBlock, derived_buffers, state_shapes
from .attention import WindowAttention
from . import hardware

__all__ = ["DERIVED_SUFFIXES", "PRESETS", "RSTB", "SwinIR", "SwinIRConfig", "SwinTransformerBlock", "WindowAttention",
           "derived_buffers", "hardware", "state_shapes"]
