"""The SwinIR network family: pure torch, no files, CLIs or YAML."""
from .config import PRESETS, SwinIRConfig
from .swinir import RSTB, SwinIR, SwinTransformerBlock
from .attention import WindowAttention

__all__ = ["PRESETS", "RSTB", "SwinIR", "SwinIRConfig", "SwinTransformerBlock", "WindowAttention"]
