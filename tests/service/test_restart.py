"""History survives a restart: finished events answer from the store, resumed ones keep
the samples taken before the restart.

The runtime runs over a real SQLite store with the twin as its device link, on a fake
clock; a "restart" drops the runtime without stopping it (as kill -9 would, after the
write loop's last flush) and starts a new one over the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.errors import ConflictError
from gridflock.domain.events import EventStatus, Scope
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_116_800.0  # 2026-07-15T12:00:00Z
STEP_S = 2.0
OPERATOR = Principal("key-ops", "ops-desk", Role.OPERATOR)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Site:
    url: str
    store: Store
    spec: FleetSpec
    clock: Clock

    def start(self) -> Runtime:
        """A new service process over the same database, taking up what the store holds."""
        twin = RealtimeTwin(
            self.spec,
            seed=3,
            step_s=STEP_S,
            hours=1.0,
            imperfections=Imperfections.ideal(),
            clock=self.clock,
        )
        settings = Settings(database_url=self.url, control_interval_s=STEP_S)
        rt = Runtime(settings, self.store, self.spec, twin, clock=self.clock)
        rt.resume()
        return rt

    def run(self, rt: Runtime, seconds: float) -> None:
        for _ in range(round(seconds / STEP_S)):
            self.clock.t += STEP_S
            rt.control_cycle()
        assert rt.writer.flush()  # what the write loop would have written meanwhile


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    spec = generate_fleet(60, 1)
    with Store(url) as store:
        store.upgrade()
        store.save_fleet(spec)
        yield Site(url, store, spec, Clock(T0))


def _event(rt: Runtime, kw: float, duration_s: float) -> str:
    return asyncio.run(rt.create_event(kw, None, duration_s, Scope(), OPERATOR)).id


def test_a_completed_event_answers_from_the_store_after_a_restart(site: Site) -> None:
    rt = site.start()
    site.run(rt, 20)
    done = _event(rt, 10.0, 120.0)
    site.run(rt, 160)  # the event runs its course and completes
    before = rt.event(done)
    assert before.event.status is EventStatus.COMPLETED
    series_before = rt.event_series(done)
    assert len(series_before) > 50
    del rt

    site.clock.t += 30
    again = site.start()
    assert [v.event.id for v in again.events()] == [done]
    after = again.event(done)
    assert after.event.status is EventStatus.COMPLETED
    assert after.delivered_pct == pytest.approx(before.delivered_pct)
    assert after.tracking_rmse_pct == pytest.approx(before.tracking_rmse_pct)
    assert after.time_to_90pct_s == before.time_to_90pct_s
    assert after.delivered_kw == pytest.approx(before.delivered_kw)
    assert after.commands_sent == before.commands_sent
    series_after = again.event_series(done)
    assert series_after["ts"].tolist() == series_before["ts"].tolist()
    assert np.allclose(series_after["delivered_kw"], series_before["delivered_kw"])
    with pytest.raises(ConflictError, match="already completed"):
        asyncio.run(again.cancel_event(done, OPERATOR))
    with pytest.raises(KeyError):
        again.event("ev-never-made")


def test_a_resumed_event_keeps_the_samples_taken_before_the_restart(site: Site) -> None:
    rt = site.start()
    site.run(rt, 20)
    ev = _event(rt, -12.0, 600.0)
    site.run(rt, 60)
    ts_before = list(rt.dispatcher.trackers[ev].samples_ts)
    sent_before = rt.event(ev).commands_sent
    assert len(ts_before) >= 25
    del rt

    site.clock.t += 20
    restarted = site.clock.t
    again = site.start()
    tracker = again.dispatcher.trackers[ev]
    assert tracker.samples_ts == ts_before  # the samples from before the restart are back
    assert again.event(ev).commands_sent == sent_before
    site.run(again, 40)
    assert tracker.samples_ts[: len(ts_before)] == ts_before
    new = tracker.samples_ts[len(ts_before) :]
    assert len(new) >= 15  # and the event goes on being measured
    assert min(new) > restarted
    series = again.event_series(ev)
    assert series["ts"].is_monotonic_increasing
    assert len(series) == len(tracker.samples_ts)
    assert again.event(ev).commands_sent > sent_before


def test_an_event_is_stored_before_its_creation_returns(site: Site) -> None:
    """The 201 of ``POST /events`` comes after the event's row is written, not before."""
    rt = site.start()
    site.run(rt, 20)
    ev = _event(rt, 5.0, 300.0)  # no flush of the write loop in between
    assert site.store.get_event(ev).id == ev
    assert rt.writer.pending_ops == 0
