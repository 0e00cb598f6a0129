"""Settlement statements end to end: a store holding three weeks of the twin's telemetry.

The twin runs once per session (``twin_meter`` in tests/conftest.py: 8 homes, 21 days,
one evening event on the last day); its readings go into a fresh store on SQLite and on
PostgreSQL, and the service settles the event from them. The twin's shadow run gives the
true delivery.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest

from gridflock.api import create_app
from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.domain.events import Event, EventSource, EventStatus, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.mv.settlement import DeviceSites, bucket_means, site_power
from gridflock.mv.statement import MethodBaseline, WindowMeter, settle_event
from gridflock.service import Runtime
from gridflock.service.links import NoDevices
from gridflock.service.settlement import read_site_power
from gridflock.store import Store

from ..conftest import TwinMeter
from .conftest import Client, settings_for

TZ = "Europe/Berlin"
DAYS = 21
EVENT_START = pd.Timestamp("2026-06-22 18:00", tz=TZ).tz_convert("UTC")


@dataclass
class Seeded:
    store: Store
    url: str
    viewer: str


@pytest.fixture
def twin(twin_meter: TwinMeter) -> TwinMeter:
    return twin_meter


@pytest.fixture
def seeded(db: tuple[str, Store], twin: TwinMeter) -> Seeded:
    url, store = db
    store.upgrade()
    store.save_fleet(twin.spec)
    store.write_telemetry(twin.readings)
    store.save_event(twin.event)
    later = Event(
        "ev-later",
        3.0,
        twin.event.end + 86400,
        twin.event.end + 90000,
        Scope(),
        EventSource.OPERATOR,
        EventStatus.SCHEDULED,
        "test",
    )
    store.save_event(later)
    return Seeded(store, url, store.create_api_key(Role.VIEWER, "analyst")[0])


@pytest.fixture
def client(seeded: Seeded, twin: TwinMeter, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    for name in list(os.environ):
        if name.startswith("GRIDFLOCK_") and not name.startswith("GRIDFLOCK_TEST_"):
            monkeypatch.delenv(name)
    with _client(seeded, twin) as c:
        yield c


@contextmanager
def _client(seeded: Seeded, twin: TwinMeter) -> Iterator[Client]:
    """A client of a fresh runtime (nothing in memory) over the seeded store, 3 days on."""
    now = twin.event.end + 3 * 86400
    settings = settings_for(seeded.url).model_copy(update={"settlement_placebo_days": 5})
    runtime = Runtime(settings, seeded.store, twin.spec, NoDevices(), lambda: now)
    with Client(create_app(runtime)) as c:
        c.headers = {"Authorization": f"Bearer {seeded.viewer}"}  # type: ignore[attr-defined]
        yield c


def _get(c: Client, url: str, **kw: object) -> object:
    headers = {**c.headers, **kw.pop("headers", {})}  # type: ignore[attr-defined, dict-item]
    return c.get(url, headers=headers, **kw)  # type: ignore[arg-type]


def _site_power_matches_readings(seeded: Seeded, twin: TwinMeter) -> None:
    """SQL aggregation per interval (SQLite and PostgreSQL) equals NumPy over the raw readings."""
    fleet = DeviceSites(twin.spec)
    start = float(twin.result.times[0].timestamp())
    end = start + 3 * 86400
    got = read_site_power(seeded.store, fleet, start, end, 900)
    r = twin.readings
    idx = pd.Index(fleet.device_ids).get_indexer(pd.Index(r.device_ids))
    dev = bucket_means(idx, r.ts, r.p_kw, len(fleet.device_ids), start, 900.0, 3 * 96)
    want, bat = site_power(fleet, dev)
    assert got.net_kw.shape == (8, 3 * 96)
    np.testing.assert_allclose(got.net_kw, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.battery_kw, bat, rtol=1e-9, atol=1e-9)
    assert np.isfinite(got.net_kw).all()  # every reading of every device is there
    # the batteries' stored energy at each interval's start: from one interval to the next
    # it moves by what the battery's metered power over the interval took out or put in
    # (the twin's law: p / eta_discharge out, |p| x eta_charge in) -- an off-by-one
    # interval in the SOC's alignment breaks this balance
    soc = got.battery_soc_kwh
    assert soc is not None
    has = np.isin(fleet.site_ids, twin.spec.devices[DeviceKind.BATTERY]["site_id"])
    assert has.any()
    assert np.isfinite(soc[has, 1:]).all()
    assert (soc[~has] == 0).all()
    b = got.battery_kw[has, 1:-1]
    stored = np.where(b > 0, b / 0.95, b * 0.95) * 0.25
    np.testing.assert_allclose(soc[has, 2:], soc[has, 1:-1] - stored, atol=1e-6)


def _settled_on_the_shadow_equals_the_truth(seeded: Seeded, twin: TwinMeter) -> None:
    """The oracle: against the twin's shadow (the true counterfactual) as its baseline, the
    statement's arithmetic from stored meter data gives the twin's true delivery."""
    fleet = DeviceSites(twin.spec)
    ev = twin.event
    start, end = ev.start - 3600, ev.end + 3600
    got = read_site_power(seeded.store, fleet, start, end, 900)
    r = twin.readings
    idx = pd.Index(fleet.device_ids).get_indexer(pd.Index(r.device_ids))
    t0 = float(got.times[0].timestamp())
    n = len(got.times)
    shadow, _ = site_power(
        fleet, bucket_means(idx, r.ts, r.p_baseline_kw, len(fleet.device_ids), t0, 900.0, n)
    )
    meter = WindowMeter(fleet.site_ids.tolist(), ["F"] * fleet.n_sites, t0, 900.0, got.net_kw)
    st = settle_event(
        ev, meter, [MethodBaseline("shadow", "the twin's shadow", shadow)], "shadow", "oracle"
    )
    truth = twin.result.events[0].performance.energy_delivered_kwh
    assert st.totals["delivered_kwh"] == pytest.approx(truth, rel=1e-6)
    assert st.totals["delivered_kw"] == pytest.approx(
        twin.result.events[0].performance.delivered_kw_mean, rel=1e-6
    )


def test_statement_end_to_end(client: Client, seeded: Seeded, twin: TwinMeter) -> None:
    _site_power_matches_readings(seeded, twin)
    _settled_on_the_shadow_equals_the_truth(seeded, twin)
    r = _get(client, "/api/v1/events/ev-twin/statement")
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    st = r.json()  # type: ignore[attr-defined]
    assert st["format"] == "gridflock-settlement/1"
    assert st["baseline"]["chosen_by"] == "recommended"
    # the store's per-kind power (PV, battery) reaches the MGO baseline it recommends
    assert st["baseline"]["method"] == "uk_dfs_mgo"
    assert "metered per device" in st["baseline"]["reason"]
    assert st["baseline"]["label"] in st["statement"]
    # the reason and the measured accuracy are in every form: JSON, its plain text (the
    # event page's "#st-plain"), and the CSV's header
    reason, acc = st["baseline"]["reason"], st["baseline"]["accuracy"]
    assert "placebo bias" in reason  # the study's measured bias for such a fleet
    assert reason in st["statement"]
    assert acc["basis"]
    assert acc["bias_pct"] is not None
    assert acc["rmse_pct"] is not None
    assert f"{acc['bias_pct']:+.1f}" in st["statement"]
    assert st["totals"]["sites"] == len(st["sites"]) > 0
    # the twin's shadow run knows what the event truly delivered
    truth_kwh = twin.result.events[0].performance.energy_delivered_kwh
    t = st["totals"]
    tolerance = max(3 * t["uncertainty_kwh"], 0.5 * abs(truth_kwh))
    assert abs(t["delivered_kwh"] - truth_kwh) <= tolerance
    assert t["delivered_kwh"] == pytest.approx(sum(s["delivered_kwh"] for s in st["sites"]))
    assert st["peaker"]["avoided_mwh"] >= 0
    methods = {m["method"] for m in st["methods"]}
    assert st["baseline"]["method"] in methods

    csv = _get(client, "/api/v1/events/ev-twin/statement", headers={"Accept": "text/csv"})
    assert csv.status_code == 200  # type: ignore[attr-defined]
    assert csv.headers["content-type"].startswith("text/csv")  # type: ignore[attr-defined]
    table = pd.read_csv(io.StringIO(csv.text), comment="#")  # type: ignore[attr-defined]
    header = [ln for ln in csv.text.splitlines() if ln.startswith("#")]  # type: ignore[attr-defined]
    assert any(reason in ln and st["baseline"]["method"] in ln for ln in header)
    assert any(f"{acc['bias_pct']:+.1f}" in ln for ln in header)
    assert table["site_id"].iloc[-1] == "TOTAL"
    assert float(table["delivered_kwh"].iloc[-1]) == pytest.approx(t["delivered_kwh"], rel=1e-5)
    same = _get(client, "/api/v1/events/ev-twin/statement?format=csv")
    assert same.text == csv.text  # type: ignore[attr-defined]

    other = sorted(methods - {st["baseline"]["method"]})
    if other:
        r2 = _get(client, f"/api/v1/events/ev-twin/statement?method={other[0]}")
        assert r2.status_code == 200  # type: ignore[attr-defined]
        assert r2.json()["baseline"]["chosen_by"] == "requested"  # type: ignore[attr-defined]
    # the replay from the stored SOC is computed when asked for by name (not by default)
    assert "battery_device_replay" not in methods
    r3 = _get(client, "/api/v1/events/ev-twin/statement?method=battery_device_replay")
    assert r3.status_code == 200, r3.text  # type: ignore[attr-defined]
    assert r3.json()["baseline"]["method"] == "battery_device_replay"  # type: ignore[attr-defined]

    sites = _get(client, "/api/v1/events/ev-twin/statement/sites?limit=2")
    page = sites.json()  # type: ignore[attr-defined]
    assert page["total"] == t["sites"]
    assert [s["rank"] for s in page["items"]] == [1, 2][: len(page["items"])]
    nr = _get(client, "/api/v1/events/ev-twin/statement/sites?status=non_responder").json()  # type: ignore[attr-defined]
    assert nr["total"] == t["non_responders"]

    year = _get(client, "/api/v1/value/2026").json()  # type: ignore[attr-defined]
    assert year["events"] == 1
    assert year["avoided_mwh"] == pytest.approx(st["peaker"]["avoided_mwh"])
    assert year["co2_avoided_t"] == pytest.approx(st["peaker"]["co2_avoided_t"])
    _errors(client)

    # issued: kept as made, so a restarted service serves it even with the meter data gone
    assert st["issued_at"] is not None
    with seeded.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM telemetry")
    with _client(seeded, twin) as again:
        kept = _get(again, "/api/v1/events/ev-twin/statement")
        assert kept.json() == st  # type: ignore[attr-defined]
        csv2 = _get(again, "/api/v1/events/ev-twin/statement?format=csv")
        assert csv2.text == csv.text  # type: ignore[attr-defined]
        assert _get(again, "/api/v1/value/2026").json() == year  # type: ignore[attr-defined]


def _errors(client: Client) -> None:
    r = _get(client, "/api/v1/events/nope/statement")
    assert r.status_code == 404  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    r = _get(client, "/api/v1/events/ev-later/statement")
    assert r.status_code == 409  # type: ignore[attr-defined]
    assert "has not started" in r.json()["detail"]  # type: ignore[attr-defined]
    r = _get(client, "/api/v1/events/ev-twin/statement?method=guesswork")
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert _get(client, "/api/v1/value/1999").status_code == 422  # type: ignore[attr-defined]
    assert client.get("/api/v1/value/2026").status_code == 401


def test_bad_emissions_file_is_refused_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "me.csv"
    bad.write_text("ts,kg_co2_per_mwh\n2026-06-01T10:00:00Z,abc\n2026-06-01 11:00,400\n")
    with pytest.raises(pydantic.ValidationError) as err:
        Settings(settlement_emissions_file=bad)
    msg = str(err.value)
    assert "row 2" in msg
    assert "row 3" in msg
    assert "nothing was loaded" in msg
    good = tmp_path / "ok.csv"
    good.write_text("ts,kg_co2_per_mwh\n2026-06-01T10:00:00Z,450\n")
    assert Settings(settlement_emissions_file=good).settlement_emissions_file == good
