"""Sites, devices and their telemetry."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def test_devices_page_and_filter(client, runtime, keys):
    h = keys.h("viewer")
    r = client.get("/api/v1/devices", params={"limit": 10}, headers=h)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == runtime.state.n
    assert len(page["items"]) == 10
    first_ids = [d["id"] for d in page["items"]]
    r = client.get("/api/v1/devices", params={"limit": 10, "offset": 5}, headers=h)
    assert [d["id"] for d in r.json()["items"]][:5] == first_ids[5:]

    r = client.get("/api/v1/devices", params={"kind": "battery", "limit": 1000}, headers=h)
    items = r.json()["items"]
    assert items
    assert all(d["kind"] == "battery" for d in items)
    assert r.json()["total"] == runtime.spec.counts()["battery"]
    assert all(0 <= d["soc"] <= 1 for d in items)

    r = client.get("/api/v1/devices", params={"online": "false", "limit": 1000}, headers=h)
    assert r.json()["total"] == int((~runtime.state.online).sum())
    assert all(not d["online"] for d in r.json()["items"])

    site = runtime.spec.sites["id"].iloc[0]
    r = client.get("/api/v1/devices", params={"site_id": site}, headers=h)
    assert {d["site_id"] for d in r.json()["items"]} == {site}


def test_bad_pagination_and_filter_values(client, keys):
    h = keys.h("viewer")
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"kind": "toaster"}, "kind"),
    ):
        r = client.get("/api/v1/devices", params=params, headers=h)
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["errors"][0]["field"] == field


def test_device_detail(client, runtime, keys):
    dev = runtime.spec.devices
    bat = str(next(df for k, df in dev.items() if k.value == "battery")["id"].iloc[0])
    r = client.get(f"/api/v1/devices/{bat}", headers=keys.h("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "battery"
    assert body["attributes"]["e_kwh"] > 0
    assert body["ts"] == "2026-06-01T12:00:00Z"


def test_sites_filters_and_detail(client, runtime, keys):
    h = keys.h("viewer")
    r = client.get("/api/v1/sites", params={"program": "summer-peak"}, headers=h)
    items = r.json()["items"]
    assert items
    assert all(s["program"] == "summer-peak" for s in items)
    r = client.get("/api/v1/sites", params={"q": "00001"}, headers=h)
    assert [s["id"] for s in r.json()["items"]][:1] == ["home-000001"]
    node = runtime.spec.sites["grid_node"].iloc[0]
    r = client.get("/api/v1/sites", params={"grid_node": node, "limit": 1}, headers=h)
    assert r.json()["total"] == int((runtime.spec.sites["grid_node"] == node).sum())

    r = client.get("/api/v1/sites/home-000001", headers=h)
    assert r.status_code == 200
    site = r.json()
    assert site["device_count"] == len(site["devices"]) > 0
    assert abs(site["p_kw"] - sum(d["p_kw"] for d in site["devices"])) < 1e-9
    assert {"p_kw", "soc", "online", "ts"} <= site["devices"][0].keys()


def test_unknown_site_and_device_are_404_problems(client, keys):
    h = keys.h("viewer")
    for path in (
        "/api/v1/sites/nope",
        "/api/v1/devices/nope",
        "/api/v1/devices/nope/telemetry",
        "/api/v1/sites/nope/telemetry",
        "/api/v1/no-such-thing",
    ):
        r = client.get(path, headers=h)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["instance"] == path


def test_device_telemetry_raw_and_resampled(client, runtime, keys):
    h = keys.h("viewer")
    dev = str(runtime.spec.all_devices()["id"].iloc[0])
    r = client.get(f"/api/v1/devices/{dev}/telemetry", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["every_s"] is None
    assert len(body["items"]) == 30
    assert body["items"][0]["ts"] == "2026-06-01T11:00:00Z"
    r = client.get(f"/api/v1/devices/{dev}/telemetry", params={"every_s": 600}, headers=h)
    items = r.json()["items"]
    assert len(items) == 3
    assert items[0]["p_kw"] < items[-1]["p_kw"]


def test_site_telemetry_sums_its_devices(client, runtime, keys):
    devs = runtime.spec.all_devices()
    first = devs.iloc[0]
    both_here = (devs["site_id"] == first["site_id"]).to_numpy()[:2].all()
    r = client.get(
        f"/api/v1/sites/{first['site_id']}/telemetry",
        params={"every_s": 1800},
        headers=keys.h("viewer"),
    )
    assert r.status_code == 200
    items = r.json()["items"]
    assert items
    assert all(i["ts"].endswith("Z") for i in items)
    if not both_here:
        assert items[0]["devices"] == 1


def test_admin_deletes_a_device(client, runtime, keys):
    dev = str(runtime.spec.all_devices()["id"].iloc[0])
    n = runtime.state.n
    assert client.delete(f"/api/v1/devices/{dev}", headers=keys.h("operator")).status_code == 403
    assert client.delete(f"/api/v1/devices/{dev}", headers=keys.h("admin")).status_code == 204
    assert runtime.state.n == n - 1
    assert client.get(f"/api/v1/devices/{dev}", headers=keys.h("viewer")).status_code == 404
    assert client.delete(f"/api/v1/devices/{dev}", headers=keys.h("admin")).status_code == 404


def test_readings_reach_the_right_devices_after_a_device_is_deleted(client, runtime, keys):
    """The in-process twin keeps its fleet layout; the runtime must match readings by id."""
    bat = [str(i) for i in runtime.state.device_ids if str(i).endswith("-bat")]
    assert client.delete(f"/api/v1/devices/{bat[1]}", headers=keys.h("admin")).status_code == 204
    runtime.step(10.0)
    r = client.get("/api/v1/devices", params={"limit": 1000}, headers=keys.h("viewer"))
    now = "2026-06-01T12:00:10Z"
    fresh = {d["id"]: d["p_kw"] for d in r.json()["items"] if d["ts"] == now}
    assert fresh
    twin = runtime.link.twin
    truth = twin.p_kw[twin.cap.indices(list(fresh))]
    wrong = {i: (p, t) for (i, p), t in zip(fresh.items(), truth, strict=True) if p != t}
    assert not wrong, f"readings applied to other devices (device: (held, reported)): {wrong}"


def test_devices_by_protocol(client, runtime, keys):
    """Every device says how it is reached; the fleet counts them by protocol."""
    h = keys.h("viewer")
    r = client.get("/api/v1/devices", params={"protocol": "mqtt", "limit": 1}, headers=h)
    assert r.status_code == 200
    assert r.json()["total"] == runtime.state.n  # the default protocol
    assert r.json()["items"][0]["protocol"] == "mqtt"
    r = client.get("/api/v1/devices", params={"protocol": "ocpp"}, headers=h)
    assert r.json()["total"] == 0
    assert client.get("/api/v1/devices", params={"protocol": "x"}, headers=h).status_code == 422
    fleet = client.get("/api/v1/fleet", headers=h).json()
    assert fleet["by_protocol"] == [
        {
            "protocol": "mqtt",
            "devices_total": runtime.state.n,
            "devices_online": int(runtime.state.online.sum()),
        }
    ]
