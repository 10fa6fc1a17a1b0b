"""Values as BasicSR's YAML writes them, for the options schema: ``5e3`` (a string to YAML 1.1) is a number, a
bool is not a number, and ``Section``, the base of every section (every key declared, frozen once read)."""
from __future__ import annotations

import math
from typing import Annotated, Any, Tuple, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict

__all__ = ["Bool", "Float", "Int", "Level", "Pair", "Section", "Str"]


def _number(v: Any) -> Union[int, float]:
    # YAML 1.1 reads 5e3 (no dot) as a string; BasicSR files write !!float 5e3. Take both.
    if isinstance(v, bool) or v is None:
        raise ValueError(f"expected a number, got {v!r}")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {v!r}")


def _whole(v: Any) -> int:
    n = _number(v)
    if isinstance(n, float) and not (math.isfinite(n) and n == int(n)):
        raise ValueError(f"expected a whole number, got {v!r}")
    return int(n)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected true or false, got {v!r}")


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise ValueError(f"expected a string, got {v!r}")


def _one_of(*choices: str):
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"{v!r} is not one of {', '.join(choices)}")
        return v
    return BeforeValidator(check)


Int = Annotated[int, BeforeValidator(_whole)]
Float = Annotated[float, BeforeValidator(lambda v: float(_number(v)))]
Bool = Annotated[bool, BeforeValidator(_bool)]
Str = Annotated[str, BeforeValidator(_text)]
Level = Union[Float, Tuple[Float, Float]]  # a fixed level, or a [min, max] range drawn per patch
Pair = Tuple[Float, Float]


class Section(BaseModel):
    """A mapping of the file: every key declared, values checked, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)
