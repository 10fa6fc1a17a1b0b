"""The model catalogue and policy (data only): which models the page offers, which specs a remote user
may load, and what is known of a model. No gradio and no Markdown here (:mod:`.page` renders it); loading
models is the service's.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from ..engine import DEFAULT_MODEL
from ..network import SwinIRConfig
from ..network.capabilities import Capabilities
from ..zoo import ZOO, ZooEntry, bundled_entries, find_entry, is_cached, weights_home
from .jobs import WebError

GENERIC_REFUSAL = ("this model is not available here: choose one from the list, a zoo name, or a file in the "
                   "server's models folder")
CUSTOM = "__custom__"  # the model dropdown's "custom path" entry
TASK_NAMES = {"sr": "super-resolution", "denoise": "denoising", "jpeg": "JPEG artifact removal"}
_LEVEL_NAME = re.compile(r"^(?P<family>.+-(?:dn|jpeg))-(?P<level>\d+)$")


def task_label(model: Union[SwinIRConfig, Capabilities]) -> str:
    """'super-resolution ×4', 'gray denoising', ...: a model's task from its config or its capabilities."""
    gray = "gray " if model.in_chans == 1 else ""
    if model.task == "sr":
        return f"{gray}super-resolution ×{model.scale}"
    return gray + TASK_NAMES.get(model.task, model.task)


def short_task(model: Union[SwinIRConfig, Capabilities]) -> str:
    """'×4', 'gray ×2', 'denoise', 'JPEG': a task in a word or two, for the model list."""
    gray = "gray " if model.in_chans == 1 else ""
    return f"{gray}×{model.scale}" if model.task == "sr" else gray + {"denoise": "denoise"}.get(
        model.task, "JPEG")


@dataclass
class ModelInfo:
    """What the page knows of a model: what it declares (any architecture), its size, and for the native
    networks their config (window size), for zoo models their entry and trained-level siblings."""

    spec: str
    label: str
    capabilities: Capabilities
    parameters: int
    config: Optional[SwinIRConfig] = None
    entry: Optional[ZooEntry] = None
    levels: List[Tuple[str, str]] = field(default_factory=list)  # (label, spec) of sibling variants

    @property
    def task(self) -> str:
        return self.capabilities.task

    @property
    def level(self) -> Optional[int]:
        m = _LEVEL_NAME.match(self.entry.name) if self.entry else None
        return int(m.group("level")) if m else None


def label_of(spec: str) -> str:
    path = Path(spec)
    return path.name if (os.sep in spec or "/" in spec or path.suffix) else spec


MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".onnx")


@dataclass
class ModelPolicy:
    """Which model specs a remote user may load: this server's files stay its own.

    Allowed: the operator's ``--model``, bundled models, zoo names (downloaded ones, or any with
    ``allow_downloads``), and files or training folders inside ``models_dir``. Anything else is
    refused with :data:`GENERIC_REFUSAL`, whatever the reason, so that no answer tells whether a path
    exists, is a folder or is readable. ``allow_any_path`` turns the policy off (local use only).
    """

    models_dir: Path
    explicit: Optional[str] = None
    weights_dir: Optional[str] = None
    allow_any_path: bool = False
    allow_downloads: bool = False
    offered: Sequence[str] = ()  # what the page lists: typos get a suggestion among these, and only these

    def check(self, spec: str) -> str:
        """The spec to load for ``spec``, or :class:`WebError`."""
        spec = spec.strip()
        if self.allow_any_path or spec == self.explicit:
            return spec
        if not any(c in spec for c in "/\\") and not spec.startswith(("~", ".")):
            entry = find_entry(spec)
            if entry is not None:
                if entry.path or is_cached(entry, self.weights_dir) or self.allow_downloads:
                    return entry.name
                raise WebError(f"{entry.name} is not downloaded on this server, and it does not download models "
                               f"for its users; its operator can fetch it once (python -c \"import swinir_app; "
                               f"swinir_app.load_model('{entry.name}')\") or start the app with --allow-downloads")
        candidate = Path(spec)
        root = self.models_dir.resolve()
        try:
            real = (candidate if candidate.is_absolute() else root / candidate).resolve(strict=True)
            allowed = real.is_relative_to(root) and (real.is_dir() or (real.is_file() and
                                                                        real.suffix in MODEL_SUFFIXES))
        except (OSError, RuntimeError, ValueError):
            allowed = False
        if not allowed:
            close = difflib.get_close_matches(spec, list(self.offered), n=2)  # the page's list: nothing new told
            raise WebError((f"did you mean {' or '.join(close)}? " if close else "") + GENERIC_REFUSAL)
        return str(real)

    def local_files(self, limit: int = 200) -> List[Path]:
        """Checkpoint files in the models folder (zoo downloads included), relative to it."""
        root = self.models_dir.resolve()
        if not root.is_dir():
            return []
        found = []
        for path in sorted(root.rglob("*")):
            if len(found) >= limit:
                break
            if path.suffix in MODEL_SUFFIXES and path.is_file() and not any(p.startswith(".") for p in
                                                                            path.relative_to(root).parts):
                found.append(path.relative_to(root))
        return found


class Catalogue:
    """Which models the page offers: the --model spec, the bundled ones, the cached zoo ones and the
    other checkpoint files in the models folder."""

    def __init__(self, explicit: Optional[str], weights_dir=None, models_dir: Optional[Path] = None):
        self.explicit, self.weights_dir = explicit, weights_dir
        # The real-photo model first (most uploads are noisy, blurred, compressed phone pictures), then the CLI's.
        preferred = ("bundled-real-x4", DEFAULT_MODEL)
        self.bundled = sorted(bundled_entries(), key=lambda e: (preferred.index(e.name) if e.name in preferred
                                                                else len(preferred), e.name))
        self.cached = [e for e in ZOO.values() if is_cached(e, weights_dir)]
        zoo_files = {e.filename for e in self.cached}
        policy = ModelPolicy(Path(models_dir) if models_dir else weights_home(weights_dir))
        self.files = [str(f) for f in policy.local_files() if f.name not in zoo_files]

    def available(self) -> List[ZooEntry]:
        return [*self.bundled, *self.cached]

    def choices(self) -> List[Tuple[str, str]]:
        items = []
        if self.explicit and not any(self.explicit in e.names for e in self.available()):
            items.append((f"{label_of(self.explicit)} (--model)", self.explicit))
        # Short labels, so the chosen one fits the box; the full description is shown below it.
        items += [(f"{e.name} ({short_task(e.config)}, {e.description or 'bundled'})", e.name) for e in self.bundled]
        items += [(f"{e.name} ({short_task(e.config)})", e.name) for e in self.cached]
        items += [(f"{f} (models folder)", f) for f in self.files]
        items.append(("Custom checkpoint or zoo name…", CUSTOM))
        return items

    def default(self) -> Optional[str]:
        if self.explicit:
            return next((e.name for e in self.available() if self.explicit in e.names), self.explicit)
        # The first bundled model: the real-photo one when it is there, else the CLI's default.
        return next((e.name for e in self.available()), None)

    def siblings(self, entry: Optional[ZooEntry]) -> List[Tuple[str, str]]:
        """Other trained levels of a denoising / JPEG model that are here: (label, name)."""
        m = _LEVEL_NAME.match(entry.name) if entry else None
        if not m:
            return []
        symbol = "σ = " if m.group("family").endswith("dn") else "quality "
        found = []
        for e in self.available():
            n = _LEVEL_NAME.match(e.name)
            if n and n.group("family") == m.group("family"):
                found.append((int(n.group("level")), f"{symbol}{n.group('level')}", e.name))
        return [(label, name) for _, label, name in sorted(found)]
