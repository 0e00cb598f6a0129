"""Typed errors the store raises."""

from __future__ import annotations

from gridflock.domain import ConflictError, NotFoundError, UnavailableError

__all__ = ["AlreadyExistsError", "StoreError", "UnknownEventError"]


class StoreError(UnavailableError):
    """The database cannot be used as asked (unsupported URL, unreachable server, ...)."""


class UnknownEventError(NotFoundError):
    """An event id that the store does not hold."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"unknown event {event_id!r}: no event with this id is stored")


class AlreadyExistsError(ConflictError, ValueError):
    """An id that is already stored was given to a method that creates a new record."""

    def __init__(self, what: str, record_id: str) -> None:
        self.what = what
        self.record_id = record_id
        super().__init__(f"{what} {record_id!r} already exists")
