"""The grid operator's envelopes in the service: stored, handed to the dispatcher, listed.

A batch is checked against the fleet (every target a known site or grid node: all
problems at once), stored in one transaction, then taken up by the dispatcher: from the
next control cycle on every event, plan and flexibility figure keeps the new limits.
Envelopes that have ended leave the dispatcher (they stay in the store until deleted).
Every ``RELOAD_S`` of service time the store is asked whether its envelopes changed (one
aggregate query) and read again if so, so envelopes imported with ``gridflock envelopes
import`` (straight into the database) are taken up too.

After each cycle it also records the dispatcher's envelope hold (``dispatch.envelope_hold``):
metrics, the sites and nodes held now (:meth:`EnvelopeService.holds`), a log of when
each site started and stopped being held (the latest ``HOLD_LOG`` entries) and, in the
audit log, one ``envelopes.hold`` record per cycle in which a site was held or released.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

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
#: Hold start/stop entries kept in memory.
HOLD_LOG = 500


class EnvelopeService:
    """Keeps the envelopes that have not ended, in step with the store and the dispatcher."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop
        self._live: dict[str, Envelope] = {}
        self._next_load = -float("inf")
        self._stamp: tuple[int, float, float] | None = None
        self._generation = 0  # of the views handed to the dispatcher
        self._held_sites: dict[str, float] = {}  # site id -> since [UTC epoch s]
        self._hold_commands = 0
        self.hold_log: deque[dict[str, Any]] = deque(maxlen=HOLD_LOG)
        """When sites started and stopped being held within their envelopes, newest last."""

    def tick(self, now: float) -> None:
        """After each control cycle: record the hold; read the store again when due."""
        try:
            self._record_hold(now)
        except Exception:
            log.exception("envelope hold not recorded this cycle")
        if now >= self._next_load:
            try:
                self.load()
            except Exception:  # an observer never stops the control loop; the log says why
                log.exception("envelopes not read again; the known ones still hold")

    def _record_hold(self, now: float) -> None:
        """Metrics and the start/stop log of the dispatcher's envelope hold."""
        disp, m = self.loop.dispatcher, self.loop.metrics
        st = disp.state
        held = disp.env_held
        res = disp.hold_result
        sites = np.unique(st.site_idx[held])
        m.envelope_held_devices.set(int(held.sum()))
        m.envelope_held_sites.set(len(sites))
        m.envelope_moved_kw.set(res.curtailed_kw if res is not None else 0.0)
        left = (
            float(np.abs(res.site_left_kw).sum() + np.abs(res.node_left_kw).sum())
            if res is not None
            else 0.0
        )
        m.envelope_breach_left_kw.set(left)
        if disp.hold_commands > self._hold_commands:
            m.envelope_hold_commands.inc(disp.hold_commands - self._hold_commands)
        self._hold_commands = disp.hold_commands
        ids = set(st.grid.site_ids[sites].tolist())
        started = sorted(ids - self._held_sites.keys())
        ended = sorted(self._held_sites.keys() - ids)
        for sid in started:
            self._held_sites[sid] = now
            self.hold_log.append({"ts": _iso(now), "site_id": sid, "action": "held"})
            log.info("site %s held within its envelope", sid)
        for sid in ended:
            since = self._held_sites.pop(sid)
            self.hold_log.append(
                {"ts": _iso(now), "site_id": sid, "action": "released", "held_s": now - since}
            )
            log.info("site %s released: within its envelope on its own", sid)
        if started or ended:  # one audit record per cycle that changed anything
            self.loop.audit(
                "system",
                "envelopes.hold",
                "envelopes",
                {
                    "held": started[:100],
                    "released": ended[:100],
                    "n_held": len(started),
                    "n_released": len(ended),
                    "sites_held_now": len(ids),
                },
            )

    def holds(self) -> dict[str, Any]:
        """The envelope hold now: sites and nodes in breach or held, and the recent log.

        Per site: its breach before the hold [kW, + export past the export limit, -
        import past the import limit], what is left after it, the devices held and the
        power they move [kW, generator sign summed]. Nodes: those in breach.
        """
        disp = self.loop.dispatcher
        st = disp.state
        res = disp.hold_result
        grid = st.grid
        held = disp.env_held
        moved = np.bincount(
            st.site_idx,
            weights=res.delta_kw if res is not None else np.zeros(st.n),
            minlength=grid.n_sites,
        )
        n_held = np.bincount(st.site_idx, weights=held, minlength=grid.n_sites)
        sites = []
        rows = np.flatnonzero(
            (n_held > 0)
            | ((res.site_breach_kw != 0) if res is not None else np.zeros(grid.n_sites, bool))
        )
        for i in rows:
            sites.append(
                {
                    "site_id": str(grid.site_ids[i]),
                    "breach_kw": float(res.site_breach_kw[i]) if res is not None else 0.0,
                    "left_kw": float(res.site_left_kw[i]) if res is not None else 0.0,
                    "devices_held": int(n_held[i]),
                    "moved_kw": float(moved[i]),
                    "since": _iso(self._held_sites[str(grid.site_ids[i])])
                    if str(grid.site_ids[i]) in self._held_sites
                    else None,
                }
            )
        nodes = []
        if res is not None:
            for j in np.flatnonzero(res.node_breach_kw != 0):
                nodes.append(
                    {
                        "node_id": str(grid.node_ids[j]),
                        "breach_kw": float(res.node_breach_kw[j]),
                        "left_kw": float(res.node_left_kw[j]),
                    }
                )
        return {
            "devices_held": int(held.sum()),
            "moved_kw": res.curtailed_kw if res is not None else 0.0,
            "commands_sent": disp.hold_commands,
            "sites": sites,
            "nodes": nodes,
            "log": list(self.hold_log)[-100:][::-1],
        }

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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _order(e: Envelope) -> tuple[float, str]:
    return (e.start, e.id)
