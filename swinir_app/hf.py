"""Swin2SR in Hugging Face transformers' layout: key names and ``config.json``, both ways.

transformers' ``Swin2SRForImageSuperResolution`` (the Hub's ``caidas/swin2SR-*`` models) holds the
official Swin2SR's weights under other names (``swin2sr.encoder.stages.i.layers.j.attention.self.query``
...), with ``qkv`` split into query, key and value. This module maps names and configs; it builds no
network and does not import transformers. The mapping is exact for every head the official code and
transformers share; ``ape`` and a ``3conv`` body (``conv_after_body``) have no transformers
equivalent and are refused.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from .errors import UserError
from .network import SwinIRConfig

PREFIX = "swin2sr."  # every body key of transformers' model starts with it
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# (official, transformers) for the body; {i}/{j} are the group and block, {rest} any suffix.
_BODY: List[Tuple[str, str]] = [
    ("conv_first.", "swin2sr.first_convolution."),
    ("patch_embed.proj.", "swin2sr.embeddings.patch_embeddings.projection."),
    ("patch_embed.norm.", "swin2sr.embeddings.patch_embeddings.layernorm."),
    ("norm.", "swin2sr.layernorm."),
    ("conv_after_body.", "swin2sr.conv_after_body."),
]
_BLOCK: List[Tuple[str, str]] = [
    ("attn.logit_scale", "attention.self.logit_scale"),
    ("attn.cpb_mlp.", "attention.self.continuous_position_bias_mlp."),
    ("attn.q_bias", "attention.self.query.bias"),
    ("attn.v_bias", "attention.self.value.bias"),
    ("attn.proj.", "attention.output.dense."),
    ("norm1.", "layernorm_before."),
    ("norm2.", "layernorm_after."),
    ("mlp.fc1.", "intermediate.dense."),
    ("mlp.fc2.", "output.dense."),
]
_GROUP: List[Tuple[str, str]] = [("conv.", "conv."), ("patch_embed.proj.", "patch_embed.projection.")]
# The heads: official prefix -> transformers prefix (upsample.N: see _upsample_name).
_HEADS: Dict[str, List[Tuple[str, str]]] = {
    "pixelshuffle": [("conv_before_upsample.0.", "upsample.conv_before_upsample."),
                     ("conv_last.", "upsample.final_convolution.")],
    "pixelshuffle_aux": [("conv_bicubic.", "upsample.conv_bicubic."),
                         ("conv_before_upsample.0.", "upsample.conv_before_upsample."),
                         ("conv_aux.", "upsample.conv_aux."), ("conv_after_aux.0.", "upsample.conv_after_aux.0."),
                         ("conv_last.", "upsample.final_convolution.")],
    "pixelshuffledirect": [("upsample.0.", "upsample.conv.")],
    "nearest+conv": [("conv_before_upsample.0.", "upsample.conv_before_upsample."),
                     ("conv_up1.", "upsample.conv_up1."), ("conv_up2.", "upsample.conv_up2."),
                     ("conv_hr.", "upsample.conv_hr."), ("conv_last.", "upsample.final_convolution.")],
    "": [("conv_last.", "final_convolution.")],
}
_BLOCK_KEY = re.compile(r"^layers\.(\d+)\.residual_group\.blocks\.(\d+)\.(.*)$")
_GROUP_KEY = re.compile(r"^layers\.(\d+)\.(.*)$")
_HF_BLOCK_KEY = re.compile(r"^swin2sr\.encoder\.stages\.(\d+)\.layers\.(\d+)\.(.*)$")
_HF_GROUP_KEY = re.compile(r"^swin2sr\.encoder\.stages\.(\d+)\.(.*)$")
_DERIVED = ("attn_mask", "relative_position_index", "relative_coords_table")


class LayoutError(UserError, ValueError):
    """A state dict or config with no counterpart in the other layout; one line."""


def is_hf_layout(state: Mapping[str, object]) -> bool:
    """Whether the keys are transformers' (``swin2sr.first_convolution.weight``, ...)."""
    return any(k.startswith(PREFIX + "first_convolution.") for k in state)


def _swap(key: str, pairs: List[Tuple[str, str]], reverse: bool) -> str | None:
    for a, b in pairs:
        src, dst = (b, a) if reverse else (a, b)
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def _upsample_name(index: int, scale: int) -> str:
    """transformers' name of the official ``upsample.<index>`` conv of the pixelshuffle heads."""
    return "upsample.upsample.convolution." if scale == 3 else f"upsample.upsample.convolution_{index // 2}."


def to_hf(state: Mapping[str, Tensor], config: SwinIRConfig) -> Dict[str, Tensor]:
    """Official Swin2SR names -> transformers names (qkv split in three). Derived buffers are left out:
    transformers computes them. Raises :class:`LayoutError` for what transformers cannot hold."""
    _check_convertible(config)
    out: Dict[str, Tensor] = {}
    head = _HEADS[config.upsampler]
    for key, value in state.items():
        if key.endswith(_DERIVED):
            continue
        m = _BLOCK_KEY.match(key)
        if m:
            i, j, rest = m.groups()
            base = f"swin2sr.encoder.stages.{i}.layers.{j}."
            if rest == "attn.qkv.weight":
                for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                    out[f"{base}attention.self.{name}.weight"] = part.clone()
                continue
            mapped = _swap(rest, _BLOCK, reverse=False)
        elif _GROUP_KEY.match(key):
            i, rest = _GROUP_KEY.match(key).groups()
            base, mapped = f"swin2sr.encoder.stages.{i}.", _swap(rest, _GROUP, reverse=False)
        else:
            base = ""
            mapped = _swap(key, _BODY, reverse=False) or _swap(key, head, reverse=False)
            up = re.match(r"^upsample\.(\d+)\.(.*)$", key)
            if mapped is None and up and config.upsampler in ("pixelshuffle", "pixelshuffle_aux"):
                mapped = _upsample_name(int(up.group(1)), config.upscale) + up.group(2)
        if mapped is None:
            raise LayoutError(f"{key} has no place in transformers' Swin2SR")
        out[base + mapped] = value
    return out


def from_hf(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """transformers names -> official Swin2SR names (query, key, value joined into qkv)."""
    out: Dict[str, Tensor] = {}
    qkv: Dict[str, Dict[str, Tensor]] = {}
    scale3 = any(k.startswith("upsample.upsample.convolution.") for k in state)
    for key, value in state.items():
        if key.endswith(_DERIVED):
            continue
        m = _HF_BLOCK_KEY.match(key)
        if m:
            i, j, rest = m.groups()
            base = f"layers.{i}.residual_group.blocks.{j}."
            w = re.fullmatch(r"attention\.self\.(query|key|value)\.weight", rest)
            if w:
                qkv.setdefault(base, {})[w.group(1)] = value
                continue
            mapped = _swap(rest, _BLOCK, reverse=True)
        elif _HF_GROUP_KEY.match(key):
            i, rest = _HF_GROUP_KEY.match(key).groups()
            base, mapped = f"layers.{i}.", _swap(rest, _GROUP, reverse=True)
        else:
            base = ""
            mapped = _swap(key, _BODY, reverse=True)
            if mapped is None:
                up = re.match(r"^upsample\.upsample\.convolution(?:_(\d+))?\.(.*)$", key)
                if up:
                    mapped = f"upsample.{0 if scale3 else 2 * int(up.group(1))}.{up.group(2)}"
            if mapped is None:
                for pairs in _HEADS.values():
                    mapped = _swap(key, pairs, reverse=True)
                    if mapped is not None:
                        break
        if mapped is None:
            raise LayoutError(f"{key} is not a key of transformers' Swin2SR")
        out[base + mapped] = value
    for base, parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise LayoutError(f"{base}: query, key and value weights must all be there")
        out[base + "attn.qkv.weight"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out


def _check_convertible(config: SwinIRConfig) -> None:
    if config.arch != "swin2sr":
        raise LayoutError("only Swin2SR has a transformers layout (Swin2SRForImageSuperResolution)")
    if config.ape:
        raise LayoutError("ape (absolute position embedding) differs in transformers' Swin2SR")
    if config.resi_connection != "1conv":
        raise LayoutError("transformers' Swin2SR has a 1conv conv_after_body only; this model is 3conv")
    if not config.patch_norm:
        raise LayoutError("transformers' Swin2SR always normalises the patch embedding (patch_norm)")
    if config.upsampler == "nearest+conv" and config.upscale != 4:
        raise LayoutError("transformers' nearest+conv head is x4 only")
    if config.num_feat != 64:
        raise LayoutError("transformers' Swin2SR heads have 64 features (num_feat)")


def config_to_hf(config: SwinIRConfig) -> dict:
    """transformers' ``config.json`` for ``config``."""
    _check_convertible(config)
    c = config
    return {"architectures": ["Swin2SRForImageSuperResolution"], "model_type": "swin2sr",
            "image_size": c.img_size, "patch_size": c.patch_size, "num_channels": c.in_chans,
            "num_channels_out": c.out_chans, "embed_dim": c.embed_dim, "depths": list(c.depths),
            "num_heads": list(c.num_heads), "window_size": c.window_size, "mlp_ratio": c.mlp_ratio,
            "qkv_bias": c.qkv_bias, "hidden_dropout_prob": c.drop_rate,
            "attention_probs_dropout_prob": c.attn_drop_rate,
            "drop_path_rate": c.drop_path_rate, "hidden_act": "gelu", "use_absolute_embeddings": False,
            "layer_norm_eps": 1e-5, "initializer_range": 0.02, "upscale": c.upscale, "img_range": c.img_range,
            "resi_connection": c.resi_connection, "upsampler": c.upsampler}


def config_from_hf(d: Mapping, source: str = "config.json") -> SwinIRConfig:
    """Our config from transformers' ``config.json`` (Swin2SRConfig's fields and defaults)."""
    if d.get("model_type") != "swin2sr":
        raise LayoutError(f"{source}: model_type is {d.get('model_type')!r}, not 'swin2sr'")
    if d.get("use_absolute_embeddings"):
        raise LayoutError(f"{source}: use_absolute_embeddings is not supported")
    if d.get("hidden_act", "gelu") != "gelu" or float(d.get("layer_norm_eps", 1e-5)) != 1e-5:
        raise LayoutError(f"{source}: only hidden_act gelu and layer_norm_eps 1e-5 match the official Swin2SR")
    try:
        return SwinIRConfig(
            arch="swin2sr", img_size=d.get("image_size", 64), patch_size=d.get("patch_size", 1),
            in_chans=d.get("num_channels", 3), out_chans=d.get("num_channels_out", d.get("num_channels", 3)),
            embed_dim=d.get("embed_dim", 180), depths=d.get("depths", [6] * 6), num_heads=d.get("num_heads", [6] * 6),
            window_size=d.get("window_size", 8), mlp_ratio=d.get("mlp_ratio", 2.0), qkv_bias=d.get("qkv_bias", True),
            drop_rate=d.get("hidden_dropout_prob", 0.0), attn_drop_rate=d.get("attention_probs_dropout_prob", 0.0),
            drop_path_rate=d.get("drop_path_rate", 0.1), upscale=d.get("upscale", 2), img_range=d.get("img_range", 1.0),
            resi_connection=d.get("resi_connection", "1conv"), upsampler=d.get("upsampler", "pixelshuffle"))
    except ValueError as e:
        raise LayoutError(f"{source}: {e}") from None


def is_hf_folder(path: Path) -> bool:
    """A transformers model folder: ``config.json`` (model_type swin2sr) beside its weights."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        return False
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("model_type") == "swin2sr"
    except (OSError, ValueError, AttributeError):
        return False


def weights_file(folder: Path) -> Path:
    """The folder's weights: ``model.safetensors``, else ``pytorch_model.bin``."""
    return next(Path(folder) / f for f in WEIGHT_FILES if (Path(folder) / f).is_file())


def write_folder(folder: Path, state: Mapping[str, Tensor], config: SwinIRConfig) -> Path:
    """A folder that ``Swin2SRForImageSuperResolution.from_pretrained(folder)`` loads: ``config.json`` and
    ``model.safetensors``, each written atomically."""
    from safetensors.torch import save

    from .files import atomic_write

    hf_state = {k: v.detach().to("cpu").contiguous().clone() for k, v in to_hf(state, config).items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "model.safetensors", save(hf_state, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_FILE, (json.dumps(config_to_hf(config), indent=2) + "\n").encode())
    return folder
