"""A small accuracy study in the twin: the recommended method is unbiased on placebo days.

The full study (1,000 and 10,000 homes, five mixes) is benchmarks/bench_mv_accuracy.py;
this one runs 400 homes (a quarter held out) for four weeks so it fits in the test budget,
and asserts that the recommended method's mean error on placebo days (where the twin's
shadow says the true effect is zero) is within 2 % of the event size plus the 95 %
margin of its mean over the few placebo days (Student's t: 3.18 standard errors for
four days, not 2).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.mv import (
    Calendar,
    EventWindow,
    SiteInfo,
    assign_control_group,
    compute_baseline,
    fleet_mix,
    recommend_method,
)
from gridflock.sim.meters import PlannedEvent, run_meters, site_info

TZ = "Europe/Berlin"
FIRST = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def run():  # type: ignore[no-untyped-def]
    spec = generate_fleet(400, 5)
    info = site_info(spec)
    control = assign_control_group(info.kinds, info.size, 0.25, 5)  # about 100 control sites
    days = [FIRST + dt.timedelta(days=d) for d in range(15, 28)]
    working = [d for d in days if d.weekday() < 5]
    events = [PlannedEvent(d, 19.0, 2.0, 0.3) for d in working[::2]]
    placebo = working[1::2]
    return run_meters(spec, FIRST, 28, events, control=control, seed=5), placebo


def _t95(n: int) -> float:
    """Two-sided 95 % quantile of Student's t for the mean of ``n`` values."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def window(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    s = pd.Timestamp(f"{day} 19:00", tz=TZ)
    return s, s + pd.Timedelta(hours=2)


def test_recommended_method_is_unbiased_on_placebo_days(run) -> None:  # type: ignore[no-untyped-def]
    r, placebo = run
    part = ~r.control
    cal = Calendar.of(event_days=r.event_days)
    s0, e0 = window(r.event_days[0])
    rec = recommend_method(fleet_mix(r.actual, EventWindow(s0, e0, "e", part), r.info))
    assert rec.method == "control_group"
    assert f"{int(r.control.sum())} randomised control sites" in rec.reason

    def error_and_truth(day: dt.date) -> tuple[float, float]:
        s, e = window(day)
        b = compute_baseline(rec.method, r.actual, EventWindow(s, e, str(day), part), cal, r.info)
        cols = r.actual.times.get_indexer(b.times)
        m = b.valid & part
        truth = (r.actual.net_kw[m][:, cols] - r.shadow.net_kw[m][:, cols]).sum(axis=0).mean()
        est = b.delivered_kw[m].sum(axis=0).mean()
        return float(est - truth), float(truth)

    scale = np.mean([error_and_truth(d)[1] for d in r.event_days])
    assert scale > 0  # the events delivered
    errors = np.array([error_and_truth(d)[0] for d in placebo])
    bound = 0.02 * scale + _t95(len(errors)) * errors.std(ddof=1) / np.sqrt(len(errors))
    assert abs(errors.mean()) <= bound, (rec.method, errors / scale)


def test_without_a_control_group_the_device_telemetry_method_is_unbiased(run) -> None:  # type: ignore[no-untyped-def]
    """No hold-out: the recommendation uses the metered PV and battery (MGO).

    The held-out sites were never dispatched, so counting them as participants only
    dilutes the events; the truth (actual - shadow) still says what was delivered.
    """
    r, placebo = run
    everyone = np.ones(len(r.control), bool)
    info = SiteInfo(r.info.kinds, r.info.size, r.info.grid_node, None)
    cal = Calendar.of(event_days=r.event_days)
    s0, e0 = window(r.event_days[0])
    rec = recommend_method(fleet_mix(r.actual, EventWindow(s0, e0, "e", everyone), info))
    assert rec.method.endswith("_mgo")
    assert "bias" in rec.reason

    def error_and_truth(day: dt.date) -> tuple[float, float]:
        s, e = window(day)
        b = compute_baseline(rec.method, r.actual, EventWindow(s, e, str(day), everyone), cal)
        cols = r.actual.times.get_indexer(b.times)
        m = b.valid
        truth = (r.actual.net_kw[m][:, cols] - r.shadow.net_kw[m][:, cols]).sum(axis=0).mean()
        return float(b.delivered_kw[m].sum(axis=0).mean() - truth), float(truth)

    scale = np.mean([error_and_truth(d)[1] for d in r.event_days])
    errors = np.array([error_and_truth(d)[0] for d in placebo])
    bound = 0.02 * scale + _t95(len(errors)) * errors.std(ddof=1) / np.sqrt(len(errors))
    assert abs(errors.mean()) <= bound, (rec.method, errors / scale)
