"""Charging-profile arithmetic and meter-value reading, against the OCPP rules and by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.gateways.ocpp import (
    MeterError,
    Period,
    Profile,
    active_limit,
    composite_periods,
    kw_to_limit,
    limit_to_kw,
    profile_from_wire,
    profile_to_wire,
    read_sampled,
)

T0 = 1_800_000_000.0


def _p(pid: int, level: int, purpose: str, limit: float, **kw: object) -> Profile:
    return Profile(pid, level, purpose, "W", (Period(0, limit),), start=T0, **kw)  # type: ignore[arg-type]


def test_the_ocpp_precedence_rules() -> None:
    default_low = _p(1, 0, "TxDefaultProfile", 7000)
    default_high = _p(2, 3, "TxDefaultProfile", 5000)
    tx = _p(3, 0, "TxProfile", 9000, transaction_id="42")
    assert active_limit([default_low], T0 + 1, None) == (7000, "W")
    assert active_limit([default_low, default_high], T0 + 1, None) == (5000, "W")
    # a TxProfile beats every TxDefaultProfile, whatever the stack levels
    assert active_limit([default_low, default_high, tx], T0 + 1, "42") == (9000, "W")
    # ... but only for its own transaction, and only while one runs
    assert active_limit([default_high, tx], T0 + 1, "43") == (5000, "W")
    assert active_limit([default_high, tx], T0 + 1, None) == (5000, "W")
    # past validTo or before the start, a profile sets nothing
    lapsed = _p(4, 9, "TxDefaultProfile", 1000, valid_to=T0 + 10)
    assert active_limit([default_low, lapsed], T0 + 5, None) == (1000, "W")
    assert active_limit([default_low, lapsed], T0 + 10, None) == (7000, "W")
    assert active_limit([default_low], T0 - 1, None) is None


def test_units_convert_with_phases_and_voltage() -> None:
    assert kw_to_limit(11.04, "A", 3, 230) == pytest.approx(16.0)
    assert kw_to_limit(7.36, "A", 1, 230) == pytest.approx(32.0)
    assert kw_to_limit(-3.0, "W", 3, 230) == 0.0  # never a negative limit
    assert limit_to_kw(16, "A", 3, 230) == pytest.approx(11.04)


@given(
    kw=st.floats(0, 1000, allow_nan=False),
    phases=st.integers(1, 3),
    volts=st.floats(100, 400),
    unit=st.sampled_from(["A", "W"]),
)
def test_kw_and_limits_round_trip(kw: float, phases: int, volts: float, unit: str) -> None:
    lim = kw_to_limit(kw, unit, phases, volts)  # type: ignore[arg-type]
    assert limit_to_kw(lim, unit, phases, volts) == pytest.approx(kw, rel=1e-9, abs=1e-9)  # type: ignore[arg-type]


_periods = st.lists(st.floats(0, 30_000).map(lambda x: round(x, 1)), min_size=1, max_size=4)
_profile = st.builds(
    lambda pid, level, purpose, limits, offset, valid: Profile(
        pid,
        level,
        purpose,
        "W",
        tuple(Period(60 * k, lim) for k, lim in enumerate(limits)),
        start=T0 + offset,
        valid_to=None if valid is None else T0 + valid,
        transaction_id="tx" if purpose == "TxProfile" else None,
    ),
    st.integers(1, 50),
    st.integers(0, 5),
    st.sampled_from(["TxProfile", "TxDefaultProfile"]),
    _periods,
    st.integers(-120, 240),
    st.one_of(st.none(), st.integers(0, 400)),
)


@settings(max_examples=150, deadline=None)
@given(profiles=st.lists(_profile, max_size=5), tx=st.sampled_from([None, "tx"]))
def test_the_composite_schedule_is_the_active_limit_second_by_second(
    profiles: list[Profile], tx: str | None
) -> None:
    """Oracle: evaluate the stack at every second of the window (no boundary bookkeeping)."""
    rating = 11_000.0
    periods = composite_periods(profiles, T0, 300, tx, "W", 3, 230.0, rating)
    assert periods[0].start_s == 0
    for second in range(300):
        got = next(p.limit for p in reversed(periods) if p.start_s <= second)
        want = active_limit(profiles, T0 + second, tx)
        assert got == round(rating if want is None else want[0], 1), second


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
def test_profiles_survive_the_wire(version: str) -> None:
    p = Profile(
        1001,
        2,
        "TxProfile",
        "A",
        (Period(0, 7.2), Period(900, 16.0)),
        start=T0,
        valid_to=T0 + 1800,
        transaction_id="17",
        duration_s=1800,
    )
    back = profile_from_wire(profile_to_wire(p, version), version, T0)
    assert back == p


def test_meter_values_of_both_versions() -> None:
    per_phase = [
        {"value": str(v), "measurand": "Power.Active.Import", "phase": ph, "unit": "W"}
        for v, ph in ((3000, "L1"), (3100, "L2"), (2900, "L3"))
    ]
    assert read_sampled(per_phase, 3, 230).p_kw == pytest.approx(-9.0)
    v201 = [
        {
            "value": 7.4,
            "measurand": "Power.Active.Import",
            "unit_of_measure": {"unit": "kW", "multiplier": 0},
        },
        {
            "value": 2,
            "measurand": "Power.Active.Export",
            "unit_of_measure": {"unit": "W", "multiplier": 3},
        },
        {"value": 55, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}},
    ]
    r = read_sampled(v201, 3, 230)
    assert (r.p_kw, r.soc) == (pytest.approx(-5.4), pytest.approx(0.55))
    amps = [{"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]
    assert read_sampled(amps, 3, 230).p_kw == pytest.approx(-3 * 16 * 0.23)  # one leg, 3 phases
    energy_only = [{"value": "12345", "measurand": "Energy.Active.Import.Register"}]
    assert math.isnan(read_sampled(energy_only, 3, 230).p_kw)
    for bad, reason in (
        ([{"value": "NaN", "measurand": "Power.Active.Import", "unit": "W"}], "bad_value"),
        ([{"value": "x", "measurand": "SoC"}], "bad_value"),
        ([{"value": "5", "measurand": "Power.Active.Import", "unit": "Wh"}], "bad_unit"),
        ([{"value": "101", "measurand": "SoC"}], "out_of_range"),
    ):
        with pytest.raises(MeterError) as e:
            read_sampled(bad, 3, 230)
        assert e.value.reason == reason
