"""The read model: what the API shows of the fleet, kept up to date once per control cycle.

After each cycle the control loop hands :meth:`ReadModel.record` the cycle's time; the read
model computes the fleet summary (power, and the one flexibility figure of
``fleet.available``: total, committed and remaining within limits, by kind), appends
the fleet's power by kind and, once a minute, by group to its 24-hour histories, and
publishes an update to live subscribers. Reads between cycles cost nothing but a lookup.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridflock.api.runtime import EventView
from gridflock.domain.errors import InvalidError, clip
from gridflock.domain.events import EventStatus, Scope
from gridflock.domain.messages import FloatArray
from gridflock.fleet import GROUP_BY, aggregate
from gridflock.fleet.available import available_flexibility
from gridflock.fleet.flexibility import frequency_response
from gridflock.service.control import ControlLoop
from gridflock.service.events import EventService

__all__ = ["GROUP_HISTORY_BY", "HISTORY_S", "ReadModel"]

HISTORY_S = 24 * 3600.0
GROUP_HISTORY_STEP_S = 60.0
GROUP_HISTORY_BY = ("grid_node", "program", "region")


class ReadModel:
    """Fleet summary, histories and live updates, over the control loop's state."""

    def __init__(self, loop: ControlLoop, events: EventService) -> None:
        self.loop = loop
        self.events = events
        interval = loop.settings.control_interval_s
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=int(HISTORY_S / interval) + 1)
        # each sample: by → (group names, kW per group), the names as the fleet was then
        self._group_history: deque[tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]] = deque(
            maxlen=int(HISTORY_S / GROUP_HISTORY_STEP_S) + 1
        )
        self._labels_of: object = None
        self._label_cache: dict[str, np.ndarray] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ each cycle
    def record(self, now: float) -> None:
        """Describe the fleet after the cycle at ``now`` and tell the subscribers."""
        st = self.loop.state
        self._summary = self._compute_summary(now)
        last = self._group_history[-1][0] if self._group_history else -np.inf
        if now - last >= GROUP_HISTORY_STEP_S:
            p = np.where(st.online, st.p_kw, 0.0)
            labels = self._labels()
            sample = {"grid_node": (labels["grid_node"], st.grid.node_flow_kw(st.site_power_kw(p)))}
            for by in ("program", "region"):
                sums = aggregate(st, by, {"p_kw": p})
                sample[by] = (labels[by], sums["p_kw"].to_numpy())
            self._group_history.append((now, sample))
        self._history.append(
            (
                now,
                np.bincount(
                    st.kind_codes(),
                    weights=np.where(st.online, st.p_kw, 0.0),
                    minlength=len(st.kinds),
                ),
            )
        )
        self._publish(now)

    def fleet_changed(self) -> None:
        """Forget the summary of the old fleet (after an import); the histories stay."""
        self._summary = {}

    def _labels(self) -> dict[str, np.ndarray]:
        """The group names of the current fleet, made once per fleet.

        Each history sample keeps the names it was taken with (the same array for every
        sample of one fleet), so a fleet of another shape never mixes with the samples
        taken before it came.
        """
        st = self.loop.state
        if self._labels_of is not st:
            self._labels_of = st
            self._label_cache = {
                "grid_node": np.asarray(st.grid.node_ids, dtype=object),
                **{by: aggregate(st, by, {})[by].to_numpy(object) for by in ("program", "region")},
            }
        return self._label_cache

    # ------------------------------------------------------------------ reads
    def fleet_summary(self) -> dict[str, Any]:
        """The fleet now (computed once per control cycle)."""
        return self._summary or self._compute_summary(self.loop.clock())

    def flexibility(self, duration_h: float, by: str, scope: str = "fleet") -> pd.DataFrame:
        """The one flexibility figure (total, committed, remaining) for ``scope``, by group.

        The same figure as the fleet summary's (``fleet.available``): its rows sum to the
        scope's totals. ``InvalidError`` names a bad grouping, duration or scope.
        """
        if by not in GROUP_BY:
            raise InvalidError(f"by must be one of {', '.join(GROUP_BY)}, got {clip(by)!r}")
        if not 0 < duration_h <= 24 * 7:
            raise InvalidError(f"duration_h must be within (0, 168] hours, got {duration_h}")
        st = self.loop.state
        try:
            mask = st.scope_mask(Scope.parse(scope))
        except ValueError as exc:  # a malformed scope, or one that names nothing
            raise InvalidError(clip(str(exc))) from None
        return aggregate(st, by, self._flex_columns(duration_h, mask))

    def flexibility_by(self, duration_h: float, bys: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """The fleet's flexibility by each grouping of ``bys``, computed once for all."""
        st = self.loop.state
        columns = self._flex_columns(duration_h, np.ones(st.n, bool))
        return {by: aggregate(st, by, columns) for by in bys}

    def _flex_columns(self, duration_h: float, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Per-device flexibility, power and fast frequency response within ``mask``."""
        st = self.loop.state
        now = self.loop.clock()
        avail = available_flexibility(
            st,
            duration_h,
            now,
            held_kw=self._held_kw(),
            scope=mask,
            grid=self.loop.dispatcher.grid_at(now, now + duration_h * 3600.0),
        )
        ffr = frequency_response(st, now)  # within 1 s, held 15 minutes
        live = st.online & mask
        return {
            **avail.columns(),
            "p_kw": np.where(live, st.p_kw, 0.0),
            "ffr_up_kw": np.where(live, ffr.up_kw, 0.0),
            "ffr_down_kw": np.where(live, ffr.down_kw, 0.0),
        }

    def last_samples(
        self,
    ) -> tuple[tuple[float, np.ndarray] | None, tuple[float, dict[str, Any]] | None]:
        """The newest fleet-history sample and the newest group-history sample (or None)."""
        return (
            self._history[-1] if self._history else None,
            self._group_history[-1] if self._group_history else None,
        )

    def _held_kw(self) -> FloatArray | None:
        """Each device's delta from its baseline held by the active events (None: none)."""
        d = self.loop.dispatcher
        if len(d.delta_kw) != self.loop.state.n or not (d.held_by >= 0).any():
            return None
        held: FloatArray = d.delta_kw
        return held

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        """Fleet power by kind over ``[start, end)``, one row per control cycle."""
        kinds = [k.value for k in self.loop.state.kinds]
        return kind_frame([(ts, *v) for ts, v in self._history if start <= ts < end], kinds)

    def group_history(self, start: float, end: float, by: str) -> pd.DataFrame:
        """Power by grid node (what each carries, + towards the grid), programme or region.

        One sample a minute over ``[start, end)``: columns ts, group, p_kw.
        """
        if by not in GROUP_HISTORY_BY:
            raise InvalidError(f"by must be one of {', '.join(GROUP_HISTORY_BY)}, got {clip(by)!r}")
        return group_frame([(ts, *v[by]) for ts, v in self._group_history if start <= ts < end])

    async def updates(self) -> AsyncIterator[dict[str, Any]]:
        """Live updates: one dict per control cycle (slow readers skip cycles)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    # ------------------------------------------------------------------ helpers
    def _compute_summary(self, now: float) -> dict[str, Any]:
        loop = self.loop
        st = loop.state
        hours = loop.settings.flex_duration_h
        avail = available_flexibility(
            st,
            hours,
            now,
            held_kw=self._held_kw(),
            grid=loop.dispatcher.grid_at(now, now + hours * 3600.0),
        )
        totals = avail.totals()
        up, down = totals["flex_up_kw"], totals["flex_down_kw"]
        p = np.where(st.online, st.p_kw, 0.0)
        by_kind = aggregate(st, "kind", {"p_kw": p, **avail.columns()})
        summary = {
            "ts": now,
            "p_kw": float(p.sum()),
            **totals,
            "flex_duration_h": hours,
            "devices_online": int(st.online.sum()),
            "devices_total": st.n,
            "events_active": sum(
                1 for t in loop.dispatcher.trackers.values() if t.event.status is EventStatus.ACTIVE
            ),
            "by_kind": by_kind.rename(
                columns={"online": "devices_online", "devices": "devices_total"}
            ).to_dict("records"),
            "by_protocol": self._by_protocol(),
        }
        m = loop.metrics
        m.devices_online.set(float(st.online.sum()))
        m.fleet_p_kw.set(float(p.sum()))
        m.flex_up_kw.set(up)
        m.flex_down_kw.set(down)
        m.events_active.set(float(summary["events_active"]))  # type: ignore[arg-type]
        return summary

    def _by_protocol(self) -> list[dict[str, Any]]:
        """Devices and online devices per protocol (the fleet's ``protocol`` attribute)."""
        st = self.loop.state
        devices = self.loop.spec.all_devices()
        if not len(devices):
            return []
        rows = st.indices(devices["id"].to_numpy(object))
        found = rows >= 0
        online = np.zeros(len(rows), bool)
        online[found] = st.online[rows[found]]
        proto = devices["protocol"].to_numpy(object)
        return [
            {
                "protocol": str(p),
                "devices_total": int((proto == p).sum()),
                "devices_online": int(online[proto == p].sum()),
            }
            for p in sorted(set(proto.tolist()))
        ]

    def _publish(self, now: float) -> None:
        if not self._subscribers:
            return
        update = {
            "ts": now,
            "fleet": {
                k: v for k, v in self._summary.items() if k not in ("by_kind", "by_protocol")
            },
            "events": [
                _event_json(v) for v in self.events.views() if v.event.status is EventStatus.ACTIVE
            ],
        }
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader sees the latest state
            q.put_nowait(update)


def _event_json(v: EventView) -> dict[str, Any]:
    return {
        "id": v.event.id,
        "status": v.event.status.value,
        "target_kw": v.event.target_kw,
        "delivered_kw": v.delivered_kw,
        "delivered_pct": v.delivered_pct,
    }


def kind_frame(rows: Sequence[tuple[Any, ...]], kinds: list[str]) -> pd.DataFrame:
    """History rows ``(ts, p_kw by kind...)`` as columns ts, p_kw (their sum) and each kind."""
    df = pd.DataFrame(rows, columns=["ts", *kinds])
    df["p_kw"] = df[kinds].sum(axis=1)
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df[["ts", "p_kw", *kinds]]


def group_frame(rows: Sequence[tuple[float, Any, Any]]) -> pd.DataFrame:
    """Group history rows ``(ts, labels, p_kw)`` as long columns ts, group, p_kw."""
    if not rows:
        return pd.DataFrame(
            {
                "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                "group": pd.Series(dtype=object),
                "p_kw": pd.Series(dtype=float),
            }
        )
    ts = np.concatenate([np.full(len(lab), t) for t, lab, _ in rows])
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(ts, unit="s", utc=True),
            "group": np.concatenate([np.asarray(lab, dtype=object) for _, lab, _ in rows]),
            "p_kw": np.concatenate([np.asarray(v, dtype=float) for _, _, v in rows]),
        }
    )
