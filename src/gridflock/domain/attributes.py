"""Declaration of a device or site attribute: type, unit, default, bounds and meaning.

Validation, file formats and the docs are all derived from these declarations, so an
attribute is described in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AttrType = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True)
class Attr:
    """One declared attribute.

    ``default=None`` makes the attribute required. Bounds are inclusive unless
    ``exclusive_min`` is set (used for capacities that must be strictly positive).
    """

    name: str
    type: AttrType
    unit: str
    description: str
    default: float | int | bool | str | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False

    @property
    def required(self) -> bool:
        """Whether a file must give this attribute."""
        return self.default is None

    def bounds_text(self) -> str:
        """Human text for the allowed range, as used in error messages and docs."""
        lo = "" if self.min is None else ("> " if self.exclusive_min else ">= ") + f"{self.min:g}"
        hi = "" if self.max is None else f"<= {self.max:g}"
        return " and ".join(t for t in (lo, hi) if t) or "any"
