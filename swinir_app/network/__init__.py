"""The SwinIR network family (SwinIR, Swin2SR, HAT, DAT): pure torch, no files, CLIs or YAML."""
from .config import ARCH_NAMES, PRESETS, SwinIRConfig
from .swinir import DERIVED_SUFFIXES as _SWINIR_DERIVED, RSTB, SwinIR, SwinTransformerBlock
from .swin2sr import Swin2SR
from .hat import HAT
from .dat import DAT
from .family import NETWORKS, build_network, derived_buffers, state_shapes
from .attention import WindowAttention
from . import hardware

# State-dict entries computed from the config (not compared by checkpoint.check_state); DAT adds its own.
DERIVED_SUFFIXES = _SWINIR_DERIVED + ("attn_mask_0", "attn_mask_1", "rpe_biases")

__all__ = ["ARCH_NAMES", "DAT", "DERIVED_SUFFIXES", "HAT", "NETWORKS", "PRESETS", "RSTB", "Swin2SR", "SwinIR",
           "SwinIRConfig",
           "SwinTransformerBlock", "WindowAttention", "build_network", "derived_buffers", "hardware", "state_shapes"]
