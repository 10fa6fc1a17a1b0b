"""Batch restoration CLI: ``python -m swinir_app.upscale INPUT... -o OUTDIR`` (``swinir-app upscale``).

``command``: the options, :func:`main` and :func:`run`, the steps of a run. ``plan``: what a run will do,
decided before any model work (inputs, collisions, destinations, kinds, shards, output-folder checks).
``batch``: one rank restoring its share. ``videos``: videos and their time slices. ``summary``: the counts
and the closing line.
"""
from .batch import Batch
from .command import DEFAULT_MAX_PIXELS, build_parser, load_model, main, run
from .plan import (Job, Plan, check_output_folders, collect_inputs, collisions, plan_kinds, shard,
                   tiling_notes)
from .summary import Summary
from .videos import KeepFresh, join_videos, restore_one_video

__all__ = ["Batch", "DEFAULT_MAX_PIXELS", "Job", "KeepFresh", "Plan", "Summary", "build_parser",
           "check_output_folders", "collect_inputs", "collisions", "join_videos", "load_model", "main",
           "plan_kinds", "restore_one_video", "run", "shard", "tiling_notes"]

_KeepFresh = KeepFresh  # the name tests and older callers use
