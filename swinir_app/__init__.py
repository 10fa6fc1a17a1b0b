"""swinir_app: image restoration with the SwinIR family (SwinIR, Swin2SR, HAT, DAT) and any model spandrel knows —
networks, checkpoints, engine, CLI, web UI, training."""
from .network import PRESETS, Swin2SR, SwinIR, SwinIRConfig, build_network

__version__ = "0.1.0"
__all__ = ["PRESETS", "Swin2SR", "SwinIR", "SwinIRConfig", "build_network", "load_model", "Restorer", "__version__"]


def __getattr__(name):
    # Heavier front-end pieces load on first use, so that `import swinir_app` stays light.
    if name == "load_model":
        from .zoo import load_model
        return load_model
    if name == "Restorer":
        from .engine import Restorer
        return Restorer
    raise AttributeError(f"module 'swinir_app' has no attribute {name!r}")
