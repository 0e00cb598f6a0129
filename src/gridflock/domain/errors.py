"""Typed errors the domain raises: each names where the problem is and what was wrong.

Only the declared kinds below say "the caller asked for something wrong or impossible"
(the API turns them into 4xx answers, or 503 for :class:`UnavailableError`); any other
exception is a bug and becomes a 500 with an error id. :class:`InvalidError` is also a
``ValueError`` and :class:`NotFoundError` a ``KeyError``, so code that caught those
before keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConflictError",
    "GridflockError",
    "InfeasibleError",
    "InvalidError",
    "NotFoundError",
    "Problem",
    "UnavailableError",
    "UnknownDeviceError",
    "ValidationError",
    "clip",
]

#: How much of a caller's input an error message may quote [characters].
CLIP_CHARS = 100


def clip(text: str, limit: int = CLIP_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut.

    Error messages quote the input that was wrong; a bounded prefix keeps a 1 MB input
    from coming back in the answer (or filling a log).
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class GridflockError(Exception):
    """Base class of every error Gridflock raises on purpose."""


class NotFoundError(GridflockError, KeyError):
    """Something named by the caller does not exist (HTTP 404)."""

    def __str__(self) -> str:
        # KeyError quotes its message ("'no event'"); ours reads as a sentence.
        return str(self.args[0]) if self.args else "not found"


class InvalidError(GridflockError, ValueError):
    """A request that cannot be carried out as asked (HTTP 422)."""


class ConflictError(GridflockError):
    """A request that clashes with the current state, e.g. cancel a finished event (409)."""


class UnavailableError(GridflockError):
    """A dependency the request needs is down for now; retrying later may work (503)."""


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


class ValidationError(InvalidError):
    """Input that breaks the model: carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) found:\n{shown}{more}")


class UnknownDeviceError(NotFoundError):
    """A device id that the fleet does not hold."""


class InfeasibleError(InvalidError):
    """A request the fleet cannot meet at all (for example an empty scope)."""
