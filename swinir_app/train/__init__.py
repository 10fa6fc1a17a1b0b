"""Training SwinIR from BasicSR-style options: paired data, EMA, exact resume, torchrun DDP.

    python -m swinir_app.train -opt options/x4.yml [--auto_resume] [--force_yml key:sub=value ...] [--debug]
    torchrun --nproc_per_node=N -m swinir_app.train -opt options/x4.yml --launcher pytorch

In Python: ``train(load_options("options/smoke.yml"))``.
"""
from ..options import Options, OptionsError, load_options
from .trainer import Result, TrainingError, train

__all__ = ["Options", "OptionsError", "Result", "TrainingError", "load_options", "train"]
