"""The dashboard in a real browser against a live `gridflock demo`."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from .conftest import Service, sign_in


def _kw(text: str) -> float:
    """'+1,234 kW' / '−12.5 kW' / '1.20 MW' → kW."""
    t = text.replace("\u2212", "-").replace(",", "").replace("+", "").strip()
    m = re.match(r"(-?[\d.]+)\s*(kW|MW)", t)
    assert m, f"not a power: {text!r}"
    return float(m.group(1)) * (1000.0 if m.group(2) == "MW" else 1.0)


def _wait_for_flexibility(page: Page, service: Service) -> None:
    """Until the twin's fleet has reported (an event needs flexibility to be admitted)."""
    h = {"Authorization": f"Bearer {service.viewer_key}"}
    deadline = time.monotonic() + 60
    while (
        page.context.request.get(service.url + "/api/v1/fleet", headers=h).json()["flex_up_kw"] <= 1
    ):
        assert time.monotonic() < deadline, "no flexibility reported in 60 s"
        page.wait_for_timeout(250)


def test_a_bad_key_is_refused_with_a_message(page: Page, service: Service) -> None:
    page.goto(service.url + "/")
    expect(page).to_have_url(service.url + "/signin")
    page.get_by_label("API key").fill("gf_not_a_real_key")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Sign in").click()
    assert posted.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("That API key is not valid")
    assert not [c for c in page.context.cookies() if c["name"] == "gf_session"]


def test_the_session_cookie_is_http_only_and_the_key_stays_out_of_urls(
    page: Page, service: Service
) -> None:
    sign_in(page, service, service.operator_key)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "gf_session"]
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Strict"
    assert service.operator_key not in cookie["value"]
    assert service.operator_key not in page.url
    assert "gf_session" not in page.evaluate("document.cookie")
    stored = page.evaluate(
        "JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
    )
    assert service.operator_key not in stored
    # a state-changing API call by cookie needs the CSRF header
    api = page.context.request
    # (the fleet may not have reported yet: accept what it can give)
    body = {"target_kw": 5, "duration_s": 60, "scope": "fleet", "allow_partial": True}
    assert api.post(service.url + "/api/v1/events", data=body).status == 403
    created = api.post(
        service.url + "/api/v1/events", data=body, headers={"X-Requested-With": "gridflock"}
    )
    assert created.status == 201
    event_id = created.json()["id"]
    cancel = api.post(
        f"{service.url}/api/v1/events/{event_id}/cancel",
        headers={"X-Requested-With": "gridflock"},
    )
    assert cancel.status == 200
    # signing out ends the session
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(service.url + "/signin")
    assert api.get(service.url + "/api/v1/fleet").status == 401
    page.goto(service.url + "/events")
    expect(page).to_have_url(service.url + "/signin")


def test_the_operator_sees_live_numbers_change(page: Page, service: Service) -> None:
    sign_in(page, service, service.operator_key)
    total = page.locator("#total-power")
    expect(total).to_have_text(re.compile(r"\d.*(kW|MW)"))
    expect(page.locator("#conn")).to_contain_text("live")
    first = total.inner_text()
    deadline = time.monotonic() + 15
    while total.inner_text() == first:
        assert time.monotonic() < deadline, f"the total power stayed at {first} for 15 s"
        page.wait_for_timeout(250)
    expect(page.locator("#devices-online")).to_have_text(re.compile(r"\d+ / \d+"))
    expect(page.locator("#kind-table tbody tr").first).to_be_visible()
    expect(page.locator("#protocol-summary")).to_contain_text(re.compile(r"MQTT .+ online"))


def test_the_operator_creates_an_event_sees_it_deliver_and_cancels_it(
    page: Page, service: Service
) -> None:
    sign_in(page, service, service.operator_key)
    page.get_by_role("link", name="Events", exact=True).click()
    form = page.locator("#event-form")
    # the browser checks the form before sending it
    form.get_by_label("Power [kW]").fill("")
    page.get_by_role("button", name="Create event").click()
    expect(page.locator("#ev-kw-err")).to_contain_text("Enter the power")
    expect(page).to_have_url(service.url + "/events")

    form.get_by_label("Up").check()
    # the form shows what the scope can still deliver, and a larger target is refused
    expect(page.locator("#ev-available")).to_contain_text("Available for this scope and window")
    form.get_by_label("Power [kW]").fill("900000")
    page.get_by_role("button", name="Create event").click()
    expect(page.locator("#ev-problem")).to_contain_text("Available:")
    expect(page).to_have_url(service.url + "/events")

    form.get_by_label("Power [kW]").fill("25")
    form.get_by_label("Duration [min]").fill("10")
    page.get_by_role("button", name="Create event").click()
    page.wait_for_url(re.compile(r"/events/ev-[0-9a-f]+$"))
    expect(page.locator("#ev-target")).to_have_text("+25.0 kW")

    delivered = page.locator("#ev-delivered")
    deadline = time.monotonic() + 40
    while True:
        text = delivered.inner_text()
        if text != "–" and _kw(text) > 0:
            break
        assert time.monotonic() < deadline, f"nothing delivered in 40 s (shows {text!r})"
        page.wait_for_timeout(500)
    assert page.evaluate(
        "Math.max(...document.getElementById('chart-perf').data[1].y.map(Number)) > 0"
    )
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", re.compile(r"/performance\?format=csv$")
    )

    expect(page.locator("#ev-delivered-label")).to_have_text("Delivered now")

    page.get_by_role("button", name="Cancel event").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#ev-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel event")).to_be_hidden()
    # a finished event has no "now": its mean delivery over the window
    expect(page.locator("#ev-delivered-label")).to_have_text("Delivered (mean)")
    expect(page.locator("#ev-pct-hint")).to_have_text("mean over the window")


def test_the_event_list_shows_the_year(page: Page, service: Service) -> None:
    _wait_for_flexibility(page, service)
    h = {"Authorization": f"Bearer {service.operator_key}"}
    created = page.context.request.post(
        service.url + "/api/v1/events",
        data={"target_kw": 5, "duration_s": 60, "allow_partial": True},
        headers=h,
    )
    assert created.status == 201, created.text()
    sign_in(page, service, service.viewer_key)
    page.goto(service.url + "/events")
    window = page.locator("#events-table tbody tr").first.locator("td", has_text="→")
    expect(window).to_have_text(re.compile(r"20\d\d.*→.*20\d\d"))


def test_the_demo_talks_at_once_and_its_devices_ack(page: Page, service: Service) -> None:
    lines = [ln for ln in service.log.read_text().splitlines() if ln.strip()]
    assert lines[0].startswith("Gridflock demo:"), lines[:3]  # before the slow steps
    said = [ln.strip() for ln in lines if ln.startswith("  ")]
    assert said[0].startswith("preparing the database")
    assert said[1] == "generating a fleet of 200 homes..."
    # the in-process devices acknowledge their commands: not all "sent" forever
    _wait_for_flexibility(page, service)
    api = page.context.request
    h = {"Authorization": f"Bearer {service.operator_key}"}
    r = api.post(
        service.url + "/api/v1/events", data={"target_kw": 5, "duration_s": 120}, headers=h
    )
    assert r.status == 201, r.text()
    url = f"{service.url}/api/v1/events/{r.json()['id']}"
    deadline = time.monotonic() + 60
    while True:
        commands = api.get(url + "/commands?limit=1000", headers=h).json()["items"]
        if any(c["status"] == "accepted" for c in commands):
            break
        assert time.monotonic() < deadline, f"no command acknowledged: {commands[:3]}"
        page.wait_for_timeout(500)
    api.post(url + "/cancel", headers=h)
    assert "Discarding nonzero nanoseconds" not in service.log.read_text()


def test_the_api_docs_work_offline(page: Page, service: Service) -> None:
    outside: list[str] = []

    def only_local(route) -> None:  # no internet: anything not from the service fails
        if route.request.url.startswith(service.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(service.url + "/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("Gridflock")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert outside == []
    assert page.request.get(service.url + "/redoc").status == 404  # not offered, not linked


def test_a_viewer_sees_everything_but_no_controls(page: Page, service: Service) -> None:
    sign_in(page, service, service.viewer_key)
    expect(page.locator(".role")).to_have_text("viewer")
    page.goto(service.url + "/events")
    expect(page.locator("#events-table tbody tr").first).to_contain_text("ev-")
    assert page.get_by_role("button", name="Create event").count() == 0
    assert page.locator("#event-form").count() == 0
    page.locator("#events-table tbody a").first.click()
    expect(page.locator("#ev-status")).not_to_have_text("…")
    assert page.get_by_role("button", name="Cancel event").count() == 0
    forbidden = page.context.request.post(
        service.url + "/api/v1/events",
        data={"target_kw": 5, "scope": "fleet"},
        headers={"X-Requested-With": "gridflock"},
    )
    assert forbidden.status == 403


def test_sites_search_and_site_page(page: Page, service: Service) -> None:
    sign_in(page, service, service.viewer_key)
    page.get_by_role("link", name="Sites", exact=True).click()
    expect(page.locator("#sites-count")).to_have_text("200 sites")
    page.get_by_label("Site id contains").fill("000012")
    expect(page.locator("#sites-count")).to_have_text("1 site")
    page.get_by_role("link", name="home-000012").click()
    expect(page.locator("#site-id")).to_have_text("home-000012")
    expect(page.locator("#devices-table tbody tr").first).to_contain_text("home-000012-")
    expect(page.locator("#devices-table tbody tr").first).to_contain_text("MQTT via home-000012")
    expect(page.locator("#site-power")).to_have_text(re.compile(r"kW|MW"))


def test_grid_view_places_sites_and_loads_nodes(page: Page, service: Service) -> None:
    sign_in(page, service, service.viewer_key)
    page.get_by_role("link", name="Grid", exact=True).click()
    expect(page.locator("#node-table tbody tr").first).to_contain_text("%")
    expect(page.locator("#map-note")).to_contain_text("200 sites")
    page.wait_for_function(
        "() => document.getElementById('chart-map').data?.[0]?.x?.length === 200"
    )
