"""The OpenADR status through the API, and utility events in the events list by source."""

from __future__ import annotations

import pytest

from gridflock.openadr import SignalInterval, SignalKind, UtilityEvent, Ven3


@pytest.mark.parametrize("backend", ["sqlite"])  # nothing here reads the database
def test_status_shows_the_ven_and_what_it_took_up(client, runtime, keys):
    assert client.get("/api/v1/openadr/status").status_code == 401
    r = client.get("/api/v1/openadr/status", headers=keys.h("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["enabled"] is False
    assert body["ven"] is None
    assert body["events"] == []
    assert body["policy"] == "flexibility"

    now = runtime.now()
    utility = UtilityEvent(
        "3",
        "util-1",
        "v1",
        (
            SignalInterval(SignalKind.DELTA_KW, now + 60, now + 960, -1.0),
            SignalInterval(SignalKind.PRICE, now + 60, now + 3660, 0.5),
        ),
        program="p1",
    )
    decision = runtime.openadr.handle(utility)
    assert decision.opt_in, decision.reason
    body = client.get("/api/v1/openadr/status", headers=keys.h("viewer")).json()
    (taken,) = body["events"]
    assert taken["utility_event_id"] == "util-1"
    assert taken["opt"] == "optIn"
    assert taken["program"] == "p1"
    assert taken["received_at"].endswith("Z") or "+00:00" in taken["received_at"]
    assert [p["price_per_kwh"] for p in body["prices"]] == [0.5]
    listed = client.get("/api/v1/events?source=openadr", headers=keys.h("viewer")).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert [e["id"] for e in items] == list(decision.event_ids)
    assert items[0]["source"] == "openadr"
    assert items[0]["target_kw"] == 1.0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_status_shows_a_configured_ven_without_its_password(client, runtime, keys):
    ven = Ven3(runtime.openadr, "https://ven:s3cret@vtn.example/openadr3/3.0.1", "gf-north")
    ven.status.last_poll = runtime.now()
    ven.status.last_error = "ClientConnectorError: the VTN refused the connection"
    runtime.openadr.ven = ven
    body = client.get("/api/v1/openadr/status", headers=keys.h("viewer")).json()
    assert body["enabled"] is True
    shown = body["ven"]
    assert shown["protocol"] == "3"
    assert shown["ven_name"] == "gf-north"
    assert "s3cret" not in shown["vtn_url"]
    assert shown["registered"] is False
    assert shown["last_poll"].startswith("20")
    assert shown["last_error"].startswith("ClientConnectorError")
