"""Who commands the plant: always this process in role ``all``, an elected one in ``control``.

In role ``control`` several processes run the control loop over the same telemetry; one
leads, the others stand by warm. The election is PostgreSQL's (``store/_leadership.py``):
the leader holds a session advisory lock on a connection of its own, and every process
that wins the lock raises the ``leadership`` epoch by one, the fencing token its commands
and writes carry. :meth:`Leadership.watch` polls every ``poll_s``: a standby tries the
lock, the leader checks it still holds it. A leader whose lock session fails stops
leading at once, and one that cannot confirm its lock within ``lease_s`` (a check that
hangs on a silent database) stops commanding from then on;
gateways refuse its lower epoch and the store refuses its writes in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from gridflock.store import Store
from gridflock.store import _leadership as election

__all__ = ["Leadership"]

log = logging.getLogger("gridflock.service")

#: How often a standby tries the lock and the leader checks it [s].
POLL_S = 0.5
#: How long a leader may go without confirming its lock before it stops commanding [s].
LEASE_S = 2.0


class Leadership:
    """Whether this process leads, with which epoch (fencing token) and since when.

    ``elected=False`` (role ``all``): this process always leads, with no epoch. With
    ``elected=True`` it leads only while it holds the lock (``store`` on PostgreSQL).
    """

    def __init__(
        self,
        store: Store | None,
        *,
        elected: bool,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        poll_s: float = POLL_S,
        lease_s: float = LEASE_S,
    ) -> None:
        if elected and (store is None or store.engine.dialect.name != "postgresql"):
            raise ValueError(
                "role control elects its leader in PostgreSQL: set database_url to a "
                "postgresql:// URL (SQLite serves role all, one process)"
            )
        self.store = store
        self.elected = elected
        self.holder = holder or f"{os.getpid()}@{socket.gethostname()}"
        self.clock = clock
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.epoch: int | None = None
        """The epoch this process leads with (``None`` while standing by, and in role all)."""
        self.since: float | None = None if elected else clock()
        """When this process began to lead [UTC epoch s]."""
        self.acquisitions = 0
        self.on_change: list[Callable[[], None]] = []
        """Called (on the event loop) when this process begins or stops leading."""
        self._confirmed = -float("inf")  # monotonic time the lock was last confirmed
        self._conn: Connection | None = None
        self._engine: Engine | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ state
    @property
    def leading(self) -> bool:
        """Whether this process may command now (its lock confirmed within ``lease_s``)."""
        if not self.elected:
            return True
        return self.epoch is not None and time.monotonic() - self._confirmed <= self.lease_s

    def fence_epoch(self) -> int | None:
        """The epoch writes are fenced with: this process's while it leads, else ``None``."""
        return self.epoch if self.leading else None

    def status(self) -> dict[str, Any]:
        """Role, leading, epoch and since, for health and the CLI."""
        return {
            "role": "control" if self.elected else "all",
            "leading": self.leading,
            "epoch": self.epoch if self.leading else None,
            "since": self.since if self.leading else None,
            "holder": self.holder,
        }

    # ------------------------------------------------------------------ election
    def _connection(self) -> Connection:
        """The session that holds the lock: its own, never from the store's pool."""
        if self._conn is None:
            assert self.store is not None
            args: dict[str, Any] = {
                "connect_timeout": 3,
                "application_name": f"gridflock-leader {self.holder}"[:63],
                # a leader's host that vanishes is noticed by both sides within seconds
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 1,
                "keepalives_count": 3,
            }
            if self.store.schema is not None:
                args["options"] = f"-csearch_path={self.store.schema}"
            self._engine = create_engine(
                self.store.engine.url, poolclass=NullPool, connect_args=args
            )
            conn = self._engine.connect()
            conn.execute(text("SET tcp_keepalives_idle = 5"))
            conn.execute(text("SET tcp_keepalives_interval = 1"))
            conn.execute(text("SET tcp_keepalives_count = 3"))
            conn.commit()
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception as e:  # the session is gone already
                log.debug("closing the leader's connection: %s", e)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def poll(self) -> str | None:
        """One turn (blocking, run it in a thread): ``"acquired"``, ``"lost"`` or ``None``."""
        if not self.elected:
            return None
        was = self.epoch
        try:
            conn = self._connection()
            if was is None:
                if not election.try_lock(conn):
                    return None
                self.epoch = election.acquire(conn, self.holder, self.clock())
                self.since = self.clock()
                self._confirmed = time.monotonic()
                self.acquisitions += 1
                log.warning("leading the plant with epoch %d", self.epoch)
                return "acquired"
            current = election.read_leadership(conn)
            if election.holds_lock(conn) and current is not None and current["epoch"] == was:
                self._confirmed = time.monotonic()
                return None
            why = "the lock is gone" if current is None else f"epoch {current['epoch']} leads"
        except Exception as e:  # the session was cut or the database is away
            self._drop_connection()
            if was is None:
                log.info("cannot try for leadership now: %s", e)
                return None
            # the lock lived in that session: once it is unusable the lock is gone too
            # (or soon will be, when PostgreSQL notices), so stop commanding now
            why = f"its session is lost ({str(e).splitlines()[0][:200]})"
        self.epoch = None
        self.since = None
        log.error("no longer leading (epoch %d): %s; standing by", was, why)
        self._drop_connection()
        return "lost"

    async def watch(self) -> None:
        """Poll every ``poll_s`` until :meth:`stop` (then give the lock up)."""
        if not self.elected:
            return
        try:
            while not self._stop.is_set():
                if await asyncio.to_thread(self.poll) is not None:
                    for notify in self.on_change:  # act now, not at the next tick
                        notify()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_s)
        finally:
            await asyncio.to_thread(self.release)

    def release(self) -> None:
        """Give the lock up (a graceful stop: a standby takes over at its next poll)."""
        if self._conn is not None and self.epoch is not None:
            try:
                election.release(self._conn)
            except Exception as e:  # the session ends below: the lock goes with it
                log.debug("releasing the leader's lock: %s", e)
        self.epoch = None
        self._drop_connection()

    def stop(self) -> None:
        """End :meth:`watch`."""
        self._stop.set()
