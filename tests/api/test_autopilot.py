"""The autopilot through the API: status, plan, proposals approved and vetoed, policies, log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

PROBLEM = "application/problem+json"


def evening_peak(times: pd.DatetimeIndex) -> np.ndarray:
    """A forecast with an evening peak (the fleet's import without batteries) [kW]."""
    hour = times.tz_convert("Europe/Berlin").hour.to_numpy() + times.minute.to_numpy() / 60
    return (
        20.0
        + 60.0 * np.exp(-(((hour - 19.0) / 1.5) ** 2))
        - 50.0 * np.exp(-(((hour - 13.0) / 2.5) ** 2))
    )


@pytest.fixture(autouse=True)
def _forecast(runtime, client, keys):
    """Plan on a forecast with a peak to shave (the forecasts are the forecast part's job)."""
    runtime.autopilot.forecaster = evening_peak
    r = client.post("/api/v1/autopilot/replan", headers=keys.h("operator"))
    assert r.status_code == 200, r.text


def _pending(client, keys) -> list[dict]:
    r = client.get("/api/v1/autopilot/proposals?status=pending", headers=keys.h("viewer"))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_plan_and_proposals_are_shown_ahead(client, runtime, keys):
    v = keys.h("viewer")
    status = client.get("/api/v1/autopilot", headers=v).json()
    assert status["enabled"] is True
    assert status["mode"] == "approval"
    assert status["planned_at"] is not None
    plan = client.get("/api/v1/autopilot/plan", headers=v).json()
    assert len(plan["points"]) == 96  # 24 h of quarter hours
    point = plan["points"][0]
    assert point["import_kw"] == pytest_approx(
        point["forecast_import_kw"] + point["charge_kw"] - point["discharge_kw"]
    )
    items = _pending(client, keys)
    assert items, "the plan proposed nothing"
    for p in items:
        assert p["action"] in ("precharge", "discharge")
        assert (p["target_kw"] > 0) == (p["action"] == "discharge")
        assert p["reason"]
        assert p["policy"] in ("peak_shaving", "arbitrage", "surplus", "support_windows")
    # approval mode: nothing happened on its own
    events = client.get("/api/v1/events?source=autopilot", headers=v).json()
    assert events["total"] == 0


def test_operator_approves_and_vetoes_and_it_is_logged(client, runtime, keys):
    op = keys.h("operator")
    first, *rest = _pending(client, keys)
    r = client.post(f"/api/v1/autopilot/proposals/{first['id']}/approve", headers=op)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "executed"
    assert done["decided_by"] == "apikey:ops-desk"
    ev = client.get(f"/api/v1/events/{done['event_id']}", headers=op).json()
    assert ev["source"] == "autopilot"
    assert ev["target_kw"] == pytest_approx(first["target_kw"])
    # decided once only
    again = client.post(f"/api/v1/autopilot/proposals/{first['id']}/approve", headers=op)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    assert "not pending" in again.json()["detail"]
    if rest:
        r = client.post(
            f"/api/v1/autopilot/proposals/{rest[0]['id']}/veto",
            json={"reason": "crew on site"},
            headers=op,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "vetoed"
    # a viewer may not decide; an unknown proposal is a 404
    r = client.post(f"/api/v1/autopilot/proposals/{first['id']}/veto", headers=keys.h("viewer"))
    assert r.status_code == 403
    r = client.post("/api/v1/autopilot/proposals/ap-nope/approve", headers=op)
    assert r.status_code == 404
    log = client.get("/api/v1/autopilot/decisions?limit=500", headers=op).json()
    kinds = {d["kind"] for d in log["items"]}
    assert {"plan", "propose", "approve", "execute"} <= kinds
    if rest:
        veto = [d for d in log["items"] if d["kind"] == "veto"]
        assert veto[0]["reason"] == "vetoed: crew on site"
        assert veto[0]["actor"] == "apikey:ops-desk"
    # after a re-plan the vetoed window is not proposed again
    runtime.step(900.0, every_s=150.0)
    if rest:
        again = [
            p
            for p in _pending(client, keys)
            if p["action"] == rest[0]["action"]
            and p["start"] < rest[0]["end"]
            and rest[0]["start"] < p["end"]
        ]
        assert again == []


def test_policies_are_set_validated_and_logged(client, runtime, keys):
    op = keys.h("operator")
    body = client.get("/api/v1/autopilot/policies", headers=op).json()
    body["mode"] = "automatic"
    body["policies"]["peak_shaving"]["limit_kw"] = 50.0
    r = client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["policies"]["peak_shaving"]["limit_kw"] == 50.0
    runtime.step(60.0, every_s=60.0)
    # automatic: what starts within the lead time became an event on its own
    executed = client.get("/api/v1/autopilot/proposals?status=executed", headers=op).json()
    events = client.get("/api/v1/events?source=autopilot", headers=op).json()
    assert events["total"] == executed["total"]
    log = client.get("/api/v1/autopilot/decisions?kind=settings", headers=op).json()
    assert log["items"][0]["detail"]["mode"] == "automatic"
    # refusals say what is wrong
    bad = dict(body, tariff={"kind": "tou", "bands": [[0, 12, 0.2]]})
    r = client.request("PUT", "/api/v1/autopilot/policies", json=bad, headers=op)
    assert r.status_code == 422
    assert "cover every hour" in r.json()["detail"]
    bad = dict(body)
    bad["policies"] = dict(body["policies"], peak_shaving={"scope": "grid_node:nowhere"})
    r = client.request("PUT", "/api/v1/autopilot/policies", json=bad, headers=op)
    assert r.status_code == 422
    assert "nowhere" in r.json()["detail"]
    r = client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=keys.h("viewer"))
    assert r.status_code == 403


def test_replan_is_refused_while_off(client, keys):
    op = keys.h("operator")
    body = client.get("/api/v1/autopilot/policies", headers=op).json()
    body["enabled"] = False
    assert (
        client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op).status_code
        == 200
    )
    r = client.post("/api/v1/autopilot/replan", headers=op)
    assert r.status_code == 409
    assert "off" in r.json()["detail"]
    body["enabled"] = True
    assert (
        client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op).status_code
        == 200
    )
    r = client.post("/api/v1/autopilot/replan", headers=op)
    assert r.status_code == 200
    assert r.json()["planned_at"] is not None


def pytest_approx(x: float):
    import pytest

    return pytest.approx(x, rel=1e-6, abs=1e-6)


def test_the_plan_goes_to_the_batteries_as_schedules(client, runtime, keys):
    op = keys.h("operator")
    body = client.get("/api/v1/autopilot/policies", headers=op).json()
    body["mode"] = "automatic"
    body["execute_as"] = "schedules"
    r = client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op)
    assert r.status_code == 200, r.text
    runtime.step(30.0, every_s=30.0)
    log = client.get("/api/v1/autopilot/decisions?kind=schedule", headers=op).json()
    assert log["total"] >= 1, "no schedules sent"
    detail = log["items"][0]["detail"]
    assert detail["sent"] + detail["unchanged"] > 0
    assert detail["refused"] == {}
    # the batteries follow the plan; no event was needed
    assert client.get("/api/v1/events?source=autopilot", headers=op).json()["total"] == 0
    executed = client.get("/api/v1/autopilot/proposals?status=executed", headers=op).json()
    assert executed["total"] > 0
    assert all(p["event_id"] is None for p in executed["items"])
    # the batteries accept them: their planned power is now the dispatcher's baseline
    runtime.step(10.0)
    now = runtime.fake_clock.t
    planned = runtime.loop.plans.planned_kw(now)
    sl = runtime.loop.state.kind_slices[
        next(k for k in runtime.loop.state.kinds if k.value == "battery")
    ]
    assert np.isfinite(planned[sl]).any()


def test_a_restarted_autopilot_takes_up_its_settings_and_proposals(client, runtime, keys):
    from gridflock.service.autopilot import AutopilotService

    op = keys.h("operator")
    body = client.get("/api/v1/autopilot/policies", headers=op).json()
    body["policies"]["peak_shaving"]["limit_kw"] = 42.0
    assert client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op).is_success
    pending = {p["id"] for p in _pending(client, keys)}
    assert pending
    assert runtime.writer.flush()
    again = AutopilotService(runtime.loop, runtime.event_service, runtime.read_model)
    again.load()
    assert again.settings.policies.peak_shaving.limit_kw == 42.0
    assert {p.id for p in again.proposals_list("pending")} == pending


def test_a_slow_solve_never_holds_the_control_loop(client, runtime, keys, monkeypatch):
    """The re-plan's solve runs on a worker: the cycle that starts it returns at once."""
    import threading
    import time

    ap = runtime.autopilot
    op = keys.h("operator")
    body = client.get("/api/v1/autopilot/policies", headers=op).json()
    body["enabled"] = True
    assert (
        client.request("PUT", "/api/v1/autopilot/policies", json=body, headers=op).status_code
        == 200
    )
    release = threading.Event()
    solve = ap._compute

    def slow(job):
        release.wait(30)
        return solve(job)

    monkeypatch.setattr(ap, "_compute", slow)
    ap._next_plan = -float("inf")
    planned_before = ap.planned_at
    t0 = time.perf_counter()
    for _ in range(3):  # three control cycles while the solve is held back
        runtime.fake_clock.t += 30.0
        runtime.control_cycle()
    assert time.perf_counter() - t0 < 5.0
    assert ap._running is not None
    assert ap.planned_at == planned_before, "a plan was taken up before it was solved"
    release.set()
    assert ap.finish(runtime.fake_clock.t, timeout_s=60)
    assert ap.planned_at == runtime.fake_clock.t
    assert ap.plan is not None
