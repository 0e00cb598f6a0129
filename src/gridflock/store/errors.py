"""Typed errors the store raises."""

from __future__ import annotations

from gridflock.domain import GridflockError

__all__ = ["AlreadyExistsError", "StoreError", "UnknownEventError"]


class StoreError(GridflockError):
    """The database cannot be used as asked (unsupported URL, unreachable server, ...)."""


class UnknownEventError(GridflockError, KeyError):
    """An event id that the store does not hold."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"unknown event {event_id!r}: no event with this id is stored")

    def __str__(self) -> str:
        return str(self.args[0])


class AlreadyExistsError(GridflockError, ValueError):
    """An id that is already stored was given to a method that creates a new record."""

    def __init__(self, what: str, record_id: str) -> None:
        self.what = what
        self.record_id = record_id
        super().__init__(f"{what} {record_id!r} already exists")
