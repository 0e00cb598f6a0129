"""The protocol-free parts: events of either protocol read into one shape, durations,
start randomisation, prices laid over a tariff, and the service's answer to awkward events.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridflock.domain.events import EventSource, EventStatus
from gridflock.openadr import SignalInterval, SignalKind, UtilityEvent, from_oadr3, from_oadr20
from gridflock.openadr._model import random_offset_s
from gridflock.openadr._schema import Event, format_duration, parse_duration
from gridflock.optimize.autopilot import Tariff
from gridflock.service import Runtime
from gridflock.service.links import MemoryLink
from gridflock.service.openadr import overlay_prices

from ._rig import rig

T = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)


def _oadr20(signals: list[dict], **desc: object) -> dict:
    return {
        "event_descriptor": {
            "event_id": "ev1",
            "modification_number": 2,
            "event_status": "far",
            "market_context": "oadr://dr",
            **desc,
        },
        "active_period": {
            "dtstart": T,
            "duration": timedelta(hours=1),
            "tolerance": {"tolerate": {"startafter": timedelta(minutes=5)}},
        },
        "event_signals": signals,
        "response_required": "always",
    }


def _signal(name: str, stype: str, values: list[float], **kw: object) -> dict:
    return {
        "signal_name": name,
        "signal_type": stype,
        "signal_id": "s",
        "intervals": [
            {
                "dtstart": T + timedelta(minutes=15 * k),
                "duration": timedelta(minutes=15),
                "signal_payload": v,
                "uid": k,
            }
            for k, v in enumerate(values)
        ],
        **kw,
    }


def test_a_2_0b_event_reads_into_intervals_with_kinds_and_units() -> None:
    ev = from_oadr20(
        _oadr20(
            [
                _signal(
                    "LOAD_DISPATCH", "delta", [-5.0, -3.0], measurement={"unit": "W", "scale": "k"}
                ),
                _signal("ELECTRICITY_PRICE", "price", [0.4]),
                _signal(
                    "LOAD_DISPATCH",
                    "setpoint",
                    [2000.0],
                    measurement={"unit": "W", "scale": "none"},
                ),
                _signal("BID_LOAD", "setpoint", [1.0]),
            ]
        )
    )
    assert (ev.event_id, ev.modification, ev.program) == ("ev1", "2", "oadr://dr")
    assert ev.randomize_s == 300
    assert ev.unsupported == ("BID_LOAD/setpoint",)
    t0 = T.timestamp()
    delta = [i for i in ev.intervals if i.kind is SignalKind.DELTA_KW]
    assert [(i.start - t0, i.end - t0, i.value) for i in delta] == [
        (0, 900, -5.0),
        (900, 1800, -3.0),
    ]
    (sp,) = [i for i in ev.intervals if i.kind is SignalKind.SETPOINT_KW]
    assert sp.value == pytest.approx(2.0)  # 2000 W
    assert [p.value for p in ev.prices] == [0.4]
    assert from_oadr20(_oadr20([], event_status="cancelled")).cancelled


def test_a_2_0b_event_without_id_or_zone_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="event_id"):
        from_oadr20({"event_descriptor": {}})
    naive = _signal("LOAD_DISPATCH", "delta", [-1.0])
    naive["intervals"][0]["dtstart"] = datetime(2026, 7, 1, 15)
    with pytest.raises(ValueError, match="time zone"):
        from_oadr20(_oadr20([naive]))


def _oadr3(payloads: list[dict], **kw: object) -> Event:
    return Event.model_validate(
        {
            "id": "e3",
            "programID": "p1",
            "modificationDateTime": "2026-07-01T10:00:00Z",
            "intervalPeriod": {
                "start": "2026-07-01T15:00:00Z",
                "duration": "PT15M",
                "randomizeStart": "PT2M",
            },
            "intervals": [{"id": 0, "payloads": payloads}],
            **kw,
        }
    )


def test_an_openadr_3_event_reads_with_its_units_and_defaults() -> None:
    ev = from_oadr3(
        _oadr3(
            [
                {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-500]},
                {"type": "PRICE", "values": [0.3]},
                {"type": "GHG", "values": [120]},
            ],
            payloadDescriptors=[{"payloadType": "DISPATCH_SETPOINT_RELATIVE", "units": "W"}],
        )
    )
    assert ev.randomize_s == 120
    assert ev.unsupported == ("GHG",)
    (d,) = ev.dispatch
    assert (d.kind, d.value, d.end - d.start) == (SignalKind.DELTA_KW, -0.5, 900)
    assert d.start == T.timestamp()
    with pytest.raises(ValueError, match="must be a number"):
        from_oadr3(_oadr3([{"type": "SIMPLE", "values": ["high"]}]))
    with pytest.raises(ValueError, match="not power"):
        from_oadr3(
            _oadr3(
                [{"type": "DISPATCH_SETPOINT", "values": [1]}],
                payloadDescriptors=[{"payloadType": "DISPATCH_SETPOINT", "units": "KWH"}],
            )
        )


@given(st.integers(0, 30), st.integers(0, 23), st.integers(0, 59), st.floats(0, 59.999))
def test_durations_read_back_what_they_say(d: int, h: int, m: int, s: float) -> None:
    text = f"P{d}DT{h}H{m}M{s:.3f}S"
    assert parse_duration(text).total_seconds() == pytest.approx(
        d * 86400 + h * 3600 + m * 60 + round(s, 3), abs=1e-6
    )
    assert parse_duration(format_duration(d * 86400 + h * 3600)).total_seconds() == (
        d * 86400 + h * 3600
    )


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "not an ISO 8601"),
        ("1H", "not an ISO 8601"),
        ("PT", "not an ISO 8601"),
        ("PTxS", "not an ISO 8601"),
        ("P1M", "no fixed length"),
        ("P1Y", "no fixed length"),
    ],
)
def test_durations_without_a_fixed_length_are_refused(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(bad)


@given(st.text(min_size=1, max_size=40), st.floats(0, 1e6))
def test_a_randomised_start_is_within_its_window_and_the_same_each_time(
    event_id: str, window: float
) -> None:
    a = random_offset_s(event_id, window)
    assert a == random_offset_s(event_id, window)
    assert 0 <= a <= window
    if window == 0:
        assert a == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 95), st.integers(1, 8), st.floats(-1, 2, allow_nan=False)),
        max_size=6,
    )
)
def test_utility_prices_replace_the_tariff_where_they_apply(
    prices: list[tuple[int, int, float]],
) -> None:
    times = pd.date_range("2026-07-01", periods=96, freq="15min", tz="UTC")
    base = Tariff(kind="flat", flat_eur_per_kwh=0.3)
    t0 = times[0].timestamp()
    given_ = [
        SignalInterval(SignalKind.PRICE, t0 + 900 * a, t0 + 900 * (a + n), v) for a, n, v in prices
    ]
    out = overlay_prices(base, given_, times, "UTC")
    # the oracle: step by step, the last price (by start) covering the step, else the tariff
    expected = np.full(96, 0.3)
    for a, n, v in sorted(prices, key=lambda p: p[0]):
        expected[a : min(a + n, 96)] = v
    assert np.allclose(out.import_prices(times, "UTC"), expected)
    assert (out is base) == (not prices)


def test_the_service_answers_awkward_events(tmp_path: Path) -> None:
    rt, clock = rig(tmp_path)
    svc = rt.openadr
    now = clock.t

    def utility(eid: str, *ivs: SignalInterval, mod: str = "0", **kw: object) -> UtilityEvent:
        return UtilityEvent("2.0b", eid, mod, tuple(ivs), **kw)  # type: ignore[arg-type]

    def delta(a: float, b: float, v: float) -> SignalInterval:
        return SignalInterval(SignalKind.DELTA_KW, now + a, now + b, v)

    # back-to-back intervals of one value are one Gridflock event; randomised start moves it
    d = svc.handle(utility("two", delta(60, 960, -1.0), delta(960, 1860, -1.0), randomize_s=600))
    assert d.opt_in, d.reason
    (gid,) = d.event_ids
    ev = rt.event(gid).event
    offset = random_offset_s("two", 600)
    assert (ev.start, ev.end) == (
        pytest.approx(now + 60 + offset),
        pytest.approx(now + 1860 + offset),
    )
    assert ev.created_by == "apikey:openadr/two/0"
    # an id that holds a slash and starts like another stays its own event
    slash = svc.handle(utility("two/b", delta(2000, 2100, -0.5)))
    assert slash.opt_in, slash.reason
    assert rt.event(slash.event_ids[0]).event.created_by == "apikey:openadr/two%2Fb/0"
    # received again: the same answer, nothing created
    assert svc.handle(utility("two", delta(60, 960, -1.0), delta(960, 1860, -1.0))) == d
    # an interval already over is skipped; level 0 is normal operation
    over = svc.handle(
        utility(
            "over", delta(-600, -60, -1.0), SignalInterval(SignalKind.LEVEL, now + 60, now + 120, 0)
        )
    )
    assert over.opt_in
    assert over.event_ids == ()
    bad_level = svc.handle(utility("lvl", SignalInterval(SignalKind.LEVEL, now, now + 60, 7)))
    assert not bad_level.opt_in
    assert "0 to 3" in bad_level.reason
    nothing = svc.handle(utility("unknown", unsupported=("BID_LOAD/setpoint",)))
    assert not nothing.opt_in
    assert "BID_LOAD" in nothing.reason
    # a setpoint: the fleet's import now minus the setpoint is asked for
    importing = svc.fleet_import_kw()
    sp = svc.handle(
        utility("sp", SignalInterval(SignalKind.SETPOINT_KW, now + 60, now + 600, importing - 2.0))
    )
    assert sp.opt_in, sp.reason
    assert rt.event(sp.event_ids[0]).event.target_kw == pytest.approx(2.0, abs=1e-3)
    # a restart: a new service over the same database resumes the event; the VTN sending
    # it again finds it there instead of making a second one
    assert rt.writer.flush_ops(10)
    rt2 = Runtime(rt.settings, rt.store, rt.spec, MemoryLink(rt.spec), clock=clock)
    assert gid in rt2.resume()
    again = rt2.openadr.handle(utility("two", delta(60, 960, -1.0), delta(960, 1860, -1.0)))
    assert again.event_ids == (gid,)
    assert again.reason == "taken up before a restart"
    newer = rt2.openadr.handle(utility("two", delta(60, 960, -2.0), mod="5"))
    assert rt2.event(gid).event.status is EventStatus.CANCELLED  # the older version's
    # ... and the restarted fleet has reported nothing yet: no flexibility to promise
    assert not newer.opt_in
    assert "lacks the flexibility" in newer.reason
    rt2.writer.flush_ops(10)
    # an internal error in one event does not stop the next
    broken = utility("nan", SignalInterval(SignalKind.SETPOINT_KW, now, now + 60, math.nan))
    assert not svc.handle(broken).opt_in
    assert [v.event.source for v in rt.events()].count(EventSource.OPENADR) == 3
    # cancelled: its Gridflock events are cancelled
    svc.handle(utility("two", mod="1", cancelled=True))
    assert rt.event(gid).event.status is EventStatus.CANCELLED
    assert rt.event(slash.event_ids[0]).event.status is EventStatus.SCHEDULED  # not "two"'s

    # a price reaches the autopilot: the tariff of its next plan carries it over its window
    svc.handle(utility("price", SignalInterval(SignalKind.PRICE, now + 3600, now + 7200, 0.9)))
    job = rt.autopilot._prepare(now)
    assert job is not None
    assert job.settings.tariff.kind == "dynamic"
    ts = job.times.as_unit("ns").asi8 / 1e9
    prices = job.settings.tariff.import_prices(job.times, job.tz)
    assert np.all(prices[(ts >= now + 3600) & (ts + 900 <= now + 7200)] == 0.9)
    assert not np.any(prices[ts + 900 <= now + 3600] == 0.9)


def test_settings_check_the_ven_and_mask_its_secrets() -> None:
    from pydantic import ValidationError

    from gridflock.config import Settings

    s = Settings(
        openadr_ven="3",
        openadr_vtn_url="https://ven:pw@vtn.example/openadr3/3.0.1",
        openadr_token="tok",
        openadr_client_secret="sec",
    )
    shown = s.public()
    assert shown["openadr_token"] == shown["openadr_client_secret"] == "********"
    assert "pw" not in shown["openadr_vtn_url"]
    with pytest.raises(ValidationError, match="needs openadr_vtn_url"):
        Settings(openadr_ven="2.0b")
    with pytest.raises(ValidationError, match="invalid scope"):
        Settings(openadr_scope="feeder")
    with pytest.raises(ValidationError, match="go together"):
        Settings(openadr_cert_file="ven.crt")


def test_serve_refuses_a_ven_without_its_vtn(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gridflock.cli import app

    monkeypatch.delenv("GRIDFLOCK_OPENADR_VTN_URL", raising=False)
    result = CliRunner().invoke(app, ["serve", "--openadr", "3", "--db", "sqlite://"])
    assert result.exit_code == 2
    assert "needs openadr_vtn_url" in result.output
