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
    flex_up = 0.0
    for _ in range(60):  # the fleet reports within a few control cycles of the start
        flex_up = api.get(service.url + "/api/v1/fleet").json()["flex_up_kw"]
        if flex_up > 1:
            break
        page.wait_for_timeout(500)
    created = api.post(
        service.url + "/api/v1/events",
        data={"target_kw": round(0.5 * flex_up), "duration_s": 900, "scope": "fleet"},
        headers={"X-Requested-With": "gridflock"},
    )
    assert created.status == 201, created.text()
    event = created.json()
    commands: list[dict[str, str]] = []
    for _ in range(60):
        url = f"{service.url}/api/v1/events/{event['id']}/commands?limit=50"
        commands = api.get(url).json()["items"]
        if commands:
            break
        page.wait_for_timeout(500)
    assert commands, "the event sent no commands"
    device = next((c for c in commands if c["device_id"].endswith("-bat")), commands[0])
    site_id = api.get(f"{service.url}/api/v1/devices/{device['device_id']}").json()["site_id"]
    page.wait_for_timeout(12_000)  # let the fleet respond so the charts show the ramp

    def shot(path: str, name: str, ready: str) -> None:
        page.goto(service.url + path)
        page.wait_for_function(ready, timeout=20_000)
        page.wait_for_timeout(1500)  # let the charts settle
        page.screenshot(path=str(out / f"dashboard-{name}.png"))

    shot("/", "overview", "() => document.getElementById('chart-history').data?.length > 1")
    expect(page.locator("#conn")).to_contain_text("live")
    shot("/grid", "grid", "() => document.getElementById('chart-map').data?.length === 1")
    shot("/events", "events", "() => document.querySelector('#events-table tbody a') !== null")
    shot(
        f"/events/{event['id']}",
        "event",
        "() => document.getElementById('chart-perf').data?.[1]?.y?.length > 3",
    )
    shot(
        f"/sites/{site_id}", "site", "() => document.getElementById('chart-site').data?.length > 1"
    )
    for name in ("overview", "grid", "events", "event", "site"):
        assert (out / f"dashboard-{name}.png").stat().st_size > 10_000
