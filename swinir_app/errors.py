"""The package's one base class for user errors; the bottom layer, importing nothing of the package."""
from __future__ import annotations

from typing import Optional

__all__ = ["SettingError", "UserError"]


class UserError(Exception):
    """An error whose ``str()`` is one line for the user; front ends print it without a traceback (unless
    --debug). The specific classes (``ModelLoadError``, ``SettingError``, ...) subclass it, keeping their
    other bases (``ValueError``, ``RuntimeError``) for the code that catches those."""


class SettingError(UserError, ValueError):
    """A device, precision or tile setting this machine or model cannot run; one line that names it.

    ``str()`` reads ``precision 'bf16': <reason>``; front ends print :meth:`flag` for their own option
    names (``--precision bf16: <reason>``).
    """

    def __init__(self, setting: str, value: object, reason: str, advice: Optional[str] = None):
        self.setting, self.value, self.reason, self.advice = setting, value, reason, advice
        self.detail = reason + (f"; {advice}" if advice else "")
        super().__init__(f"{setting} {str(value)!r}: {self.detail}")

    def flag(self) -> str:
        return f"--{self.setting.replace('_', '-')} {self.value}: {self.detail}"
