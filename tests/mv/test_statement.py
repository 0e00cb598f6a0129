"""Settlement statements: arithmetic against hand-computed values, formats, the peaker avoided."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.domain.errors import InvalidError
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.mv.baselines import Baseline
from gridflock.mv.measure import Delivery, EventMV
from gridflock.mv.meter import Calendar, EventWindow, MeterData
from gridflock.mv.peaker import (
    OCGT_KG_CO2_PER_MWH,
    EmissionFactors,
    EmissionsFileError,
    parse_marginal_emissions,
    read_marginal_emissions,
)
from gridflock.mv.settlement import site_placebo_sigma
from gridflock.mv.statement import (
    FORMAT,
    Accuracy,
    MethodBaseline,
    RewardTerms,
    SettlementTerms,
    Statement,
    WindowMeter,
    settle,
    settle_event,
)
from gridflock.mv.value import yearly_value

T0 = 1_782_900_000.0  # 2026-07-01 10:00 UTC, a whole hour
Z90 = 1.6448536269514722


def _event(target: float = 2.0, start: float = T0 + 450, end: float = T0 + 3150) -> Event:
    return Event("ev-1", target, start, end, Scope(), EventSource.OPERATOR, created_by="test")


def _meter() -> WindowMeter:
    # site A answers: import 2 kW -> 1, 0.5, 0.5, 1; site B keeps importing 2 kW, one gap
    actual = np.array([[-1.0, -0.5, -0.5, -1.0], [-2.0, np.nan, -2.0, -2.0]])
    return WindowMeter(["A", "B"], ["F1", "F2"], T0, 900.0, actual)


def _baseline(**kw: object) -> MethodBaseline:
    args: dict[str, object] = {
        "method": "flat",
        "label": "Flat 2 kW import",
        "baseline_kw": np.full((2, 4), -2.0),
        "accuracy": Accuracy(1.5, 6.0, "twin placebo days, 40 days"),
        "sigma_kw": np.array([0.1, 0.2]),
    }
    args.update(kw)
    return MethodBaseline(**args)  # type: ignore[arg-type]


def test_hand_computed_statement() -> None:
    """Event [T0+7.5 min, T0+52.5 min): intervals weigh 0.5, 1, 1, 0.5; 0.75 h."""
    terms = SettlementTerms(rewards=RewardTerms("kwh", 0.5, "EUR"))
    st_ = settle_event(_event(), _meter(), [_baseline()], "flat", "asked for", terms=terms)
    a, b = st_.sites.set_index("site_id").loc["A"], st_.sites.set_index("site_id").loc["B"]
    # A delivers 1, 1.5, 1.5, 1 kW: (0.5 + 1.5 + 1.5 + 0.5) * 0.25 h = 1.0 kWh over 0.75 h
    assert a.delivered_kwh == pytest.approx(1.0)
    assert a.delivered_kw == pytest.approx(4 / 3)
    assert a.status == "responder"
    assert a["rank"] == 1
    assert a.reward == pytest.approx(0.5)
    assert a.coverage == pytest.approx(1.0)
    assert a.baseline_kw == pytest.approx(-2.0)
    assert a.actual_kw == pytest.approx((-0.5 - 0.5 - 0.5 - 0.5) / 3)  # weighted mean
    assert b.delivered_kwh == pytest.approx(0.0)
    assert b.status == "non_responder"
    assert b.reward == 0
    assert b.coverage == pytest.approx(2 / 3)  # the gap weighs 1 of 3 interval-hours
    t = st_.totals
    assert t["delivered_kw"] == pytest.approx(4 / 3)
    assert t["delivered_pct"] == pytest.approx(100 * (4 / 3) / 2)
    assert t["uncertainty_kw"] == pytest.approx(Z90 * math.sqrt(0.1**2 + 0.2**2))
    assert t["uncertainty_kwh"] == pytest.approx(t["uncertainty_kw"] * 0.75)
    assert (t["responders"], t["non_responders"], t["sites_without_data"]) == (1, 1, 0)
    # peaker: 1 kWh at the meter = 1 / 0.95 kWh generated, at 577 kg/MWh
    assert st_.peaker.avoided_mwh == pytest.approx(1.0 / 0.95 / 1000)
    assert st_.peaker.co2_avoided_t == pytest.approx(577.0 / 0.95 / 1e6)
    assert st_.peaker.peak_capacity_mw == pytest.approx((4 / 3) / 0.95 / 1000)
    # per interval fleet totals: only the 4 intervals touching the event, B's gap left out
    assert st_.intervals["delivered_kw"].tolist() == pytest.approx([1.0, 1.5, 1.5, 1.0])
    assert st_.intervals["covered_sites"].tolist() == [2, 1, 2, 2]
    nodes = st_.grid_nodes.set_index("grid_node")
    assert nodes.loc["F1", "delivered_kwh"] == pytest.approx(1.0)
    assert nodes.loc["F2", "responders"] == 0
    text = st_.plain()
    assert "Flat 2 kW import" in text
    assert "bias +1.5 %" in text
    assert "RMSE 6.0 %" in text


def test_kw_event_rewards_and_method_totals() -> None:
    other = _baseline(
        method="low",
        label="Lower",
        baseline_kw=np.full((2, 4), -1.5),
        sigma_kw=None,
        sigma_total_kw=0.05,
    )
    terms = SettlementTerms(rewards=RewardTerms("kw_event", 10.0, "GBP"))
    st_ = settle_event(
        _event(), _meter(), [_baseline(), other], "low", "x", chosen_by="requested", terms=terms
    )
    # against -1.5 kW: A delivers 0.5, 1, 1, 0.5 -> 0.625 kWh; B -0.5 kW where metered
    a = st_.sites.set_index("site_id").loc["A"]
    assert a.delivered_kwh == pytest.approx((0.25 + 1 + 1 + 0.25) * 0.25)
    assert a.reward == pytest.approx(10.0 * a.delivered_kw)
    b = st_.sites.set_index("site_id").loc["B"]
    assert b.delivered_kwh == pytest.approx(-0.5 * (0.5 + 1 + 0.5) * 0.25)
    assert b.reward == 0.0  # moving the wrong way is not charged
    m = st_.methods.set_index("method")
    assert bool(m.loc["low", "chosen"])
    assert not bool(m.loc["flat", "chosen"])
    assert m.loc["flat", "delivered_kwh"] == pytest.approx(1.0)
    assert m.loc["low", "uncertainty_kw"] == pytest.approx(Z90 * 0.05)
    assert st_.totals["uncertainty_kw"] == pytest.approx(Z90 * 0.05)
    assert st_.as_dict()["rewards"]["unit"] == "GBP/kW-event"


def test_down_event_avoids_no_peaker() -> None:
    st_ = settle_event(_event(target=-2.0), _meter(), [_baseline()], "flat", "x")
    assert st_.direction == "down"
    assert st_.peaker.avoided_mwh == 0
    assert st_.peaker.peak_capacity_mw == 0
    assert (st_.sites["reward"] == 0).all()
    assert set(st_.sites["status"]) == {"non_responder"}


def test_site_without_data_and_empty_fleet() -> None:
    meter = WindowMeter(["A", "B"], ["F1", "F1"], T0, 900.0, np.full((2, 4), np.nan))
    st_ = settle_event(_event(), meter, [_baseline()], "flat", "x")
    assert st_.totals["sites_without_data"] == 2
    assert any("no meter data" in n for n in st_.notes)
    empty = WindowMeter([], [], T0, 900.0, np.zeros((0, 4)))
    st0 = settle_event(
        _event(), empty, [_baseline(baseline_kw=np.zeros((0, 4)), sigma_kw=None)], "flat", "x"
    )
    assert st0.totals["delivered_kwh"] == 0
    assert st0.totals["sites"] == 0
    assert st0.to_csv().count("TOTAL") == 1
    json.dumps(st0.as_dict())


def test_unknown_method_and_shape_errors() -> None:
    with pytest.raises(InvalidError, match="choose one of flat"):
        settle_event(_event(), _meter(), [_baseline()], "pjm", "x")
    with pytest.raises(ValueError, match="must match"):
        settle_event(_event(), _meter(), [_baseline(baseline_kw=np.zeros((2, 3)))], "flat", "x")
    with pytest.raises(InvalidError, match="reward basis"):
        RewardTerms("kwh-ish", 1.0)  # type: ignore[arg-type]


def test_json_and_csv_formats() -> None:
    st_ = settle_event(_event(), _meter(), [_baseline()], "flat", "recommended for PV-heavy")
    data = json.loads(json.dumps(st_.as_dict()))
    assert data["format"] == FORMAT
    assert data["baseline"]["method"] == "flat"
    assert data["baseline"]["accuracy"]["bias_pct"] == 1.5
    assert data["event"]["start"] == "2026-07-01T10:07:30Z"
    assert data["intervals"][0]["ts"] == "2026-07-01T10:00:00Z"
    assert [s["site_id"] for s in data["sites"]] == ["A", "B"]
    assert "Flat 2 kW import" in data["statement"]
    csv = st_.to_csv()
    lines = csv.splitlines()
    assert lines[0] == f"# {FORMAT}"
    assert any(line.startswith("# baseline: Flat 2 kW import [flat]") for line in lines)
    table = pd.read_csv(io.StringIO(csv), comment="#")
    assert list(table["site_id"]) == ["A", "B", "TOTAL"]
    assert set(table["method"]) == {"flat"}
    total = table.set_index("site_id").loc["TOTAL"]
    assert float(total["delivered_kwh"]) == pytest.approx(1.0)
    assert float(total["reward"]) == pytest.approx(st_.totals["reward"])


def test_hourly_marginal_emissions() -> None:
    text = "ts,kg_co2_per_mwh\n2026-07-01T10:00:00Z,400\n2026-07-01T09:00:00+00:00,500\n"
    series = parse_marginal_emissions(text)
    assert list(series) == [500.0, 400.0]  # sorted by hour
    terms = SettlementTerms(emissions=EmissionFactors(hourly=series, hourly_source="test.csv"))
    st_ = settle_event(_event(), _meter(), [_baseline()], "flat", "x", terms=terms)
    assert st_.peaker.co2_avoided_t == pytest.approx(400.0 / 0.95 / 1e6)
    assert st_.peaker.hours_from_series == 1
    assert st_.peaker.hours_default == 0
    # an event an hour later is not covered: the default factor, and a note saying so
    later = _event(start=T0 + 3600 + 450, end=T0 + 3600 + 3150)
    meter = WindowMeter(["A"], ["F1"], T0 + 3600, 900.0, np.array([[-1.0, -0.5, -0.5, -1.0]]))
    base = _baseline(baseline_kw=np.full((1, 4), -2.0), sigma_kw=None)
    st2 = settle_event(later, meter, [base], "flat", "x", terms=terms)
    assert st2.peaker.co2_avoided_t == pytest.approx(OCGT_KG_CO2_PER_MWH / 0.95 / 1e6)
    assert any("does not cover 1 hour" in n for n in st2.notes)


def test_bad_emissions_file_lists_every_problem(tmp_path: pytest.TempPathFactory) -> None:
    text = (
        "ts,kg_co2_per_mwh\n"
        "2026-07-01T10:00:00Z,400\n"
        "2026-07-01 11:00,400\n"  # no offset
        "2026-07-01T12:30:00Z,400\n"  # not on the hour
        "2026-07-01T10:00:00Z,410\n"  # twice
        "2026-07-01T13:00:00Z,-5\n"  # negative
        "yesterday,abc\n"
    )
    with pytest.raises(EmissionsFileError) as err:
        parse_marginal_emissions(text, "me.csv")
    msg = str(err.value)
    for part in (
        "row 3",
        "row 4",
        "row 5",
        "row 6",
        "row 7",
        "with an offset",
        "whole hour",
        "more than once",
        "[0, 2000]",
        "nothing was loaded",
    ):
        assert part in msg
    with pytest.raises(EmissionsFileError, match=r"missing column.*kg_co2_per_mwh"):
        parse_marginal_emissions("time,value\n2026-07-01T10:00:00Z,1\n")
    with pytest.raises(EmissionsFileError, match="not found"):
        read_marginal_emissions("/nonexistent/me.csv")
    with pytest.raises(InvalidError, match="outside"):
        EmissionFactors(default_kg_per_mwh=577_000)


def test_yearly_value() -> None:
    terms = SettlementTerms(rewards=RewardTerms("kwh", 0.5, "EUR"))
    s1 = settle_event(_event(), _meter(), [_baseline()], "flat", "x", terms=terms)
    s2 = settle_event(_event(target=-2.0), _meter(), [_baseline()], "flat", "x", terms=terms)
    old = _event(start=T0 - 365 * 86400, end=T0 - 365 * 86400 + 1800)
    s3 = settle_event(old, _meter(), [_baseline()], "flat", "x", terms=terms)
    y = yearly_value([s1, s2, s3], 2026)
    assert (y.events, y.up_events) == (2, 1)
    assert y.delivered_mwh == pytest.approx(0.001)
    assert y.avoided_mwh == pytest.approx(1.0 / 0.95 / 1000)
    assert y.peak_capacity_mw == pytest.approx((4 / 3) / 0.95 / 1000)
    assert y.rewards == pytest.approx(0.5)
    assert y.methods == {"flat": 2}
    assert y.as_dict()["by_month"] == [
        {
            "month": 7,
            "events": 2,
            "delivered_mwh": pytest.approx(0.001),
            "avoided_mwh": pytest.approx(y.avoided_mwh),
            "co2_avoided_t": pytest.approx(y.co2_avoided_t),
            "rewards": pytest.approx(0.5),
        }
    ]
    empty = yearly_value([], 2030)
    assert empty.events == 0
    assert empty.as_dict()["by_month"] == []


@settings(max_examples=25, deadline=None)
@given(
    n_sites=st.integers(0, 6),
    n_steps=st.integers(1, 12),
    start_off=st.floats(0, 900),
    length=st.floats(60, 10_000),
    target=st.sampled_from([-5.0, 3.0, 1e6]),
    seed=st.integers(0, 1000),
)
def test_invariants(
    n_sites: int, n_steps: int, start_off: float, length: float, target: float, seed: int
) -> None:
    """Sites add up to the total, intervals to the energy; rewards and coverage stay in bounds."""
    rng = np.random.default_rng(seed)
    actual = rng.normal(-2, 3, (n_sites, n_steps))
    actual[rng.random(actual.shape) < 0.2] = np.nan
    base = rng.normal(-2, 3, (n_sites, n_steps))
    meter = WindowMeter([f"s{i}" for i in range(n_sites)], ["F"] * n_sites, T0, 900.0, actual)
    ev = _event(target=target, start=T0 + start_off, end=T0 + start_off + length)
    mb = MethodBaseline("m", "M", base, sigma_kw=np.full(n_sites, 0.3))
    st_ = settle_event(ev, meter, [mb], "m", "x")
    t = st_.totals
    assert t["delivered_kwh"] == pytest.approx(st_.sites["delivered_kwh"].sum(), abs=1e-9)
    hours = (ev.end - ev.start) / 3600
    assert t["delivered_kw"] == pytest.approx(t["delivered_kwh"] / hours, abs=1e-9)
    w = np.clip(
        (np.minimum(st_.intervals["ts"] + 900, ev.end) - np.maximum(st_.intervals["ts"], ev.start))
        / 900,
        0,
        1,
    )
    kwh = float((st_.intervals["delivered_kw"] * w).sum() * 0.25)
    assert kwh == pytest.approx(t["delivered_kwh"], abs=1e-9)
    assert ((st_.sites["coverage"] >= 0) & (st_.sites["coverage"] <= 1 + 1e-12)).all()
    assert (st_.sites["reward"] >= 0).all()
    assert st_.peaker.avoided_mwh >= 0
    assert st_.peaker.co2_avoided_t >= 0
    json.dumps(st_.as_dict())


def _delivery(method: str, base: float, sites: list[str], valid: list[bool]) -> Delivery:
    times = pd.date_range(pd.Timestamp(T0, unit="s", tz="UTC"), periods=4, freq="15min")
    actual = np.tile(np.array([-1.0, -0.5, -0.5, -1.0]), (len(sites), 1))
    b = Baseline(
        method=method,
        event_id="ev-1",
        site_ids=np.array(sites, dtype=object),
        times=times,
        kw=np.full((len(sites), 4), base),
        actual_kw=actual,
        valid=np.array(valid),
        adjustment=np.full(len(sites), np.nan),
        days_used=np.full(len(sites), 10),
    )
    return Delivery(
        method=method,
        baseline=b,
        delivered_kw=0.0,
        delivered_kwh=0.0,
        baseline_kw=2 * base,
        actual_kw=0.0,
        site_ids=b.site_ids,
        per_site_kw=np.zeros(len(sites)),
        per_site_kwh=np.zeros(len(sites)),
        node_ids=np.array([], dtype=object),
        per_node_kw=np.zeros(0),
        placebo_bias_kw=0.08,
        uncertainty_kw=0.15,
        placebo_days=10,
    )


def test_settle_from_measured_event() -> None:
    """A measured event (gridflock.mv.measure_event's result) settles with its accuracy."""
    window = EventWindow(
        pd.Timestamp(T0 + 450, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 3150, unit="s", tz="UTC"),
        "ev-1",
    )
    mv = EventMV(
        window,
        {
            "uk_dfs": _delivery("uk_dfs", -2.0, ["A", "B"], [True, True]),
            "control_group": _delivery("control_group", -1.5, ["B"], [True]),
        },
        recommended="uk_dfs",
        reason="lowest placebo bias on PV-heavy fleets (+0.4 %)",
    )
    st_ = settle(_event(), mv, {"A": "F1", "B": "F2"})
    assert st_.method == "uk_dfs"
    assert st_.chosen_by == "recommended"
    assert "UK Demand Flexibility Service" in st_.method_label
    assert st_.reason.startswith("lowest placebo bias")
    # placebo delivers +0.08 kW of a 4 kW import: +2 %; RMSE sqrt(0.08² + 0.15²) / 4
    assert st_.accuracy.bias_pct == pytest.approx(2.0)  # overstates delivery
    assert st_.accuracy.rmse_pct == pytest.approx(100 * math.hypot(0.08, 0.15) / 4)
    assert st_.totals["uncertainty_kw"] == pytest.approx(Z90 * 0.15)
    assert st_.totals["delivered_kwh"] == pytest.approx(2.0)  # two sites of 1 kWh
    other = settle(_event(), mv, {"A": "F1", "B": "F2"}, method="control_group")
    assert other.chosen_by == "requested"
    assert "recommended method is uk_dfs" in other.reason
    a = other.sites.set_index("site_id")
    assert a.loc["A", "status"] == "no_data"  # the control-group method left A out
    assert a.loc["B", "delivered_kwh"] == pytest.approx(0.625)
    with pytest.raises(InvalidError, match="could not be measured"):
        settle(_event(), EventMV(window, {}, "uk_dfs", ""), {})


def test_a_statement_comes_back_from_its_json_unchanged() -> None:
    """What the store keeps (the JSON) gives back the same statement, CSV included."""
    for meter, base in ((_meter(), _baseline()), (_meter(), _baseline(sigma_kw=None))):
        st_ = settle_event(_event(), meter, [base], "flat", "x", notes=("a note",))
        st_ = dataclasses.replace(st_, issued_at="2026-07-02T00:00:00Z")
        data = json.loads(json.dumps(st_.as_dict(), allow_nan=False))
        back = Statement.from_dict(data)
        assert back.as_dict() == st_.as_dict()
        assert back.to_csv() == st_.to_csv()
        assert back.plain() == st_.plain()
    with pytest.raises(ValueError, match="not a gridflock-settlement/1 statement"):
        Statement.from_dict({"format": "other"})


def test_a_method_fitted_per_grid_node_is_compared_but_settles_no_site() -> None:
    window = EventWindow(
        pd.Timestamp(T0 + 450, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 3150, unit="s", tz="UTC"),
        "ev-1",
    )
    per_node = _delivery("regression", -2.0, ["F1"], [True])
    per_node = dataclasses.replace(per_node, delivered_kw=1.25, delivered_kwh=0.9)
    dfs = _delivery("uk_dfs", -2.0, ["A", "B"], [True, True])
    dfs = dataclasses.replace(dfs, placebo_bias_kw=0.4)  # worse than battery's
    bat = _delivery("battery_device", -2.1, ["A", "B"], [True, True])
    mv = EventMV(
        window,
        {"regression": per_node, "uk_dfs": dfs, "battery_device": bat},
        recommended="regression",
        reason="weather at hand",
    )
    st_ = settle(_event(), mv, {"A": "F1", "B": "F1"})
    assert st_.method == "battery_device"  # the per-site method with the lowest RMSE
    assert "fitted per grid node" in st_.reason
    assert "weather at hand" in st_.reason
    m = st_.methods.set_index("method")
    assert m.loc["regression", "delivered_kwh"] == pytest.approx(0.9)
    assert m.loc["regression", "delivered_kw"] == pytest.approx(1.25)
    with pytest.raises(InvalidError, match="computed per grid node"):
        settle(_event(), mv, {"A": "F1", "B": "F1"}, method="regression")


def test_per_site_uncertainty_from_placebo_days() -> None:
    """A site whose days repeat exactly has no placebo error; a site with day-to-day
    offsets has the spread of those offsets' errors (checked against a direct count)."""
    tz = "UTC"
    times = pd.date_range("2026-05-01", "2026-06-16", freq="30min", tz=tz, inclusive="left")
    hours = (times.hour + times.minute / 60).to_numpy()
    shape = -1.0 - np.sin(2 * np.pi * hours / 24)
    rng = np.random.default_rng(3)
    day_no = (times.normalize() - times[0]).days.to_numpy()
    offsets = rng.normal(0, 0.5, day_no.max() + 1)
    net = np.vstack([shape, shape + offsets[day_no]])
    meter = MeterData(np.array(["steady", "wobbly"], dtype=object), times, net, tz)
    start = pd.Timestamp("2026-06-15 17:00", tz=tz)  # a Monday
    window = EventWindow(start, start + pd.Timedelta(hours=2), "ev", None, 1)
    sigma = site_placebo_sigma(meter, window, "caiso_10in10_unadjusted", Calendar(), None, 5)
    assert sigma["steady"] == pytest.approx(0.0, abs=1e-9)
    # directly: on each of the 5 placebo days (the working days before), the error is that
    # day's offset minus the mean offset of the 10 working days before it
    work = [d for d in pd.date_range("2026-05-01", "2026-06-14", tz=tz) if d.weekday() < 5]
    idx = [(d - times[0].normalize()).days for d in work]
    errs = [
        offsets[idx[i]] - np.mean(offsets[idx[i - 10 : i]]) for i in range(len(idx) - 5, len(idx))
    ]
    assert sigma["wobbly"] == pytest.approx(float(np.std(errs, ddof=1)), rel=1e-6)
