"""The Plan page in a real browser against a live `gridflock demo`: plan, proposals, log."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Service, sign_in


def _commit_a_window(page: Page, service: Service) -> None:
    """Give the autopilot a support window to deliver 20-50 min from now, and re-plan."""
    h = {"Authorization": f"Bearer {service.operator_key}"}
    deadline = time.monotonic() + 60  # until the batteries have reported: then they are planned on
    while (
        page.context.request.get(service.url + "/api/v1/fleet", headers=h).json()["flex_up_kw"] <= 1
    ):
        assert time.monotonic() < deadline, "no flexibility reported in 60 s"
        page.wait_for_timeout(250)
    api = service.url + "/api/v1/autopilot"
    settings = page.context.request.get(api + "/policies", headers=h).json()
    now = dt.datetime.now(dt.UTC)
    q = 900 * (int(now.timestamp()) // 900 + 2)  # quarter hours, so the block is one piece
    start = dt.datetime.fromtimestamp(q, dt.UTC)
    settings["policies"]["support_windows"] = {
        "enabled": True,
        "windows": [
            {
                "start": start.isoformat(),
                "end": (start + dt.timedelta(minutes=30)).isoformat(),
                "kw": 5.0,
                "source": "grid signal",
            }
        ],
    }
    r = page.context.request.put(api + "/policies", data=settings, headers=h)
    assert r.status == 200, r.text()
    r = page.context.request.post(api + "/replan", headers=h)
    assert r.status == 200, r.text()


def test_the_operator_sees_the_plan_and_approves_a_proposal(page: Page, service: Service) -> None:
    _commit_a_window(page, service)
    sign_in(page, service, service.operator_key)
    page.get_by_role("link", name="Plan", exact=True).click()
    expect(page).to_have_url(service.url + "/plan")
    expect(page.locator("#ap-mode")).to_have_text("approval required")
    # the plan is drawn: forecast, charge, discharge, import with the plan, price
    deadline = time.monotonic() + 20
    while not page.evaluate("(document.getElementById('chart-plan').data || []).length === 5"):
        assert time.monotonic() < deadline, "the plan chart was not drawn in 20 s"
        page.wait_for_timeout(250)
    assert page.evaluate("document.getElementById('chart-plan').layout.shapes.length >= 1"), (
        "the support window is not shaded"
    )
    if os.environ.get("GRIDFLOCK_SCREENSHOTS") == "docs":  # as test_screenshots.py does
        page.wait_for_timeout(1500)
        img = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard-plan.png"
        page.screenshot(path=str(img), full_page=True)
    row = page.locator("#proposals-table tbody tr", has_text="support windows").first
    expect(row).to_contain_text("support window")
    expect(row).to_contain_text("discharge")
    row.get_by_role("button", name="Approve").click()
    executed = page.locator("#proposals-table tbody tr", has_text="executed")
    page.locator("#ap-filter").select_option("executed")
    expect(executed.first).to_be_visible()
    link = executed.first.get_by_role("link")
    expect(link).to_be_visible()
    event_id = link.inner_text()
    assert event_id.startswith("ev-")
    # the decision log shows who approved what and why
    log = page.locator("#decisions-table tbody")
    expect(log).to_contain_text("approve")
    expect(log).to_contain_text("demo-operator")
    # the event it made is an autopilot event
    h = {"Authorization": f"Bearer {service.viewer_key}"}
    ev = page.context.request.get(f"{service.url}/api/v1/events/{event_id}", headers=h).json()
    assert ev["source"] == "autopilot"


def test_a_viewer_sees_the_plan_but_cannot_decide(page: Page, service: Service) -> None:
    sign_in(page, service, service.viewer_key)
    page.goto(service.url + "/plan")
    expect(page.locator("#ap-mode")).not_to_have_text("–")
    expect(page.get_by_role("button", name="Re-plan now")).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
