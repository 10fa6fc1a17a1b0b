"""Checkpoints: safe reading of any model file, unwrapping, the SwinIR family's config inference, safetensors writing.

This module reads files and state dicts only; it knows the official parameter names but builds no
network. Pickled checkpoints are read with ``torch.load(weights_only=True)`` and nothing else, so a
file that needs arbitrary code to unpickle is refused, never executed.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import Tensor

from .errors import UserError
from . import hf
from .network import DERIVED_SUFFIXES, SwinIRConfig, derived_buffers, state_shapes

PathLike = Union[str, "os.PathLike[str]"]
StateDict = Dict[str, Tensor]

# Where trainers put the weights, best first: BasicSR's EMA, BasicSR/official, Lightning, others.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
# Added by DataParallel/DistributedDataParallel and by torch.compile.
STRIPPED_PREFIXES = ("module.", "_orig_mod.")
# The safetensors metadata key holding the config as JSON.
CONFIG_KEY = "swinir_config"
_BLOCK = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.")


class ModelLoadError(UserError):
    """A checkpoint or model spec could not be loaded; ``str()`` is one line that says why."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ModelOutputError(UserError, RuntimeError):
    """A model's output that must not become an image (NaN/Inf values, a wrong shape); one line. Here, beside
    :class:`ModelLoadError`, so that the engine and the ONNX backend below it raise the same class."""


@dataclass(frozen=True)
class Checkpoint:
    """A SwinIR state dict with its config, from ``source``.

    ``config_source`` is 'metadata' (safetensors metadata), 'embedded' (a ``config`` entry of the
    checkpoint dict) or 'inferred' (from the tensor names and shapes).
    """

    state_dict: StateDict
    config: SwinIRConfig
    source: str
    config_source: str
    metadata: Dict[str, str] = field(default_factory=dict)


def read_file(path: PathLike, *, label: Optional[str] = None) -> tuple[Any, Dict[str, str]]:
    """The raw content of a checkpoint file and its safetensors metadata ({} for pickles)."""
    path = Path(path)
    name = label or str(path)
    if not path.is_file():
        raise ModelLoadError(f"no such checkpoint file: {name}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path, name, tensors=True)
    is_zip = _check_archive(path, name)
    try:
        # mmap: storages are mapped, not read, so nothing is allocated before the checks that follow.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip), {}
    except pickle.UnpicklingError as e:
        # The weights-only unpickler stopped before running anything.
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y"
        if found:  # the pickle calls a function or builds an object: loading it would run code
            raise ModelLoadError(
                f"refusing to load {name}: it imports {found.group(1)}, and unpickling it could run arbitrary "
                f"code; only weights-only checkpoints are loaded. If you trust the file, re-save its state "
                f"dict with torch.save(model.state_dict()) or convert it to .safetensors") from None
        detail = re.search(r"WeightsUnpickler error: \s*([^\n]+)", str(e))
        reason = detail.group(1).strip() if detail else "not a weights-only pickle"
        raise ModelLoadError(f"cannot read {name}: not a valid PyTorch checkpoint ({reason})") from None
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, KeyError, EOFError... on damaged files
        first = str(e).strip().split(". ")[0]
        raise ModelLoadError(f"cannot read {name}: not a valid PyTorch checkpoint "
                             f"({type(e).__name__}{': ' + first if first else ''})") from None


def _check_archive(path: Path, name: str) -> bool:
    """Whether ``path`` is a zip-format torch.save file; refuses one whose tensors are compressed.

    torch.save stores tensors uncompressed. A compressed entry would be inflated in memory on load:
    a 1 MB file can hold a gigabyte.
    """
    if not zipfile.is_zipfile(path):
        return False  # the legacy format: its tensors are in the file as they are, bounded by its size
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.infolist():
                if entry.compress_type != zipfile.ZIP_STORED:
                    raise ModelLoadError(
                        f"refusing to load {name}: entry {entry.filename!r} is compressed "
                        f"({entry.compress_size:,} bytes that would inflate to {entry.file_size:,}); torch.save "
                        f"never compresses, so the file was altered")
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"cannot read {name}: not a valid PyTorch checkpoint ({e})") from None
    return True


MAX_WRAPPER_DEPTH = 8
# Swin2SR keeps its window size only in these derived buffers (inferred from them, else assumed).
_WINDOW_KEYS = ("attn.relative_position_index", ".attn_mask")


def unwrap(obj: Any, source: str = "checkpoint") -> tuple[StateDict, Optional[dict]]:
    """The tensors of the network in ``obj``, with bare official names, and its ``config`` entry if any.

    Wrappers are followed at most :data:`MAX_WRAPPER_DEPTH` levels deep, and never twice (a dict that
    contains itself is refused, not followed forever).
    """
    state, config = unwrap_tensors(obj, source)
    return _network_subtree(state, source), config


def unwrap_tensors(obj: Any, source: str = "checkpoint") -> tuple[StateDict, Optional[dict]]:
    """What :func:`unwrap` does short of finding the SwinIR network among the tensors: the tensors inside the
    wrappers, without DataParallel and torch.compile prefixes (the state dict of any architecture), and the
    ``config`` entry if any."""
    config = None
    seen = set()
    while isinstance(obj, Mapping):
        if id(obj) in seen or len(seen) >= MAX_WRAPPER_DEPTH:
            raise ModelLoadError(f"{source} is not a state dict: its wrappers ({', '.join(WRAPPER_KEYS)}) nest "
                                 f"{'into themselves' if id(obj) in seen else f'over {MAX_WRAPPER_DEPTH} levels deep'}")
        seen.add(id(obj))
        if config is None and isinstance(obj.get("config"), Mapping):
            config = dict(obj["config"])
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"{source} holds a {type(obj).__name__}, not a state dict")
    state = {}
    for key, value in obj.items():
        if isinstance(value, Tensor):
            while key.startswith(STRIPPED_PREFIXES):
                key = key.split(".", 1)[1]
            state[key] = value
    if hf.is_hf_layout(state):  # transformers' Swin2SR names: back to the official ones
        try:
            state = hf.from_hf(state)
        except hf.LayoutError as e:
            raise ModelLoadError(f"{source}: {e}") from None
    return state, config


def _network_subtree(state: StateDict, source: str) -> StateDict:
    # Lightning and similar wrappers keep the network under an attribute (``net_g.``, ``model.``).
    if "conv_first.weight" in state:
        return state
    prefixes = sorted({k[: -len("conv_first.weight")] for k in state if k.endswith(".conv_first.weight")})
    if len(prefixes) != 1:
        found = (f"several networks ({', '.join(p.rstrip('.') for p in prefixes)})" if prefixes
                 else "no conv_first.weight")
        raise ModelLoadError(f"{source} is not a SwinIR state dict: {found}")
    (prefix,) = prefixes
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def default_img_size(window_size: int, upsampler: str) -> int:
    """The official training patch size, for state dicts without an ``attn_mask`` to read it from."""
    if upsampler:
        return 64
    return 126 if window_size == 7 else 128


def detect_arch(state: StateDict) -> str:
    """'swin2sr' when the tensors are Swin2SR's (a ``patch_embed.proj`` conv, or cosine attention's
    ``logit_scale``), 'hat' for HAT's (``relative_position_index_SA``, or channel-attention blocks), 'dat'
    for DAT's (its ``before_RG`` LayerNorm, or spatial-gate FFNs), else 'swinir'."""
    if "before_RG.1.weight" in state or any(".ffn.sg." in k for k in state):
        return "dat"
    if "patch_embed.proj.weight" in state or any(k.endswith(".attn.logit_scale") for k in state):
        return "swin2sr"
    if "relative_position_index_SA" in state or any(".conv_block.cab." in k for k in state):
        return "hat"
    return "swinir"


def infer_config(state: StateDict, *, img_range: Optional[float] = None, source: str = "state dict") -> SwinIRConfig:
    """Every hyperparameter of the official SwinIR, Swin2SR, HAT or DAT that made ``state`` (bare official key names).

    ``img_range`` is not stored in the weights: 255 for window-7 restoration networks (the official
    JPEG models), else 1, unless given. ``img_size`` comes from a stored ``attn_mask`` (48 for
    Swin2SR's CompressedSR), else the official training size. Raises :class:`ModelLoadError` (one
    line) when the tensors do not describe a network of the family.
    """
    try:
        return _infer_config(state, img_range, source)
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as e:  # shapes of the wrong rank or size
        raise ModelLoadError(f"{source} is not a SwinIR state dict: {type(e).__name__}: {e}") from None


def _infer_config(state: StateDict, img_range: Optional[float], source: str) -> SwinIRConfig:
    def shape(key: str) -> tuple:
        if key not in state:
            raise ModelLoadError(f"{source} is not a SwinIR state dict: {key} is missing")
        return tuple(state[key].shape)

    if detect_arch(state) == "dat":
        return _infer_dat(state, img_range, source, shape)
    embed_dim, in_chans = shape("conv_first.weight")[:2]
    depth_of: Dict[int, int] = {}
    for key in state:
        m = _BLOCK.match(key)
        if m:
            group, block = int(m.group(1)), int(m.group(2))
            depth_of[group] = max(depth_of.get(group, 0), block + 1)
    if not depth_of or sorted(depth_of) != list(range(len(depth_of))):
        raise ModelLoadError(f"{source} is not a SwinIR state dict: no consecutive layers.N.residual_group")
    depths = tuple(depth_of[i] for i in range(len(depth_of)))
    first = "layers.0.residual_group.blocks.0."
    arch = detect_arch(state)
    if arch == "swin2sr":  # heads from logit_scale (heads, 1, 1), window from the position index (N, N)
        # The window is in the derived buffers only: the position index (N, N), else a shift mask
        # (windows, N, N), else the official choice (7 for the JPEG model, the only one without a tail).
        found = [v.shape[-1] for k, v in state.items() if k.endswith(_WINDOW_KEYS)]
        window_size = math.isqrt(found[0]) if found else 7 if "conv_last.weight" in state and not any(
            k.startswith(("upsample.", "conv_up1.", "conv_bicubic.")) for k in state) else 8
        num_heads = tuple(shape(f"layers.{i}.residual_group.blocks.0.attn.logit_scale")[0]
                          for i in range(len(depths)))
        qkv_bias = first + "attn.q_bias" in state
    else:
        table = shape(first + "attn.relative_position_bias_table")
        window_size = (math.isqrt(table[0]) + 1) // 2
        num_heads = tuple(shape(f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table")[1]
                          for i in range(len(depths)))
        qkv_bias = first + "attn.qkv.bias" in state
    mlp_ratio = shape(first + "mlp.fc1.weight")[0] / embed_dim
    hat = _infer_hat(state, embed_dim, window_size, shape) if arch == "hat" else {}

    upsampler, upscale, num_feat, out_chans = _infer_reconstruction(state, in_chans, source)
    img_size = default_img_size(window_size, upsampler)
    masks = [v for k, v in state.items() if k.endswith(".attn_mask") and v.dim() == 3]
    if masks:  # (num_windows, ws*ws, ws*ws) with num_windows = (img_size / ws)**2
        img_size = math.isqrt(masks[0].shape[0]) * window_size
    ape = "absolute_pos_embed" in state
    if ape:
        img_size = math.isqrt(state["absolute_pos_embed"].shape[1])
    if img_range is None:
        img_range = 255.0 if window_size == 7 and not upsampler else 1.0
    try:
        return SwinIRConfig(
            upscale=upscale, in_chans=in_chans, img_size=img_size, window_size=window_size,
            img_range=float(img_range), depths=depths, embed_dim=embed_dim, num_heads=num_heads,
            mlp_ratio=mlp_ratio, upsampler=upsampler,
            resi_connection="3conv" if "layers.0.conv.0.weight" in state else "1conv",
            qkv_bias=qkv_bias, ape=ape, patch_norm="patch_embed.norm.weight" in state,
            num_feat=num_feat, out_chans=out_chans, arch=arch, **hat)
    except ValueError as e:
        raise ModelLoadError(f"{source} is not a SwinIR state dict: {e}") from None


def _infer_hat(state: StateDict, embed_dim: int, window_size: int, shape) -> Dict[str, Any]:
    """HAT's own hyperparameters: compress_ratio and squeeze_factor from the CAB convs, overlap_ratio from
    OCAB (its position index, else its bias table). conv_scale is not in the weights: the official 0.01."""
    def ratio(out_channels: int) -> int:
        # dim // ratio gave the conv width: the official values first, as several ratios give one width.
        return next((r for r in (3, 24, 30, 16) if embed_dim // r == out_channels), embed_dim // out_channels)

    cab = "layers.0.residual_group.blocks.0.conv_block.cab."
    if "relative_position_index_OCA" in state:
        ows = math.isqrt(state["relative_position_index_OCA"].shape[1])
    else:
        table = shape("layers.0.residual_group.overlap_attn.relative_position_bias_table")
        ows = math.isqrt(table[0]) - window_size + 1
    return {"compress_ratio": ratio(shape(cab + "0.weight")[0]),
            "squeeze_factor": ratio(shape(cab + "3.attention.1.weight")[0]),
            "overlap_ratio": (ows - window_size) / window_size}


_DAT_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.")
_DAT_SPLITS = {128: (8, 16), 256: (8, 32), 8: (2, 4)}  # official split sizes by window area


def _infer_dat(state: StateDict, img_range: Optional[float], source: str, shape) -> SwinIRConfig:
    """A DAT's hyperparameters (official key names): widths and heads from the weights, split_size from the
    spatial branches' coordinates (else their index, else their shift masks), img_size from a shift mask
    (else the official 64). img_range is not in the weights: 1 unless given, as every released DAT."""
    embed_dim, in_chans = shape("conv_first.weight")[:2]
    depth_of: Dict[int, int] = {}
    for key in state:
        m = _DAT_BLOCK.match(key)
        if m:
            group, block = int(m.group(1)), int(m.group(2))
            depth_of[group] = max(depth_of.get(group, 0), block + 1)
    if not depth_of or sorted(depth_of) != list(range(len(depth_of))):
        raise ModelLoadError(f"{source} is not a DAT state dict: no consecutive layers.N.blocks")
    depths = tuple(depth_of[i] for i in range(len(depth_of)))
    # Heads: the channel blocks' temperature (heads, 1, 1); a group of one block has only the spatial one,
    # whose two branches have half the heads each (its last position-MLP layer gives them).
    num_heads = tuple(shape(f"layers.{i}.blocks.1.attn.temperature")[0] if depths[i] > 1
                      else 2 * shape(f"layers.{i}.blocks.0.attn.attns.0.pos.pos3.2.weight")[0]
                      for i in range(len(depths)))
    branch = "layers.0.blocks.0.attn.attns.0."
    masks = [v for k, v in state.items() if k.endswith(".attn_mask_0") and v.dim() == 3]
    if branch + "rpe_biases" in state and state[branch + "rpe_biases"].dim() == 2:
        split = tuple(int(v) + 1 for v in state[branch + "rpe_biases"][-1].tolist())  # (h - 1, w - 1) last
    else:
        found = [v.shape[-1] for k, v in state.items()
                 if k.endswith((".attns.0.relative_position_index", ".attn_mask_0"))]
        if not found or found[0] not in _DAT_SPLITS:
            raise ModelLoadError(f"{source}: cannot tell DAT's split_size (no rpe_biases, and no official window "
                                 f"area in its position index or shift masks)")
        split = _DAT_SPLITS[found[0]]
    img_size = 64
    if masks:  # (windows, N, N) for an img_size square: windows * N = img_size ** 2
        img_size = math.isqrt(masks[0].shape[0] * masks[0].shape[1])
    upsampler, upscale, num_feat, out_chans = _infer_reconstruction(state, in_chans, source)
    try:
        return SwinIRConfig(
            arch="dat", upscale=upscale, in_chans=in_chans, img_size=img_size, img_range=float(img_range or 1.0),
            depths=depths, embed_dim=embed_dim, num_heads=num_heads, split_size=split,
            expansion_factor=shape("layers.0.blocks.0.ffn.fc1.weight")[0] / embed_dim, upsampler=upsampler,
            resi_connection="3conv" if "conv_after_body.0.weight" in state else "1conv",
            qkv_bias="layers.0.blocks.0.attn.qkv.bias" in state, num_feat=num_feat, out_chans=out_chans)
    except ValueError as e:
        raise ModelLoadError(f"{source} is not a DAT state dict: {e}") from None


def _infer_reconstruction(state: StateDict, in_chans: int, source: str) -> tuple[str, int, int, int]:
    """(upsampler, upscale, num_feat, out_chans) from the reconstruction tail's keys and shapes."""
    default_feat = SwinIRConfig.num_feat
    if "conv_bicubic.weight" in state:  # Swin2SR's pixelshuffle_aux
        num_feat = state["conv_before_upsample.0.weight"].shape[0]
        convs = [v for k, v in state.items() if re.fullmatch(r"upsample\.\d+\.weight", k)]
        scale = 3 if len(convs) == 1 and convs[0].shape[0] == 9 * num_feat else 2 ** len(convs)
        return "pixelshuffle_aux", scale, num_feat, state["conv_last.weight"].shape[0]
    if "conv_up1.weight" in state:
        scale = 8 if "conv_up3.weight" in state else 4 if "conv_up2.weight" in state else 2
        return ("nearest+conv", scale, state["conv_before_upsample.0.weight"].shape[0],
                state["conv_last.weight"].shape[0])
    if "conv_before_upsample.0.weight" in state:
        num_feat = state["conv_before_upsample.0.weight"].shape[0]
        convs = [v for k, v in state.items() if re.fullmatch(r"upsample\.\d+\.weight", k)]
        scale = 3 if len(convs) == 1 and convs[0].shape[0] == 9 * num_feat else 2 ** len(convs)
        return "pixelshuffle", scale, num_feat, state["conv_last.weight"].shape[0]
    if "upsample.0.weight" in state:
        # One conv to scale**2 * out_chans channels; out_chans is not stored apart, so it is in_chans.
        scale = math.isqrt(state["upsample.0.weight"].shape[0] // in_chans)
        if scale * scale * in_chans != state["upsample.0.weight"].shape[0]:
            raise ModelLoadError(f"{source}: upsample.0 has {state['upsample.0.weight'].shape[0]} channels, "
                                 f"not scale**2 * {in_chans}")
        return "pixelshuffledirect", scale, default_feat, in_chans
    if "conv_last.weight" not in state:
        raise ModelLoadError(f"{source} is not a SwinIR state dict: no reconstruction layer (conv_last)")
    return "", 1, default_feat, state["conv_last.weight"].shape[0]


def config_from_dict(d_in: Mapping, source: str) -> SwinIRConfig:
    """A config stored with the weights (training outputs, safetensors metadata)."""
    d = d_in
    d = {k: v for k, v in d.items() if k != "type"}  # BasicSR network options also carry type: SwinIR
    if str(dict(d_in).get("type", "")).lower() in ("swin2sr", "dat"):
        d.setdefault("arch", str(dict(d_in)["type"]).lower())
    try:
        return SwinIRConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{source} stores an invalid SwinIR config: {e}") from None


def config_from_metadata(metadata: Mapping[str, str], source: str) -> Optional[SwinIRConfig]:
    """The config that :func:`save_safetensors` put in a safetensors header, if any."""
    if CONFIG_KEY not in metadata:
        return None
    try:
        stored = json.loads(metadata[CONFIG_KEY])
    except ValueError:
        raise ModelLoadError(f"{source}: the {CONFIG_KEY} metadata is not JSON") from None
    return config_from_dict(stored, source)


def load_checkpoint(path: PathLike, *, label: Optional[str] = None) -> Checkpoint:
    """Read any SwinIR checkpoint file (.pth, .pt, .ckpt, .safetensors) safely, with its config.

    A stored config (safetensors metadata or a ``config`` entry) is used as is; otherwise the
    config is inferred from the state dict. Before anything is built, the config is checked against
    its bounds and every tensor's name and shape against the config, and the weights must be finite
    (:func:`check_state`). ``label`` names the file in errors (default: its path).

    Raises:
        ModelLoadError: one line naming the file and what is wrong with it.
    """
    source = label or str(path)
    raw, metadata = read_file(path, label=source)
    return checkpoint_from_raw(raw, metadata, source)


def checkpoint_from_raw(raw: Any, metadata: Dict[str, str], source: str) -> Checkpoint:
    """:func:`load_checkpoint` of what :func:`read_file` returned: the file is read once, and what is not a
    SwinIR-family checkpoint can go on to another loader (:mod:`swinir_app.spandrel_loader`)."""
    state, embedded = unwrap(raw, source)
    config, how = config_from_metadata(metadata, source), "metadata"
    if config is None and embedded is not None:
        config, how = config_from_dict(embedded, source), "embedded"
    if config is None:
        config, how = infer_config(state, source=source), "inferred"
        if config.arch == "swin2sr" and not any(k.endswith(_WINDOW_KEYS) for k in state):
            # transformers never saves these buffers, and some official-layout copies drop them
            warnings.warn(f"{source}: the window size is not stored in these Swin2SR weights; assuming "
                          f"{config.window_size}, the official choice for this head (keep transformers' "
                          f"config.json beside the weights and load the folder to be sure)", UserWarning,
                          stacklevel=2)
    check_state(state, config, source, f"its {how} config")
    if how == "metadata":  # our safetensors leave the derived buffers out: restore the official key set
        state = {**state, **{k: v for k, v in derived_buffers(config).items() if k not in state}}
    return Checkpoint(state, config, source, how, metadata)


def load_hf_folder(path: PathLike, *, label: Optional[str] = None) -> Checkpoint:
    """A transformers Swin2SR folder (``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``),
    with the official key names and the config that ``config.json`` gives. Raises :class:`ModelLoadError`."""
    path = Path(path)
    source = label or str(path)
    try:
        text = (path / hf.CONFIG_FILE).read_text()[:1 << 20]
        config = hf.config_from_hf(json.loads(text), f"{source}/{hf.CONFIG_FILE}")
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{source}: cannot read {hf.CONFIG_FILE} ({e})") from None
    weights = hf.weights_file(path)
    raw, metadata = read_file(weights, label=f"{source}/{weights.name}")
    state, _ = unwrap(raw, source)
    check_state(state, config, source, f"its {hf.CONFIG_FILE}")
    return Checkpoint(state, config, source, hf.CONFIG_FILE, metadata)


def check_state(state: StateDict, config: SwinIRConfig, source: str, target: str = "its config") -> None:
    """Every tensor of ``state`` has the name and shape that ``config`` gives it, and finite values.

    Compared on the meta device, so a small file that claims a huge network costs nothing. The
    derived buffers (shift masks, position indices) are rebuilt from the config and not compared.
    Raises :class:`ModelLoadError` naming the first difference.
    """
    try:
        shapes = state_shapes(config)
    except (RuntimeError, ValueError) as e:  # a config within the bounds that still cannot be built
        raise ModelLoadError(f"{source}: its config cannot be built: {str(e).splitlines()[0]}") from None
    expected = {k: v for k, v in shapes.items() if not k.endswith(DERIVED_SUFFIXES)}
    given = {k: v for k, v in state.items() if not k.endswith(DERIVED_SUFFIXES)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    some = lambda keys: ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")  # noqa: E731
    if missing or unexpected:
        parts = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"]
                                                                     if unexpected else [])
        raise ModelLoadError(f"{source} does not fit {target}: {'; '.join(parts)}")
    for k, shape in expected.items():
        if tuple(given[k].shape) != shape:
            raise ModelLoadError(f"{source} does not fit {target}: {k} has shape {tuple(given[k].shape)}, "
                                 f"the config gives {shape}")
    check_finite(given, source)


def check_finite(state: StateDict, source: str) -> None:
    """Refuse weights holding NaN or Inf: they would make every output black, silently."""
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelLoadError(f"{source}: {k} holds NaN or Inf values; the file is damaged or comes from a "
                                 f"diverged training")


def save_safetensors(path: PathLike, state: StateDict, config: Optional[SwinIRConfig],
                     metadata: Optional[Dict[str, str]] = None) -> Path:
    """Write ``state`` to ``path`` with ``config`` (and ``metadata`` strings) in the header.

    ``config=None`` writes the tensors of another architecture as they are (its loader detects it again
    from their names and shapes), with ``metadata`` only.

    Written to a temp file first and renamed (:func:`atomic_write`), so that a reader never sees half
    a file.
    """
    from safetensors.torch import save

    from .files import atomic_write

    path = Path(path)
    # safetensors refuses views and tensors that share memory; clones of contiguous CPU data are safe.
    # Derived buffers (shift masks, position indices) are rebuilt on load: leaving them out makes
    # small models several times smaller, and any img_size loads.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()
               if not k.endswith(DERIVED_SUFFIXES)}
    if config is None:
        atomic_write(path, save({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()},
                                metadata={**(metadata or {}), "format": "pt"}))
        return path
    meta = {"task": config.task, **(metadata or {}), "format": "pt", CONFIG_KEY: json.dumps(config.to_dict())}
    atomic_write(path, save(tensors, metadata=meta))
    return path


def read_safetensors_metadata(path: PathLike, *, label: Optional[str] = None) -> Dict[str, str]:
    """The header metadata of a safetensors file, without reading its tensors."""
    return _read_safetensors(Path(path), label or str(path), tensors=False)[1]


def _read_safetensors(path: Path, name: str, tensors: bool) -> tuple[Optional[StateDict], Dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return ({k: f.get_tensor(k) for k in f.keys()} if tensors else None), dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"cannot read {name}: not a valid safetensors file ({e})") from None
