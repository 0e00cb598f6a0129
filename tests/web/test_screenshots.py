"""Screenshots of the main views at 1366 × 768.

Always taken (so every view is rendered once without errors); written to
``docs/img/dashboard-*.png`` when ``GRIDFLOCK_SCREENSHOTS=docs``, else to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import Service, sign_in

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def test_screenshots_of_the_main_views(page: Page, service: Service, tmp_path: Path) -> None:
    out = DOCS_IMG if os.environ.get("GRIDFLOCK_SCREENSHOTS") == "docs" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    sign_in(page, service, service.operator_key)
    api = page.context.request
    scripted = None
    for _ in range(60):  # the demo's scripted event starts with the service
        items = api.get(service.url + "/api/v1/events?limit=100").json()["items"]
        scripted = next((e for e in items if e["created_by"].endswith("demo-script")), None)
        if scripted is not None and scripted["commands_sent"] > 0:
            break
        page.wait_for_timeout(500)
    assert scripted is not None, "the demo's scripted event never appeared"
    commands = api.get(f"{service.url}/api/v1/events/{scripted['id']}/commands?limit=1").json()
    site_id = api.get(
        f"{service.url}/api/v1/devices/{commands['items'][0]['device_id']}"
    ).json()["site_id"]

    def shot(path: str, name: str, ready: str) -> None:
        page.goto(service.url + path)
        page.wait_for_function(ready, timeout=20_000)
        page.wait_for_timeout(1500)  # let the charts settle
        page.screenshot(path=str(out / f"dashboard-{name}.png"))

    shot("/", "overview", "() => document.getElementById('chart-history').data?.length > 1")
    expect(page.locator("#conn")).to_contain_text("live")
    shot("/grid", "grid", "() => document.getElementById('chart-map').data?.length === 1")
    shot("/events", "events", "() => document.querySelector('#events-table tbody a') !== null")
    shot(f"/events/{scripted['id']}", "event",
         "() => document.getElementById('chart-perf').data?.[1]?.y?.length > 3")
    shot(f"/sites/{site_id}", "site", "() => document.getElementById('chart-site').data?.length > 1")
    for name in ("overview", "grid", "events", "event", "site"):
        assert (out / f"dashboard-{name}.png").stat().st_size > 10_000
