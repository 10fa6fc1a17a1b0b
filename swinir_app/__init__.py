"""swinir_app: image restoration with the SwinIR family (SwinIR, Swin2SR, HAT, DAT) and any model spandrel knows —
networks, checkpoints, engine, CLI, web UI, training."""
import os as _os

# PyTorch's OpenMP threads spin while they wait for each other: on cores that other work fills, 2 threads ran
# 2.8-16x slower than 1; sleeping instead costs 0-10% on a quiet machine (docs/performance.md#threads). It takes
# effect only if torch is not loaded yet (the CLIs, the web app); a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .network import PRESETS, Swin2SR, SwinIR, SwinIRConfig, build_network  # after the OpenMP setting

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
