"""The grid operator's envelopes in the service: stored, handed to the dispatcher, listed.

A batch is checked against the fleet (every target a known site or grid node: all
problems at once), stored in one transaction, then taken up by the dispatcher: from the
next control cycle on every event, plan and flexibility figure keeps the new limits.
Envelopes that have ended leave the dispatcher (they stay in the store until deleted).
Every ``RELOAD_S`` of service time the store is asked whether its envelopes changed (one
aggregate query) and read again if so, so envelopes imported with ``gridflock envelopes
import`` (straight into the database) are taken up too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gridflock.domain.auth import Principal
from gridflock.domain.envelopes import Envelope, EnvelopeArrays
from gridflock.domain.errors import NotFoundError, Problem, ValidationError
from gridflock.fleet.envelopes import unknown_targets
from gridflock.service.control import ControlLoop
from gridflock.store import Store
from gridflock.store.errors import DatabaseUnavailableError

__all__ = ["EnvelopeService"]

log = logging.getLogger(__name__)

#: How often the envelopes are read again from the store [s].
RELOAD_S = 30.0


class EnvelopeService:
    """Keeps the envelopes that have not ended, in step with the store and the dispatcher."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop
        self._live: dict[str, Envelope] = {}
        self._next_load = -float("inf")
        self._stamp: tuple[int, float, float] | None = None
        self._generation = 0  # of the views handed to the dispatcher

    def tick(self, now: float) -> None:
        """After each control cycle: read the store again when due (a loop observer)."""
        if now >= self._next_load:
            try:
                self.load()
            except Exception:  # an observer never stops the control loop; the log says why
                log.exception("envelopes not read again; the known ones still hold")

    def load(self) -> None:
        """Take up the stored envelopes that have not ended (at start and after a restart)."""
        now = self.loop.clock()
        self._next_load = now + RELOAD_S
        store = self.loop.store
        try:
            stamp = store.envelope_stamp()
            if stamp == self._stamp:  # nothing written since: only drop the ended ones
                self._publish(changed=False)
                return
            found = store.load_envelopes(ending_after=now)
        except DatabaseUnavailableError:
            log.warning("envelopes not read: the database is away; the known ones still hold")
            return
        self._stamp = stamp
        self._live = {e.id: e for e in found}
        self._publish()

    def _publish(self, changed: bool = True) -> None:
        """Drop ended envelopes; hand the rest to the dispatcher if anything changed."""
        now = self.loop.clock()
        live = {k: e for k, e in self._live.items() if e.end > now}
        if changed or len(live) != len(self._live):
            self._live = live
            self._generation += 1
            self.loop.dispatcher.set_envelopes(sorted(live.values(), key=_order))

    async def _publish_async(self) -> None:
        """As :meth:`_publish`, the batch's columns built on a worker thread."""
        now = self.loop.clock()
        self._live = {k: e for k, e in self._live.items() if e.end > now}
        live = sorted(self._live.values(), key=_order)
        self._generation += 1
        mine = self._generation
        arrays = await asyncio.to_thread(EnvelopeArrays.of, live)
        if mine == self._generation:  # a later write has not published a newer view
            self.loop.dispatcher.set_envelopes(live, arrays)

    def find(self, active_at: float | None = None) -> list[Envelope]:
        """The envelopes not yet ended (those in force at ``active_at``, if given)."""
        self._publish(changed=False)
        out = sorted(self._live.values(), key=_order)
        if active_at is not None:
            out = [e for e in out if e.start <= active_at < e.end]
        return out

    async def put(self, envelopes: Sequence[Envelope], principal: Principal) -> int:
        """Check, store and apply a batch (replacing envelopes of the same ids).

        The database write and the batch's columns are made off the event loop; the
        dispatcher takes the batch up on it, between two control cycles.
        """
        unknown = unknown_targets(self.loop.state.grid, envelopes)
        if unknown:
            raise ValidationError(
                [
                    Problem(
                        "envelopes",
                        f"envelope {e.id!r}",
                        "target_id",
                        f"no {e.target_type.value} {e.target_id!r} in the fleet",
                    )
                    for e in unknown
                ]
            )
        store = self.loop.store
        n = await asyncio.to_thread(store.save_envelopes, envelopes, principal.label)
        for e in envelopes:
            self._live[e.id] = e
        await self._publish_async()
        self._stamp = await asyncio.to_thread(_stamp_or_none, store)
        self.loop.audit(
            principal.label,
            "envelopes.put",
            "envelopes",
            {"count": n, "ids": [e.id for e in envelopes[:20]]},
        )
        return n

    async def delete(self, ids: Sequence[str], principal: Principal) -> list[str]:
        """Delete envelopes by id; ``NotFoundError`` when none of them exists."""
        store = self.loop.store
        found = await asyncio.to_thread(store.delete_envelopes, ids)
        if not found:
            raise NotFoundError(f"no envelope with id {', '.join(ids[:5])}")
        for i in found:
            self._live.pop(i, None)
        await self._publish_async()
        self._stamp = await asyncio.to_thread(_stamp_or_none, store)
        self.loop.audit(principal.label, "envelopes.delete", "envelopes", {"ids": found[:20]})
        return found


def _stamp_or_none(store: Store) -> tuple[int, float, float] | None:
    """The store's envelope stamp after our own write (None: read everything next time)."""
    try:
        return store.envelope_stamp()
    except DatabaseUnavailableError:
        return None


def _order(e: Envelope) -> tuple[float, str]:
    return (e.start, e.id)
