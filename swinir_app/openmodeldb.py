"""OpenModelDB, the community's model zoo: its index, searched offline, and ``openmodeldb:ID`` model specs.

The index is the one JSON file that openmodeldb.info publishes (``/api/v1/models.json``: every
``data/models/<ID>.json`` of the ``OpenModelDB/open-model-database`` repository, keyed by ``ID``). It is
fetched once into ``<weights home>/openmodeldb/index.json`` (its mtime is the fetch date) and read from
there afterwards; ``swinir-app models --refresh`` fetches it again. ``$SWINIR_APP_OPENMODELDB_URL`` sets
the site (or the index URL itself, if it ends in ``.json``): tests point it at 127.0.0.1.

A model's file goes to ``<weights home>/openmodeldb/<ID>.<pth|safetensors>``. A resource that downloads
directly (a GitHub release or raw file, Hugging Face, any https URL of a file) is fetched with the zoo's
download code (``.part`` file, retries, sha256 checked before the file is kept), which the zoo passes in:
this module sits below the zoo and imports nothing of it. A resource that is a page (Google Drive, Mega,
OneDrive, Dropbox, ...) is refused with one line naming the page, the file name and the folder. A model
whose architecture this product cannot run is refused before anything is downloaded.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .checkpoint import ModelLoadError

__all__ = ["PREFIX", "URL_ENV", "DEFAULT_URL", "Model", "Resource", "cached_models", "find", "folder",
           "index_date", "index_url", "load_index", "model_file", "runs_here", "search", "spandrel_id"]

PREFIX = "openmodeldb:"
URL_ENV = "SWINIR_APP_OPENMODELDB_URL"
DEFAULT_URL = "https://openmodeldb.info"
INDEX_PATH = "/api/v1/models.json"  # what the site's build (scripts/generate-api.ts) writes
FOLDER = "openmodeldb"
INDEX_FILE = "index.json"
MODEL_TYPES = ("safetensors", "pth")  # the PyTorch resources, in order of preference
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,199}")  # also a safe file name: no separators, no leading dot

# The architectures this product runs with its own networks (OpenModelDB's ids).
NATIVE = {"swinir": "SwinIR", "swin2sr": "Swin2SR", "hat": "HAT", "dat": "DAT"}
# OpenModelDB's architecture ids (data/architectures.json) to the ids of spandrel's architectures, where
# the names differ; others are matched by their name without case, '-', '_' or '+'.
SPANDREL_IDS = {
    "esrgan": "ESRGAN", "esrgan+": "ESRGAN", "compact": "Compact", "span": "SPAN", "realplksr": "PLKSR",
    "realplksr-dysample": "PLKSR", "plksr": "PLKSR", "omnisr": "OmniSR", "safmn": "SAFMN", "dat": "DAT",
    "rgt": "RGT", "atd": "ATD", "drct": "DRCT", "mosr": "MoSR", "rcan": "RCAN", "cugan": "RealCUGAN",
    "real-cugan": "RealCUGAN", "craft": "CRAFT", "dctlsa": "DCTLSA", "ditn": "DITN", "grl": "GRL",
    "swift-srgan": "SwiftSRGAN", "scunet": "SCUNet", "dncnn": "DnCNN", "drunet": "DRUNet", "fbcnn": "FBCNN",
    "nafnet": "NAFNet", "swinir": "SwinIR", "swin2sr": "Swin2SR", "hat": "HAT",
}
# Hosts whose links are pages (a viewer, a captcha, a script), not the file itself.
PAGE_HOSTS = ("drive.google.com", "docs.google.com", "mega.nz", "mega.io", "1drv.ms", "onedrive.live.com",
              "dropbox.com", "mediafire.com", "pcloud.link", "icedrive.net", "drive.proton.me", "1fichier.com",
              "zippyshare.com", "lbry.tv", "odysee.com", "we.tl", "wetransfer.com")
FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


@dataclass(frozen=True)
class Resource:
    platform: str  # "pytorch" or "onnx"
    type: str  # "pth", "safetensors" or "onnx"
    urls: Tuple[str, ...]
    sha256: Optional[str] = None
    size: Optional[int] = None


@dataclass(frozen=True)
class Model:
    """One model of the index (the fields of OpenModelDB's ``data/models/<ID>.json`` this product uses)."""

    id: str
    name: str
    author: str
    architecture: str  # OpenModelDB's architecture id: "esrgan", "compact", "dat", ...
    scale: int
    license: Optional[str]
    tags: Tuple[str, ...]
    description: str
    resources: Tuple[Resource, ...]
    size: Tuple[str, ...] = ()  # the architecture's variant ("DAT2", "SwinIR-M", ...)

    @property
    def spec(self) -> str:
        return PREFIX + self.id

    @property
    def summary(self) -> str:
        """The description's first sentence or line, without Markdown links and emphasis."""
        return one_line(self.description)

    def text(self) -> str:
        """What a search looks in: id, name, author, architecture, tags and description."""
        return " ".join([self.id, self.name, self.author, self.architecture, *self.size, *self.tags,
                         self.description]).lower()


def one_line(markdown: str, width: int = 80) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown or "")  # [text](url) -> text
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    text = re.sub(r"[*_`#>]+", "", text)
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    line = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"


def _model(model_id: str, d: Dict[str, Any]) -> Model:
    author = d.get("author") or ""
    resources = []
    for r in d.get("resources") or ():
        if not isinstance(r, dict):
            continue
        urls = tuple(u for u in r.get("urls") or () if isinstance(u, str))
        size = r.get("size")
        resources.append(Resource(str(r.get("platform", "")), str(r.get("type", "")), urls,
                                  r.get("sha256") or None, size if isinstance(size, int) else None))
    scale = d.get("scale")
    return Model(model_id, str(d.get("name") or model_id),
                 ", ".join(map(str, author)) if isinstance(author, list) else str(author),
                 str(d.get("architecture") or "").lower(), scale if isinstance(scale, int) else 0,
                 d.get("license") or None, tuple(map(str, d.get("tags") or ())), str(d.get("description") or ""),
                 tuple(resources), tuple(map(str, d.get("size") or ())))


def parse_index(data: Any) -> Dict[str, Model]:
    """The models of an index: the site's ``{ID: model}`` object, or a list of models with an ``id`` each.
    Entries whose id is no safe file name are left out. Raises ``ValueError`` for anything else."""
    if isinstance(data, list):
        data = {d.get("id"): d for d in data if isinstance(d, dict)}
    if not isinstance(data, dict):
        raise ValueError("not an OpenModelDB index: expected a JSON object of models")
    models = {k: _model(k, v) for k, v in data.items()
              if isinstance(k, str) and _ID.fullmatch(k) and isinstance(v, dict)}
    if data and not models:
        raise ValueError("not an OpenModelDB index: no model has a name, an architecture and resources")
    return models


# ---------------------------------------------------------------------------------------------
# The index: fetched once, then read from the weights home


def index_url() -> str:
    base = os.environ.get(URL_ENV) or DEFAULT_URL
    return base if base.lower().split("?")[0].endswith(".json") else base.rstrip("/") + INDEX_PATH


def folder(home: Path) -> Path:
    """Where the index and the models' files are kept: ``<weights home>/openmodeldb``."""
    return Path(home) / FOLDER


def index_date(home: Path) -> Optional[str]:
    """When the cached index was fetched (``YYYY-MM-DD``), or None if there is none."""
    try:
        return time.strftime("%Y-%m-%d", time.localtime((folder(home) / INDEX_FILE).stat().st_mtime))
    except OSError:
        return None


_INDEXES: Dict[tuple, Dict[str, Model]] = {}


def load_index(home: Path, download: Optional[Callable] = None, *, refresh: bool = False) -> Dict[str, Model]:
    """The index, from ``<home>/openmodeldb/index.json``; fetched with ``download`` (the zoo's
    :func:`~swinir_app.downloads.download`) when there is none or ``refresh`` is asked. Without ``download``,
    a missing index is an empty one (offline callers: the listing). Raises :class:`ModelLoadError`."""
    path = folder(home) / INDEX_FILE
    if refresh or not path.is_file():
        if download is None:
            return {}
        url = index_url()

        def verify(tmp: Path) -> Dict[str, Model]:
            try:
                return parse_index(json.loads(Path(tmp).read_bytes()))
            except (ValueError, UnicodeDecodeError) as e:
                raise ModelLoadError(f"{url} is not the OpenModelDB index ({e}); nothing was cached") from None

        models = download(url, path, verify)
        _INDEXES.clear()
        return models
    try:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _INDEXES:
            _INDEXES.clear()
            _INDEXES[key] = parse_index(json.loads(path.read_bytes()))
        return _INDEXES[key]
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"cannot read the OpenModelDB index {path} ({e}); fetch it again with "
                             f"swinir-app models --refresh") from None


def find(models: Dict[str, Model], model_id: str) -> Optional[Model]:
    """The model ``model_id`` names (its exact id, else the same id in another case)."""
    if model_id in models:
        return models[model_id]
    wanted = model_id.lower()
    return next((m for k, m in models.items() if k.lower() == wanted), None)


def search(models: Dict[str, Model], text: str) -> List[Model]:
    """The models whose id, name, author, architecture, tags or description hold every word of ``text``
    (case-insensitive): those that run here first, then by id."""
    words = text.lower().split()
    found = [m for m in models.values() if all(w in m.text() for w in words)]
    return sorted(found, key=lambda m: (not runs_here(m.architecture), m.id.lower()))


# ---------------------------------------------------------------------------------------------
# Architectures


def _norm(name: str) -> str:
    return re.sub(r"[-_+ ]", "", name.lower())


_SPANDREL: Optional[Dict[str, str]] = None


def _spandrel_ids() -> Dict[str, str]:
    """spandrel's main registry, by normalised id (empty if spandrel is not installed)."""
    global _SPANDREL
    if _SPANDREL is None:
        try:
            import spandrel
            _SPANDREL = {_norm(a.architecture.id): a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()}
        except Exception:  # noqa: BLE001 - no spandrel, or one that cannot be imported: native networks only
            _SPANDREL = {}
    return _SPANDREL


def spandrel_id(architecture: str) -> Optional[str]:
    """The id of spandrel's architecture (main registry) for OpenModelDB's ``architecture``, if it has one."""
    registry = _spandrel_ids()
    wanted = SPANDREL_IDS.get(architecture.lower(), architecture)
    return registry.get(_norm(wanted))


def runs_here(architecture: str) -> bool:
    """Whether this product runs models of OpenModelDB's ``architecture``: natively (SwinIR, Swin2SR, HAT,
    DAT), or through spandrel's main package."""
    return architecture.lower() in NATIVE or spandrel_id(architecture) is not None


def arch_name(architecture: str) -> str:
    return NATIVE.get(architecture.lower()) or spandrel_id(architecture) or architecture


def supported_names() -> str:
    others = sorted(set(_spandrel_ids().values()) - set(NATIVE.values()), key=str.lower)
    return ", ".join(list(NATIVE.values()) + others)


# ---------------------------------------------------------------------------------------------
# Model files


def direct_url(url: str) -> Optional[str]:
    """``url`` as a link to the file itself, or None for a page (Google Drive, Mega, a release page, ...).
    GitHub and Hugging Face "blob" pages become their raw-file links."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    host = (p.hostname or "").lower()
    if p.scheme not in ("https", "http") or not host:
        return None
    if any(host == h or host.endswith("." + h) for h in PAGE_HOSTS):
        return None
    parts = p.path.split("/")
    if host == "github.com":
        if len(parts) > 4 and parts[3] == "blob":
            parts[3] = "raw"
            return urllib.parse.urlunsplit(p._replace(path="/".join(parts)))
        return url if "/releases/download/" in p.path or (len(parts) > 4 and parts[3] == "raw") else None
    if host == "huggingface.co":
        if "/blob/" in p.path:
            return urllib.parse.urlunsplit(p._replace(path=p.path.replace("/blob/", "/resolve/", 1)))
        return url if "/resolve/" in p.path else None
    return url if p.path.lower().endswith(FILE_SUFFIXES) else None


def _pytorch(model: Model) -> List[Resource]:
    return sorted((r for r in model.resources if r.type in MODEL_TYPES and r.urls),
                  key=lambda r: MODEL_TYPES.index(r.type))


def local_file(home: Path, model: Model) -> Optional[Path]:
    """The model's file in the weights home, if it is there (downloaded, or placed by hand)."""
    for r in _pytorch(model) or [Resource("pytorch", t, ()) for t in MODEL_TYPES]:
        path = folder(home) / f"{model.id}.{r.type}"
        if path.is_file():
            return path
    return None


def cached_models(home: Path) -> List[Tuple[Model, Path]]:
    """The models of the cached index whose files are in the weights home (no file is read but the index)."""
    base = folder(home)
    if not base.is_dir():
        return []
    stems = {p.stem for p in base.iterdir() if p.suffix[1:] in MODEL_TYPES}
    if not stems:
        return []
    try:
        models = load_index(home)
    except ModelLoadError:
        return []
    found = []
    for stem in sorted(stems, key=str.lower):
        model = models.get(stem)
        path = local_file(home, model) if model else None
        if path is not None:
            found.append((model, path))
    return found


def unknown(model_id: str, home: Path) -> Optional[str]:
    """Why ``openmodeldb:model_id`` names no model, offline (the cached index only; no index: None)."""
    try:
        models = load_index(home)
    except ModelLoadError as e:
        return str(e)
    if not models or find(models, model_id):
        return None
    return _not_found(models, model_id)


def _not_found(models: Dict[str, Model], model_id: str) -> str:
    import difflib
    close = difflib.get_close_matches(model_id, list(models), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{model_id!r} is not in the OpenModelDB index; {hint}search it with swinir-app models --search TEXT"


def model_file(model_id: str, home: Path, download: Callable, *, refresh: bool = False) -> Path:
    """The file of OpenModelDB's model ``model_id`` in ``<home>/openmodeldb``, downloaded on first use with
    ``download`` (the zoo's, sha256 checked where the index gives one). Raises :class:`ModelLoadError`, with
    one line: a model not in the index, an architecture this product cannot run (before any download),
    a file that must be downloaded by hand (where from, and where to put it), a failed or wrong download."""
    home = Path(home)
    models = load_index(home, download, refresh=refresh)
    model = find(models, model_id)
    if model is None:
        if not refresh and index_date(home) is not None:  # an older index: the model may be newer
            try:
                return model_file(model_id, home, download, refresh=True)
            except ModelLoadError as e:
                if "not in the OpenModelDB index" in str(e):
                    raise
                raise ModelLoadError(f"{_not_found(models, model_id)} (the index of {index_date(home)}: "
                                     f"fetching a newer one failed)") from None
        raise ModelLoadError(_not_found(models, model_id))
    if not runs_here(model.architecture):
        raise ModelLoadError(
            f"{model.id}: its architecture {arch_name(model.architecture)} does not run here (this product runs "
            f"{supported_names()}); nothing was downloaded")
    found = local_file(home, model)
    if found is not None:
        return found
    resources = _pytorch(model)
    if not resources:
        kinds = ", ".join(sorted({r.type for r in model.resources})) or "no file"
        raise ModelLoadError(f"{model.id}: OpenModelDB lists no PyTorch file for it ({kinds}); nothing was "
                             f"downloaded")
    for r in resources:
        url = next((d for d in map(direct_url, r.urls) if d), None)
        if url is None:
            continue
        dest = folder(home) / f"{model.id}.{r.type}"

        def verify(tmp: Path, r: Resource = r, url: str = url) -> Path:
            size = Path(tmp).stat().st_size
            if r.size is not None and not r.sha256 and size != r.size:
                raise ModelLoadError(f"downloaded {url} has {size} bytes, expected {r.size}; nothing was cached")
            return dest

        return download(url, dest, verify, sha256=r.sha256)
    r = resources[0]
    raise ModelLoadError(f"{model.id}: download {model.id}.{r.type} from {r.urls[0]} and put it in "
                         f"{folder(home)} (under that name; its host offers no direct download)")


def describe_row(model: Model) -> Tuple[str, ...]:
    """A search result: id, architecture, scale, licence, whether it runs here, one line of description."""
    return (model.id, arch_name(model.architecture), f"x{model.scale}" if model.scale else "?",
            model.license or "?", "yes" if runs_here(model.architecture) else "no", model.summary or "-")


def by_path(home: Path, path: Path) -> Optional[Model]:
    """The model whose file ``path`` is (a file of ``<home>/openmodeldb``), from the cached index."""
    path = Path(path)
    try:
        if path.resolve().parent != folder(home).resolve() or path.suffix[1:] not in MODEL_TYPES:
            return None
        return find(load_index(home), path.stem)
    except (OSError, ModelLoadError):
        return None
