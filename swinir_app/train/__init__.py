"""Training SwinIR from BasicSR-style options: paired data, EMA, exact resume, torchrun DDP.

    python -m swinir_app.train -opt options/x4.yml [--auto_resume] [--force_yml key:sub=value ...] [--debug]
    torchrun --nproc_per_node=N -m swinir_app.train -opt options/x4.yml --launcher pytorch

In Python: ``train(load_options("options/smoke.yml"))``.

Modules: :mod:`.data` (datasets, checked before the first step), :mod:`.sampler` (a resumable order),
:mod:`.pool` (the training-pair pool), :mod:`.schedule` (BasicSR's learning rates, losses and EMA),
:mod:`.experiment` (the folder layout, resume states and saving), :mod:`.preflight` (every check before
the first write), :mod:`.gan` (the discriminator and its step), :mod:`.validate` (validation),
:mod:`.logbook` (console, log file, TensorBoard, ETA), :mod:`.trainer` (the model, its step and the
loop), :mod:`.cli` (the command line).

The names below are imported on first use (PEP 562), so that importing a submodule, as a DataLoader
worker does for :mod:`.data`, loads only what that submodule needs.
"""
from importlib import import_module

_EXPORTS = {"Options": "..options", "OptionsError": "..options", "load_options": "..options",
            "Result": ".trainer", "TrainingError": ".trainer", "train": ".trainer"}

__all__ = ["Options", "OptionsError", "Result", "TrainingError", "load_options", "train"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # once: later look-ups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
