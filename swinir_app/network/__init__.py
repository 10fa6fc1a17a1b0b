"""The SwinIR network family: pure torch, no files, CLIs or YAML."""
from .config import PRESETS, SwinIRConfig
from .swinir import RSTB, SwinIR, SwinTransformerBlock, derived_buffers
from .attention import WindowAttention
from . import hardware

__all__ = ["PRESETS", "RSTB", "SwinIR", "SwinIRConfig", "SwinTransformerBlock", "WindowAttention", "derived_buffers", "hardware"]
