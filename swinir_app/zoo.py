"""The model zoo and ``load_model``: zoo names, files (any architecture) and training folders to ready models.

Official SwinIR releases are downloaded on first use into a cache (``~/.cache/swinir_app``, or
``$SWINIR_APP_HOME``, or an explicit ``weights_dir``) and verified before they are kept. Bundled
models are the ``*.safetensors`` files in ``swinir_app/weights/``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .checkpoint import (CONFIG_KEY, Checkpoint, ModelLoadError, PathLike, checkpoint_from_raw, config_from_metadata,
                         load_checkpoint, load_hf_folder, read_file, read_safetensors_metadata, unwrap_tensors)
from .downloads import download
from .files import atomic_write
from .hf import is_hf_folder
from .mixing import check_weight, mix_into, mixed
from .network import SwinIR, SwinIRConfig, build_network

__all__ = ["MIX_PAIRS", "ZOO", "MixPartner", "ZooEntry", "ModelLoadError", "all_entries", "build_model",
           "bundled_entries", "cache_problem", "check_mix", "download", "find_entry", "is_cached", "latest_weights",
           "load_model", "local_path", "mix_models", "mix_partner", "param_count", "parse_mix", "resolve",
           "weights_home"]

OFFICIAL_URL = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
SWIN2SR_URL = "https://github.com/mv-lab/swin2sr/releases/download/v0.0.1/"
DAT_URL = "https://huggingface.co/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT/"
DAT_SHA256 = {2: "7760aa96e4ee77e29d4f89c3a4486200042e019461fdb8aa286f49aa00b89b51",
              3: "581973e02c06f90d4eb90acf743ec9604f56f3c2c6f9e1e2c2b38ded1f80d197",
              4: "391a6ce69899dff5ea3214557e9d585608254579217169faf3d4c353caff049e"}
HAT_PAGE = "the Google Drive links of https://github.com/XPixelGroup/HAT"
HOME_ENV = "SWINIR_APP_HOME"
OPENMODELDB_PREFIX = "openmodeldb:"  # a model spec "openmodeldb:ID": OpenModelDB's model ID (openmodeldb.py)
DEFAULT_HOME = "~/.cache/swinir_app"
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"

@dataclass(frozen=True)
class ZooEntry:
    """A named model: an official release (``url``) or a bundled file (``path``)."""

    name: str
    filename: str
    config: SwinIRConfig
    task: str
    url: Optional[str] = None
    sha256: Optional[str] = None  # pinned where known; checked on download
    path: Optional[Path] = None  # bundled models: the file itself, never downloaded
    by_hand: Optional[str] = None  # no stable URL (HAT's Google Drive files): where users get the file
    description: str = ""  # bundled models: what the model is for, in a few words (from its metadata)

    @property
    def manual(self) -> bool:
        """Known by name, but placed in the weights folder by hand: never downloaded."""
        return self.by_hand is not None

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def names(self) -> tuple:
        """Every spelling that selects this entry: the short name, the file name and its stem."""
        return self.name, self.filename, Path(self.filename).stem


def _by_hand(name: str, filename: str, preset: str) -> ZooEntry:
    config = SwinIRConfig.preset(preset)
    return ZooEntry(name, filename, config, config.task, by_hand=HAT_PAGE)


def _official(name: str, filename: str, preset: str, img_size: int, base: str = OFFICIAL_URL) -> ZooEntry:
    config = SwinIRConfig.preset(preset, img_size=img_size)
    return ZooEntry(name, filename, config, config.task, url=base + filename)


# The official SwinIR release v0.0 (file names and settings of the official main_test_swinir.py).
_OFFICIAL = [
    *[_official(f"classical-x{k}", f"001_classicalSR_DF2K_s64w8_SwinIR-M_x{k}.pth", f"classical-x{k}", 64)
      for k in (2, 3, 4, 8)],
    *[_official(f"classical-div2k-x{k}", f"001_classicalSR_DIV2K_s48w8_SwinIR-M_x{k}.pth", f"classical-x{k}", 48)
      for k in (2, 3, 4, 8)],
    *[_official(f"lightweight-x{k}", f"002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{k}.pth", f"lightweight-x{k}", 64)
      for k in (2, 3, 4)],
    _official("real-x2", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x2_GAN.pth", "real-x2", 64),
    _official("real-x4", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth", "real-x4", 64),
    _official("real-x4-large", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", "real-x4-large", 64),
    _official("real-x4-psnr", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth", "real-x4", 64),
    *[_official(f"gray-dn-{n}", f"004_grayDN_DFWB_s128w8_SwinIR-M_noise{n}.pth", "gray-dn", 128) for n in (15, 25, 50)],
    *[_official(f"color-dn-{n}", f"005_colorDN_DFWB_s128w8_SwinIR-M_noise{n}.pth", "color-dn", 128)
      for n in (15, 25, 50)],
    *[_official(f"gray-jpeg-{q}", f"006_CAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth", "gray-jpeg", 126)
      for q in (10, 20, 30, 40)],
    *[_official(f"color-jpeg-{q}", f"006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg{q}.pth", "color-jpeg", 126)
      for q in (10, 20, 30, 40)],
    # The official Swin2SR release v0.0.1 (settings of its main_test_swin2sr.py).
    _official("swin2sr-classical-x2", "Swin2SR_ClassicalSR_X2_64.pth", "swin2sr-classical-x2", 64, SWIN2SR_URL),
    _official("swin2sr-classical-x4", "Swin2SR_ClassicalSR_X4_64.pth", "swin2sr-classical-x4", 64, SWIN2SR_URL),
    _official("swin2sr-lightweight-x2", "Swin2SR_Lightweight_X2_64.pth", "swin2sr-lightweight-x2", 64, SWIN2SR_URL),
    _official("swin2sr-compressed-x4", "Swin2SR_CompressedSR_X4_48.pth", "swin2sr-compressed-x4", 48, SWIN2SR_URL),
    _official("swin2sr-real-x4-psnr", "Swin2SR_RealworldSR_X4_64_BSRGAN_PSNR.pth", "swin2sr-real-x4", 64, SWIN2SR_URL),
    _official("swin2sr-gray-jpeg", "Swin2SR_Jpeg_dynamic.pth", "swin2sr-gray-jpeg", 126, SWIN2SR_URL),
    # HAT's released files (params_ema dicts on Google Drive: no stable URL): known by name, placed by hand.
    *[_by_hand(f"hat-x{k}", f"HAT_SRx{k}.pth", f"hat-x{k}") for k in (2, 3, 4)],
    *[_by_hand(f"hat-x{k}-imagenet", f"HAT_SRx{k}_ImageNet-pretrain.pth", f"hat-x{k}") for k in (2, 3, 4)],
    *[_by_hand(f"hat-s-x{k}", f"HAT-S_SRx{k}.pth", f"hat-s-x{k}") for k in (2, 3, 4)],
    *[_by_hand(f"hat-l-x{k}", f"HAT-L_SRx{k}_ImageNet-pretrain.pth", f"hat-l-x{k}") for k in (2, 3, 4)],
    _by_hand("real-hat-gan-x4", "Real_HAT_GAN_SRx4.pth", "real-hat-gan-x4"),
    _by_hand("real-hat-gan-x4-sharper", "Real_HAT_GAN_sharper.pth", "real-hat-gan-x4"),
    # DAT's released models (zhengchen1999/DAT, code Apache-2.0; Google Drive upstream), from the Hugging Face
    # mirror that AUTOMATIC1111's web UI downloads them from, with its pinned digests.
    *[ZooEntry(f"dat-x{k}", f"DAT_x{k}.pth", SwinIRConfig.preset(f"dat-x{k}"), "sr", url=DAT_URL + f"DAT_x{k}.pth",
               sha256=DAT_SHA256[k]) for k in (2, 3, 4)],
]
ZOO: Dict[str, ZooEntry] = {e.name: e for e in _OFFICIAL}


def bundled_entries() -> List[ZooEntry]:
    """The models shipped in ``BUNDLED_DIR`` (none while it does not exist), named by their metadata."""
    if not BUNDLED_DIR.is_dir():
        return []
    found = []
    for path in sorted(BUNDLED_DIR.glob("*.safetensors")):
        meta = read_safetensors_metadata(path)
        # Only a file not written by save_safetensors needs its tensors read to infer the config.
        config = config_from_metadata(meta, str(path)) or load_checkpoint(path).config
        found.append(ZooEntry(meta.get("name", path.stem), path.name, config, meta.get("task", config.task),
                              path=path, description=meta.get("description", "")))
    return found


def all_entries() -> List[ZooEntry]:
    """The official releases, then the bundled models."""
    return [*ZOO.values(), *bundled_entries()]


def find_entry(spec: str) -> Optional[ZooEntry]:
    """The entry that ``spec`` names (short name, file name or file stem; any case), if any."""
    wanted = spec.lower()

    def matches(e: ZooEntry) -> bool:
        return wanted in (n.lower() for n in e.names)

    # Official names first: a damaged bundled file must not stand in the way of the others.
    return next(filter(matches, ZOO.values()), None) or next(filter(matches, bundled_entries()), None)


def weights_home(weights_dir: Optional[PathLike] = None) -> Path:
    """The weights cache: ``weights_dir``, else ``$SWINIR_APP_HOME``, else ``~/.cache/swinir_app``."""
    return Path(weights_dir or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def local_path(entry: ZooEntry, weights_dir: Optional[PathLike] = None) -> Path:
    """Where the entry's file is, or will be once downloaded."""
    return entry.path or weights_home(weights_dir) / entry.filename


def is_cached(entry: ZooEntry, weights_dir: Optional[PathLike] = None) -> bool:
    """Whether the entry's file is there (:func:`cache_problem` says whether it loads)."""
    return local_path(entry, weights_dir).is_file()


_VERDICTS: Dict[tuple, Optional[str]] = {}  # cache_problem's verdicts, by entry and file identity
_MAX_VERDICTS = 256
VERDICTS_FILE = ".verdicts.json"  # cache_problem's verdicts, kept beside the files, for the next process


def _entry_key(entry: ZooEntry) -> str:
    """The entry as a verdict depends on it (its name and what its file is checked against)."""
    what = repr((entry.filename, entry.config, entry.url, entry.sha256, entry.by_hand))
    return f"{entry.name}:{hashlib.sha256(what.encode()).hexdigest()[:16]}"


def _stored_verdicts(folder: Path) -> Dict[str, list]:
    """The verdicts of earlier processes on the files of ``folder`` (nothing if unreadable)."""
    try:
        stored = json.loads((folder / VERDICTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _store_verdict(folder: Path, entry: ZooEntry, key: tuple, verdict: Optional[str]) -> None:
    stored = _stored_verdicts(folder)
    record = [list(key[1:]), verdict]
    if stored.get(_entry_key(entry)) == record:
        return
    stored[_entry_key(entry)] = record
    try:
        atomic_write(folder / VERDICTS_FILE, json.dumps(stored, indent=0).encode())
    except OSError:
        pass  # a read-only cache: the file is checked again next time


def _file_key(path: Path) -> Optional[tuple]:
    """What identifies a file's contents without reading it: path, size, mtime_ns (and inode and ctime_ns,
    which a replacement that keeps size and mtime still changes); None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def cache_problem(entry: ZooEntry, weights_dir: Optional[PathLike] = None) -> Optional[str]:
    """Why the entry's file, where it is there, cannot be loaded as this entry (one line, with what to do
    about it); None for a file that loads, or no file. Never downloads.

    The first call reads the whole file (its values are checked); the verdict is remembered for the file as
    it is (path, size, mtime, inode, ctime), in the process and in ``VERDICTS_FILE`` beside it, so later
    calls (another ``models`` listing, in this process or the next) do not read an unchanged file again,
    and a changed one is checked again. Loading the model always checks the file in full.
    """
    dest = local_path(entry, weights_dir)
    if not dest.is_file():
        return None
    key = _file_key(dest)
    if key is not None and (entry, *key) in _VERDICTS:
        return _VERDICTS[(entry, *key)]
    if key is not None:
        record = _stored_verdicts(dest.parent).get(_entry_key(entry))
        if isinstance(record, list) and len(record) == 2 and record[0] == list(key[1:]) \
                and (record[1] is None or isinstance(record[1], str)):
            _VERDICTS[(entry, *key)] = record[1]
            return record[1]
    try:
        _cached_checkpoint(entry, dest)
        verdict = None
    except ModelLoadError as e:
        verdict = str(e)
    if key is not None and _file_key(dest) == key:  # not changed while it was read: the verdict is its own
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.pop(next(iter(_VERDICTS)))  # the oldest
        _VERDICTS[(entry, *key)] = verdict
        _store_verdict(dest.parent, entry, key, verdict)
    return verdict


# ---------------------------------------------------------------------------------------------
# Specs to checkpoints to models


def _check_entry(entry: ZooEntry, ckpt: Checkpoint, what: str, hint: str) -> Checkpoint:
    """Refuse a file whose config is not the entry's: a wrong or damaged download or cache file."""
    got, want = ckpt.config, entry.config
    diffs = [f"{f.name} {getattr(got, f.name)!r} instead of {getattr(want, f.name)!r}"
             for f in dataclasses.fields(SwinIRConfig) if getattr(got, f.name) != getattr(want, f.name)]
    if diffs:
        raise ModelLoadError(f"{what} is not {entry.name}: it has {', '.join(diffs)}; {hint}")
    return ckpt


def _replace_hint(entry: ZooEntry) -> str:
    """What to do about a file that is not the entry's: only official releases are downloaded again."""
    if entry.manual:
        return f"replace it with {entry.filename} from {entry.by_hand} (this file is never downloaded)"
    if entry.url is None:
        return "the bundled file is damaged; reinstall swinir_app"
    return "delete it to download it again"


def _entry_checkpoint(entry: ZooEntry, weights_dir: Optional[PathLike]) -> Checkpoint:
    dest = local_path(entry, weights_dir)
    if dest.is_file():
        return _cached_checkpoint(entry, dest)
    if entry.manual:
        raise ModelLoadError(f"{entry.name}: {entry.filename} cannot be downloaded automatically (its authors share it "
                             f"through {entry.by_hand}); place it at {dest}")
    if entry.url is None:
        raise ModelLoadError(f"bundled model {entry.name} is missing: {dest}")

    def verify(tmp: Path) -> Checkpoint:
        label = f"downloaded {entry.url}"
        ckpt = load_checkpoint(tmp, label=label)
        return _check_entry(entry, dataclasses.replace(ckpt, source=str(dest)), label, "nothing was cached")

    return download(entry.url, dest, verify, sha256=entry.sha256)


def _cached_checkpoint(entry: ZooEntry, dest: Path) -> Checkpoint:
    """The entry's file that is there, read and checked against the entry; :class:`ModelLoadError` says
    what to do about a file that does not load."""
    try:
        ckpt = load_checkpoint(dest)
    except ModelLoadError as e:
        raise ModelLoadError(f"{e}; {_replace_hint(entry)}") from None
    return _check_entry(entry, ckpt, str(dest), _replace_hint(entry))


_BASICSR_NET_G = re.compile(r"net_g_(\d+|latest)\.(pth|safetensors)")
_KAIR_NET = re.compile(r"(\d+)_([EG])\.pth")  # KAIR: <iter>_G.pth, and <iter>_E.pth for the EMA copy


def latest_weights(folder: PathLike) -> Path:
    """The newest generator of a training folder (``models/`` inside it, or the folder itself).

    BasicSR: ``net_g_latest.pth``, else the highest ``net_g_<iter>.pth`` (its ``params_ema`` is
    preferred when loading). KAIR: the highest ``<iter>_E.pth`` (EMA), else ``<iter>_G.pth``.
    """
    folder = Path(folder)
    ranked = []
    for directory in (folder / "models", folder):
        for path in directory.glob("*.*") if directory.is_dir() else ():
            if m := _BASICSR_NET_G.fullmatch(path.name):
                ranked.append(((math.inf if m.group(1) == "latest" else int(m.group(1)), 1), path))
            elif m := _KAIR_NET.fullmatch(path.name):
                ranked.append(((int(m.group(1)), m.group(2) == "E"), path))
        if ranked:
            return max(ranked, key=lambda r: r[0])[1]
    raise ModelLoadError(f"{folder} is a folder without weights: expected models/net_g_<iter>.pth (BasicSR) "
                         f"or models/<iter>_G.pth (KAIR)")


def spec_file(spec: PathLike, weights_dir: Optional[PathLike] = None) -> PathLike:
    """``spec`` itself, except ``openmodeldb:ID``: the file of OpenModelDB's model ``ID`` in the weights home,
    downloaded on first use (see :mod:`swinir_app.openmodeldb`). Raises :class:`ModelLoadError`."""
    if isinstance(spec, str) and spec[:len(OPENMODELDB_PREFIX)].lower() == OPENMODELDB_PREFIX:
        from .openmodeldb import model_file
        return model_file(spec[len(OPENMODELDB_PREFIX):], weights_home(weights_dir), download)
    return spec


def resolve(spec: PathLike, *, weights_dir: Optional[PathLike] = None, img_range: Optional[float] = None,
            conv_scale: Optional[float] = None) -> Checkpoint:
    """The checkpoint that ``spec`` names: an existing file, training folder or transformers Swin2SR folder,
    else a zoo name.

    Zoo files are downloaded on first use. ``img_range`` (and, for HAT, ``conv_scale``: what a state
    dict cannot tell) override the stored or inferred value. Raises :class:`ModelLoadError`.
    """
    spec = spec_file(spec, weights_dir)  # openmodeldb:ID -> its downloaded file
    path = Path(spec).expanduser()
    if path.is_dir() and is_hf_folder(path):
        ckpt = load_hf_folder(path)
    elif path.is_dir() or path.is_file():
        ckpt = load_file(latest_weights(path) if path.is_dir() else path, other=False)
    elif entry := find_entry(str(spec)):
        ckpt = _entry_checkpoint(entry, weights_dir)
    else:
        raise ModelLoadError(_unknown(str(spec)))
    return _override(ckpt, img_range, conv_scale)


def _override(ckpt: Checkpoint, img_range: Optional[float], conv_scale: Optional[float]) -> Checkpoint:
    overrides = {k: v for k, v in (("img_range", img_range), ("conv_scale", conv_scale)) if v is not None}
    if "conv_scale" in overrides and ckpt.config.arch != "hat":
        raise ModelLoadError(f"{ckpt.source}: conv_scale is a HAT setting, and this is a {ckpt.config.arch} model")
    if overrides:
        try:
            ckpt = dataclasses.replace(ckpt, config=ckpt.config.replace(**overrides))
        except ValueError as e:
            raise ModelLoadError(f"{' and '.join(overrides)} override for {ckpt.source}: {e}") from None
    return ckpt


def unknown_spec(spec: PathLike) -> Optional[str]:
    """Why ``spec`` names no model (no such file, folder or zoo name), without loading or downloading
    anything; None if it names one."""
    if isinstance(spec, str) and spec[:len(OPENMODELDB_PREFIX)].lower() == OPENMODELDB_PREFIX:
        from .openmodeldb import unknown
        return unknown(spec[len(OPENMODELDB_PREFIX):], weights_home())
    if Path(spec).expanduser().exists() or find_entry(str(spec)) is not None:
        return None
    return _unknown(str(spec))


def _unknown(spec: str) -> str:
    if os.sep in spec or "/" in spec or Path(spec).suffix in (".pth", ".pt", ".ckpt", ".safetensors"):
        return f"no such file or folder: {spec}"
    names = [e.name for e in all_entries()]
    close = difflib.get_close_matches(spec, names, n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"unknown model {spec!r}: not a file, a folder or a zoo name; {hint}"
            f"list the zoo with swinir-app models")


def load_file(path: PathLike, *, label: Optional[str] = None, other: bool = True) -> Union[Checkpoint, nn.Module]:
    """A model file, read once and safely (:func:`~swinir_app.checkpoint.read_file`): the checkpoint of a
    SwinIR, Swin2SR, HAT or DAT, else (``other``) the :class:`~swinir_app.spandrel_loader.SpandrelModel` of
    an architecture that spandrel recognises.

    With ``other=False`` a file of another architecture is refused, in one line naming it: what needs a
    SwinIR-family config (convert, export, training from pretrained weights) asks this way.
    Raises :class:`ModelLoadError`.
    """
    source = label or str(path)
    raw, metadata = read_file(path, label=source)
    try:
        return checkpoint_from_raw(raw, metadata, source)
    except ModelLoadError as native:
        if CONFIG_KEY in metadata or unwrap_tensors(raw, source)[1] is not None:
            raise  # it says it is a SwinIR-family checkpoint: why that one does not load is the answer
        from .spandrel_loader import identify, load_spandrel
        if not other:
            arch = identify(raw, source, native_error=native)[1]
            raise ModelLoadError(f"{source} is a {arch} model, not a SwinIR, Swin2SR, HAT or DAT checkpoint: other "
                                 f"architectures run through spandrel (upscale, the web app, Restorer, load_model) "
                                 f"but have no config to export or train from (convert writes them as "
                                 f".safetensors)") from None
        return load_spandrel(raw, source, native_error=native, path=Path(path))


def build_model(ckpt: Checkpoint, device: torch.device | str = "cpu") -> SwinIR:
    """A SwinIR or Swin2SR in eval mode built from ``ckpt.config``, holding exactly ``ckpt.state_dict``."""
    model = build_network(ckpt.config)
    try:
        missing, unexpected = model.load_state_dict(ckpt.state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise ModelLoadError(f"{ckpt.source} does not fit its {ckpt.config_source} config: {first}") from None
    if missing or unexpected:
        some = lambda keys: ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")  # noqa: E731
        parts = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"]
                                                                     if unexpected else [])
        raise ModelLoadError(f"{ckpt.source} does not fit its {ckpt.config_source} config: {'; '.join(parts)}")
    return model.eval().to(device)


def load_model(spec: PathLike, device: torch.device | str = "cpu", *, img_range: Optional[float] = None,
               conv_scale: Optional[float] = None, weights_dir: Optional[PathLike] = None,
               mix: Optional[Tuple[Union[PathLike, nn.Module], float]] = None) -> nn.Module:
    """A model in eval mode with its weights, from a zoo name, a checkpoint file or a training folder: an
    ``nn.Module`` that declares its ``capabilities`` (what :class:`~swinir_app.engine.Restorer` reads).

    A SwinIR, Swin2SR, HAT or DAT file builds the native network: ``model.config`` holds every
    hyperparameter, read from the file or inferred from its state dict; ``img_range`` and (HAT)
    ``conv_scale`` override what a state dict cannot tell. A file (.pth, .pt, .ckpt, .safetensors, .bin) of
    another architecture that spandrel recognises loads as a
    :class:`~swinir_app.spandrel_loader.SpandrelModel`, whose ``config`` is None (``info`` says what it is).
    An exported ``.onnx`` graph loads as a :class:`~swinir_app.onnx_runtime.OnnxModel` run by ONNX Runtime.
    ``mix=(spec_b, w)`` makes the weights (1 - w) x this model + w x ``spec_b``'s (a spec or a loaded model),
    here, once (see :func:`mix_models`).
    Raises :class:`ModelLoadError` (a one-line message) when the spec cannot be loaded or the two models cannot
    be mixed, :class:`~swinir_app.errors.SettingError` for a mix weight outside [0, 1].
    """
    if mix is not None:
        other, w = check_mix(mix)
        model = load_model(spec, "cpu", img_range=img_range, conv_scale=conv_scale, weights_dir=weights_dir)
        b = other if isinstance(other, nn.Module) else load_model(other, "cpu", weights_dir=weights_dir)
        return mix_into(model, b, w, (_label(spec), _label(other))).to(device)
    spec = spec_file(spec, weights_dir)  # openmodeldb:ID -> its downloaded file
    if str(spec).lower().endswith(".onnx"):
        if img_range is not None or conv_scale is not None:
            raise ModelLoadError(f"{spec}: img_range and conv_scale are fixed inside an exported graph")
        from .onnx_runtime import load_onnx  # onnxruntime only when a graph is asked for
        return load_onnx(spec).to(device)
    path = Path(spec).expanduser()
    if path.is_file() or path.is_dir() and not is_hf_folder(path):
        loaded = load_file(latest_weights(path) if path.is_dir() else path)
        if isinstance(loaded, Checkpoint):
            return build_model(_override(loaded, img_range, conv_scale), device)
        if img_range is not None or conv_scale is not None:
            raise ModelLoadError(f"{loaded.path}: img_range and conv_scale are SwinIR-family settings, and this is "
                                 f"a {loaded.architecture} model")
        return loaded.to(device)
    return build_model(resolve(spec, weights_dir=weights_dir, img_range=img_range, conv_scale=conv_scale), device)


def param_count(config: SwinIRConfig) -> int:
    """The number of parameters of ``SwinIR(config)``, counted on the meta device (nothing allocated)."""
    if not config.ape and config.img_size >= config.window_size:  # then img_size changes no parameter
        config = config.replace(img_size=config.window_size, drop_path_rate=0.0)
    return _param_count(config)


@functools.lru_cache(maxsize=None)
def _param_count(config: SwinIRConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_network(config).parameters())


# ---------------------------------------------------------------------------------------------
# Mixing two models: a strength between them


@dataclass(frozen=True)
class MixPartner:
    """A model's mixing partner, as a front end shows it: a slider from ``model_label`` (w = 0: the model) to
    ``partner_label`` (w = 1: the partner)."""

    model: str
    partner: str
    model_label: str
    partner_label: str

    @property
    def slider(self) -> str:
        return f"{self.model_label} \u2194 {self.partner_label}"


# Pairs of one architecture and config that are worth mixing, (model, its label, partner, its label): the
# bundled pair keeps detail (and noise) at one end and cleans at the other. Either model finds the other.
MIX_PAIRS = (("bundled-x4", "detail", "bundled-real-x4", "clean"),)


def mix_partner(spec: PathLike) -> Optional[MixPartner]:
    """The partner of the model ``spec`` names (a zoo name or file name, any case) in :data:`MIX_PAIRS`,
    oriented from it (``model`` is the zoo name of ``spec``); None if it has none."""
    entry = find_entry(str(spec)) if isinstance(spec, (str, os.PathLike)) else None
    name = entry.name if entry else str(spec)
    for a, a_label, b, b_label in MIX_PAIRS:
        if name == a:
            return MixPartner(a, b, a_label, b_label)
        if name == b:
            return MixPartner(b, a, b_label, a_label)
    return None


def parse_mix(text: str) -> Tuple[str, float]:
    """``MODEL=W`` as users write it (``bundled-real-x4=0.3``) -> (MODEL, W); the last ``=`` splits, so a
    file name may hold one. Raises :class:`~swinir_app.errors.SettingError` in one line."""
    from .errors import SettingError
    spec, sep, weight = str(text).rpartition("=")
    try:
        w = float(weight)
    except ValueError:
        w = None
    if not sep or not spec.strip() or w is None:
        raise SettingError("mix", text, "must be MODEL=W, e.g. bundled-real-x4=0.3 (W from 0 to 1)")
    try:
        return spec.strip(), check_weight(w)
    except SettingError as e:
        raise SettingError("mix", text, e.reason) from None


def check_mix(mix) -> Tuple[Union[PathLike, nn.Module], float]:
    """A ``mix`` argument, ``(spec or model, w)`` or ``"MODEL=W"``, checked before anything is loaded."""
    from .errors import SettingError
    if isinstance(mix, str):
        return parse_mix(mix)
    if not isinstance(mix, (tuple, list)) or len(mix) != 2:
        raise SettingError("mix", mix, "must be (model, weight), e.g. ('bundled-real-x4', 0.3)")
    return mix[0], check_weight(mix[1])


def _label(spec) -> str:
    if isinstance(spec, nn.Module):
        path = getattr(spec, "path", None)
        return path.name if path is not None else f"the {type(spec).__name__}"
    return str(spec)


def mix_models(model_a: Union[PathLike, nn.Module], model_b: Union[PathLike, nn.Module], w: float, *,
               weights_dir: Optional[PathLike] = None) -> nn.Module:
    """A model whose weights are (1 - w) x ``model_a`` + w x ``model_b`` (specs or loaded models; a loaded
    ``model_a`` is copied, never changed): w = 0 gives ``model_a``'s weights, w = 1 ``model_b``'s, exactly.

    The two must be of the same architecture and config (native networks: equal ``model.config``; others:
    the same architecture and every state-dict key and shape). Parameters are mixed, and buffers that
    differ (a batch norm's statistics); the derived ones (attention masks, position indices) are kept.

    Raises:
        ModelLoadError: one line naming what differs ("bundled-x4 and color-dn-15 cannot be mixed: they
            differ in upscale (4 vs 1), ..."), or a spec that does not load.
        SettingError: w outside [0, 1].
    """
    w = check_weight(w)
    labels = (_label(model_a), _label(model_b))
    b = model_b if isinstance(model_b, nn.Module) else load_model(model_b, weights_dir=weights_dir)
    if isinstance(model_a, nn.Module):
        return mixed(model_a, b, w, labels)
    return mix_into(load_model(model_a, weights_dir=weights_dir), b, w, labels)
