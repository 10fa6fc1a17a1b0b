"""BasicSR-compatible options files: one declared schema for training and evaluation, read once.

``load_options(path, purpose="train" | "test")`` returns a frozen :class:`Options`; every error is one
line naming the file and the full key. See :mod:`.schema` for the keys (``datasets.<key>`` in :mod:`.dataset`,
YAML values in :mod:`.values`) and :mod:`.reading` for the path rule (relative to the current directory, as in
BasicSR) and ``--force_yml``.
"""
from .dataset import DATASET_TYPES, SKIMAGE_SCHEME, DatasetOptions, IOBackendOptions
from .reading import (OptionsError, apply_debug, apply_override, load_options, parse_options, parse_yaml,
                      random_seed, read_text)
from .schema import (AMP_DTYPES, LOSSES, METRIC_TYPES, MODEL_TYPES, OPTIMIZERS, SCHEDULERS, TASKS, LoggerOptions,
                     MetricOptions, NetworkOptions, Options, PathOptions, TrainOptions, TypedOptions, ValOptions)

__all__ = ["AMP_DTYPES", "DATASET_TYPES", "DatasetOptions", "IOBackendOptions", "LOSSES", "LoggerOptions",
           "METRIC_TYPES", "MODEL_TYPES", "MetricOptions", "NetworkOptions", "OPTIMIZERS", "Options", "OptionsError",
           "PathOptions",
           "SCHEDULERS", "SKIMAGE_SCHEME", "TASKS", "TrainOptions", "TypedOptions", "ValOptions", "apply_debug",
           "apply_override", "load_options", "parse_options", "parse_yaml", "random_seed", "read_text"]
