"""Overlapping events on the digital twin: each delivers its own target, none twice.

The scenario runner measures events that share devices and time on their own devices
against the twin's shadow (the same devices left alone), so these figures are M&V, not
the dispatcher's own estimate.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.sim.events import parse_event
from gridflock.sim.scenario import ScenarioConfig, run_scenario

DAY = dt.date(2026, 7, 15)


def test_three_overlapping_events_each_meet_their_own_target():
    spec = generate_fleet(600, 11)
    program = spec.sites["program"].value_counts().index[0]
    requests = tuple(
        parse_event(text, DAY, "Europe/Berlin")
        for text in (
            "19:00,2h,90",
            "19:20,1h,60",
            f"19:40,40m,30,program:{program}",
        )
    )
    r = run_scenario(
        spec, ScenarioConfig(date=DAY, hours=4, start_hour=18, seed=3, events=requests)
    )
    assert [o.event.status.value for o in r.events] == ["completed"] * 3
    for o in r.events:
        assert o.performance.delivered_pct == pytest.approx(100, abs=5), o.event.id
        assert o.estimate.delivered_pct == pytest.approx(100, abs=5), o.event.id
    # no command was replayed or sent twice to one device at one time
    seen = set()
    for b in r.commands:
        for d, s in zip(b.device_ids, b.seq, strict=True):
            assert (d, int(s)) not in seen
            seen.add((d, int(s)))
    assert r.acks.replayed == 0
    assert r.acks.accepted > 0
    assert np.isfinite(r.net_with_kw).all()
