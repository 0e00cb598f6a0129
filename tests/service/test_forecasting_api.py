"""``/api/v1/forecasts/...`` end to end: the real runtime over a store with a trained (tiny)
model, forecasts issued, read back over HTTP with their quantiles and actuals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import pytest

from gridflock.api import create_app
from gridflock.domain.auth import Role
from gridflock.forecast import peak_step
from gridflock.service import Runtime
from gridflock.service.forecast_schedule import Due
from gridflock.service.links import NoDevices
from gridflock.store import Store

from ._forecast_data import NOW, Seeded, forecast_settings
from ._forecast_data import seeded as seeded_data

# pandas deprecations raised inside the forecasting core (its pvlib and calendar calls)
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(scope="module")
def seeded() -> Seeded:
    return seeded_data()


class Api:
    def __init__(self, runtime: Runtime, keys: dict[str, str]) -> None:
        self.runtime = runtime
        self.keys = keys
        self.app = create_app(runtime, auth_cache_ttl_s=0)

    def call(self, method: str, path: str, role: str = "viewer", **kw: Any) -> httpx.Response:
        """One request, made in a portal thread (an event loop may run in this one)."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"}

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, f"/api/v1{path}", headers=headers, **kw)

        with anyio.from_thread.start_blocking_portal() as portal:
            return portal.call(go)


@pytest.fixture
def api(seeded: Seeded, tmp_path: Path) -> Iterator[Api]:
    path = tmp_path / "gf.db"
    shutil.copy(seeded.trained, path)
    with Store(f"sqlite:///{path}") as store:
        keys = {r.value: store.create_api_key(r, f"k-{r.value}")[0] for r in Role}
        runtime = Runtime(
            forecast_settings(store.url, forecast_support_fleet_kw=0.001),
            store,
            seeded.spec,
            NoDevices(),
            clock=lambda: NOW,
            weather=seeded.weather,
        )
        fc = runtime.forecaster
        assert fc.load_stored_model()
        fc.step(NOW, Due(False, True, True))
        yield Api(runtime, keys)


def test_status_lists_model_quantities_and_groups(api: Api, seeded: Seeded) -> None:
    r = api.call("GET", "/forecasts")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "ready"
    assert body["model_id"].startswith("fm-")
    assert body["quantities"] == ["net"]
    assert body["quantiles"] == [0.1, 0.5, 0.9]
    assert body["timezone"] == "Europe/Berlin"
    assert body["weather"] == "TwinWeatherSource"
    assert body["groups"]["fleet"] == ["fleet"]
    assert set(body["groups"]["grid_node"]) == set(seeded.spec.grid_nodes["id"])
    # started at 09:05 Berlin: yesterday's 10:00 slot was served at once, today's is next
    assert body["last_day_ahead"] == "2026-05-31T08:00:00Z"
    assert body["next_day_ahead"] == "2026-06-01T08:00:00Z"
    assert body["last_error"] is None


def test_a_group_forecast_with_quantiles_and_actuals(api: Api) -> None:
    r = api.call("GET", "/forecasts/day_ahead/net")
    assert r.status_code == 200, r.text
    f = r.json()
    assert (f["group_by"], f["group"], f["horizon"]) == ("fleet", "fleet", "day_ahead")
    assert len(f["ts"]) == 96
    assert f["ts"][0] == "2026-06-01T22:00:00Z"  # local day 2 June
    assert set(f["values"]) == {"p10", "p50", "p90"}
    p10, p50, p90 = (np.array(f["values"][k], dtype=float) for k in ("p10", "p50", "p90"))
    assert np.all(p10 <= p50 + 1e-9)
    assert np.all(p50 <= p90 + 1e-9)
    assert p50.mean() < 0  # homes import: net is negative (generator sign)
    assert f["actual_kw"] == [None] * 96  # tomorrow has not happened
    # the same figures as the service holds
    [held] = api.runtime.forecaster.latest("day_ahead", "net", "fleet", "fleet")
    np.testing.assert_allclose(p50, held.values_kw[:, 1])
    # the peak time: a step of the day, where the model's error process puts the import peak
    ar = api.runtime.forecaster.error_ar("net", "day_ahead", "group")
    idx = peak_step(held.values_kw, held.quantiles, ar, lowest=True)
    assert f["peak_at"] == f["ts"][idx]
    # on or near the median's import plateau, not in a trough
    assert -p50[idx] >= -p50.min() - 0.25 * (p50.max() - p50.min())


def test_intraday_of_a_grid_node(api: Api, seeded: Seeded) -> None:
    node = str(seeded.spec.grid_nodes["id"].iloc[-1])
    r = api.call("GET", "/forecasts/intraday/net", params={"group_by": "grid_node", "group": node})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["group"] == node
    assert len(f["ts"]) == 32
    assert f["ts"][0] == "2026-06-01T07:15:00Z"


def test_unknown_quantity_group_and_horizon_are_problems(api: Api) -> None:
    r = api.call("GET", "/forecasts/day_ahead/solar")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "unknown quantity 'solar'" in r.json()["detail"]
    assert "net" in r.json()["detail"]
    r = api.call("GET", "/forecasts/day_ahead/net", params={"group_by": "region", "group": "mars"})
    assert r.status_code == 404
    assert "unknown region 'mars'" in r.json()["detail"]
    r = api.call("GET", "/forecasts/day_ahead/net", params={"group_by": "region"})
    assert r.status_code == 404
    assert "give a group of region" in r.json()["detail"]
    r = api.call("GET", "/forecasts/weekly/net")
    assert r.status_code == 422
    r = api.call("GET", "/forecasts/day_ahead/net", params={"group_by": "street"})
    assert r.status_code == 422


def test_index_support_windows_and_models(api: Api) -> None:
    r = api.call("GET", "/forecasts/latest", params={"horizon": "intraday", "limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] >= 4  # fleet, grid nodes, programmes, regions
    assert len(page["items"]) == 2
    assert all(i["horizon"] == "intraday" for i in page["items"])
    r = api.call("GET", "/forecasts/support-windows")
    assert r.status_code == 200, r.text
    windows = r.json()
    fleet = [w for w in windows if w["scope"] == "fleet"]
    assert fleet  # the fleet threshold is 0.001 kW: support is needed
    assert all(0 <= w["probability"] <= 1 for w in windows)
    assert all(w["start"] < w["end"] for w in windows)
    r = api.call("GET", "/forecasts/models")
    assert r.status_code == 200, r.text
    [model] = r.json()["items"]
    assert model["in_use"]
    assert model["params"]["quantities"] == ["net"]
    assert model["backtest"]
    assert model["size_bytes"] > 1000


def test_retrain_needs_an_operator_and_is_queued(api: Api) -> None:
    r = api.call("POST", "/forecasts/retrain", role="viewer")
    assert r.status_code == 403
    r = api.call("POST", "/forecasts/retrain", role="operator")
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] is True
    assert api.runtime.forecaster.schedule.due(NOW).retrain
    r = api.call("POST", "/forecasts/retrain", role="admin")
    assert r.status_code == 202
    assert r.json()["accepted"] is False  # already asked
    assert api.call("GET", "/forecasts").json()["retrain_requested"] is True


def test_before_any_issue_the_answer_says_what_to_wait_for(seeded: Seeded, tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        store.upgrade()
        store.save_fleet(seeded.spec)
        key = store.create_api_key(Role.VIEWER, "v")[0]
        runtime = Runtime(
            forecast_settings(store.url), store, seeded.spec, NoDevices(), lambda: NOW
        )
        api = Api(runtime, {"viewer": key})
        r = api.call("GET", "/forecasts/day_ahead/net")
        assert r.status_code == 404
        assert "no model is trained" in r.json()["detail"]
        assert api.call("GET", "/forecasts/support-windows").json() == []
        assert api.call("GET", "/forecasts/models").json()["items"] == []
        body = api.call("GET", "/forecasts").json()
        assert body["model_id"] is None
        assert body["weather"] == "none"


def test_a_site_forecast_from_memory_with_its_measurements(api: Api, seeded: Seeded) -> None:
    site = str(seeded.spec.sites["id"].iloc[0])
    r = api.call("GET", f"/forecasts/intraday/net/sites/{site}")
    assert r.status_code == 200, r.text
    f = r.json()
    assert (f["group_by"], f["group"]) == ("site", site)
    assert len(f["ts"]) == 32
    per_site = api.runtime.forecaster.site_forecasts["intraday"]["net"]
    row = list(per_site.keys).index(site)
    np.testing.assert_allclose(f["values"]["p50"], per_site.values[row, :, 1])
    r = api.call("GET", "/forecasts/intraday/net/sites/nowhere")
    assert r.status_code == 404
    assert "site 'nowhere'" in r.json()["detail"]


def test_an_earlier_issue_shows_what_was_forecast_for_hours_that_happened(api: Api) -> None:
    fc = api.runtime.forecaster
    later = NOW + 3 * 3600  # three hours on: a new intraday issue, the first one now past
    fc.clock = lambda: later
    fc.step(later, Due(False, True, False))
    latest = api.call("GET", "/forecasts/intraday/net").json()
    assert latest["issued_at"] == "2026-06-01T10:05:00Z"
    r = api.call("GET", "/forecasts/intraday/net", params={"issued_before": latest["issued_at"]})
    assert r.status_code == 200, r.text
    earlier = r.json()
    assert earlier["issued_at"] == "2026-06-01T07:05:00Z"
    # its first steps have happened since, and the store's telemetry says what they were
    # (none in this store after NOW: the seeded history ends there, so still unknown)
    assert len(earlier["actual_kw"]) == 32
    r = api.call("GET", "/forecasts/intraday/net", params={"issued_before": "2020-01-01T00:00:00Z"})
    assert r.status_code == 404
    assert "before 2020-01-01T00:00:00Z" in r.json()["detail"]
    r = api.call("GET", "/forecasts/intraday/net", params={"issued_before": "2026-06-01T12:00:00"})
    assert r.status_code == 422
    r = api.call(
        "GET", "/forecasts/intraday/net", params={"issued_before": "0001-01-01T00:00+05:00"}
    )
    assert r.status_code == 404
