"""Typed errors the domain raises: each names where the problem is and what was wrong."""

from __future__ import annotations

from dataclasses import dataclass


class GridflockError(Exception):
    """Base class of every error Gridflock raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (source, entry, field) and what."""

    source: str
    entry: str
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.entry:
            where += f": {self.entry}"
        if self.field:
            where += f": {self.field}"
        return f"{where}: {self.message}"


class ValidationError(GridflockError, ValueError):
    """Input that breaks the model: carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) found:\n{shown}{more}")


class UnknownDeviceError(GridflockError, KeyError):
    """A device id that the fleet does not hold."""


class InfeasibleError(GridflockError):
    """A request the fleet cannot meet at all (for example an empty scope)."""
