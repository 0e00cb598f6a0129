"""Typed errors the store raises."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

from gridflock.domain import ConflictError, NotFoundError, UnavailableError

__all__ = [
    "AlreadyExistsError",
    "DatabaseUnavailableError",
    "FencedError",
    "StoreError",
    "UnknownEventError",
    "is_outage",
]


class StoreError(UnavailableError):
    """The database cannot be used as asked (unsupported URL, unreachable server, ...)."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or used now (an outage): try again later.

    The store raises it in place of the driver's connection errors, so callers (the API:
    503) can tell an outage from a bug without knowing the driver. ``invalidated`` says
    the connection was found dead and dropped from the pool, so a retry opens a new one.
    """

    def __init__(self, message: str, *, invalidated: bool = False) -> None:
        super().__init__(message)
        self.invalidated = invalidated


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


class FencedError(ConflictError):
    """A write by a control process whose epoch is no longer the current one (deposed).

    Never an outage: retrying cannot help, as another process leads with a higher epoch.
    """

    def __init__(self, mine: int, current: int | None) -> None:
        self.mine = mine
        self.current = current
        super().__init__(
            f"write refused: this process led with epoch {mine}, the current epoch is "
            f"{current}; another process leads now and writes in its place"
        )


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached or used now (worth retrying).

    True for lost or refused connections, timeouts, a locked or busy database and the
    driver's operational errors; False when the database (or the conversion on the way
    to it) refused the records themselves: out-of-range values, constraint violations,
    text it cannot hold. A write that fails for the second reason fails again on every
    retry, so the store writer sets it aside instead of retrying it.
    """
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    return isinstance(
        error,
        sa_exc.DisconnectionError
        | sa_exc.TimeoutError  # the pool had no connection to give
        | psycopg.OperationalError  # from the COPY path, which uses psycopg directly
        | psycopg.InterfaceError
        | StoreError
        | OSError
        | TimeoutError,
    )
