"""The package's one base class for user errors; the bottom layer, importing nothing of the package."""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """An error whose ``str()`` is one line for the user; front ends print it without a traceback (unless
    --debug). The specific classes (``ModelLoadError``, ``SettingError``, ...) subclass it, keeping their
    other bases (``ValueError``, ``RuntimeError``) for the code that catches those."""
