"""Training SwinIR from BasicSR-style options: paired data, EMA, exact resume, torchrun DDP.

    python -m swinir_app.train -opt options/x4.yml [--auto_resume] [--force_yml key:sub=value ...] [--debug]
    torchrun --nproc_per_node=N -m swinir_app.train -opt options/x4.yml --launcher pytorch

In Python: ``train(load_options("options/smoke.yml"))``.

Modules: :mod:`.data` (datasets, checked before the first step), :mod:`.sampler` (a resumable order),
:mod:`.schedule` (BasicSR's learning rates, losses and EMA), :mod:`.experiment` (the folder layout and
resume states), :mod:`.trainer` (setup, step, run), :mod:`.cli` (the command line).
"""
from ..options import Options, OptionsError, load_options
from .trainer import Result, TrainingError, train

__all__ = ["Options", "OptionsError", "Result", "TrainingError", "load_options", "train"]
