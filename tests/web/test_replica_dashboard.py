"""The dashboard served by an API replica (``serve --role api``) in Chromium.

A `gridflock demo` leads and publishes on a private NATS; a replica on its own port reads
the same SQLite database and the bus. The browser signs in at the replica and sees the
live figures the leader publishes; an event made from the replica's dashboard is made by
the leader.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import Service, _free_port, sign_in

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """(the replica as a Service, the leader's URL)."""
    assert Path(NATS_SERVER).exists(), f"nats-server is needed ({NATS_SERVER})"
    tmp = tmp_path_factory.mktemp("replica")
    bus_port, leader_port, api_port = _free_port(), _free_port(), _free_port()
    bus = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(bus_port), "-js", "-sd", str(tmp / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDFLOCK_")}
    env["GRIDFLOCK_CONFIG"] = str(tmp / "none.toml")
    env["GRIDFLOCK_BUS_URL"] = f"nats://127.0.0.1:{bus_port}"
    gridflock = str(Path(sys.executable).with_name("gridflock"))
    db = f"sqlite:///{tmp}/demo.db"
    log = tmp / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                gridflock,
                "demo",
                "--homes",
                "50",
                "--port",
                str(leader_port),
                "--event-after",
                "0",
                "--history-days",
                "0",
                "--db",
                db,
            ],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        keys: dict[str, str] = {}
        while len(keys) < 2:
            assert demo.poll() is None, f"gridflock demo exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no API keys in 120 s:\n{log.read_text()}"
            for role in ("operator", "viewer"):
                m = re.search(rf"^{role} API key:\s*(\S+)", log.read_text(errors="replace"), re.M)
                if m:
                    keys[role] = m.group(1)
            time.sleep(0.2)
        api_log = tmp / "api.log"
        with api_log.open("wb") as out:
            api = subprocess.Popen(
                [gridflock, "serve", "--role", "api", "--db", db, "--port", str(api_port)],
                cwd=tmp,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{api_port}"
        h = {"X-API-Key": keys["viewer"]}
        while True:  # up, with a read model from the leader
            assert api.poll() is None, f"the replica exited:\n{api_log.read_text()}"
            assert time.monotonic() < deadline + 60, f"replica not ready:\n{api_log.read_text()}"
            try:
                if httpx.get(url + "/api/v1/fleet", headers=h, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        yield (
            Service(url, keys["operator"], keys["viewer"], api_log),
            f"http://127.0.0.1:{leader_port}",
        )
    finally:
        if api is not None:
            _stop(api, signal.SIGTERM)
        _stop(demo)
        bus.kill()
        bus.wait(timeout=10)


def test_the_dashboard_on_a_replica_shows_the_leaders_live_fleet(
    page: Page, replica: tuple[Service, str]
) -> None:
    service, _ = replica
    sign_in(page, service, service.operator_key)
    total = page.locator("#total-power")
    expect(total).to_have_text(re.compile(r"\d.*(kW|MW)"))
    expect(page.locator("#conn")).to_contain_text("live")  # the stream, fed from the bus
    expect(page.locator("#devices-online")).to_have_text(re.compile(r"\d+ / \d+"))
    expect(page.locator("#kind-table tbody tr").first).to_be_visible()
    first = total.inner_text()
    deadline = time.monotonic() + 20
    while total.inner_text() == first:
        assert time.monotonic() < deadline, f"the total power stayed at {first} for 20 s"
        page.wait_for_timeout(250)


def test_pages_that_the_leader_answers_load_on_a_replica(
    page: Page, replica: tuple[Service, str]
) -> None:
    service, leader = replica
    failed: list[str] = []
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if "/api/v1/" in r.url and r.status >= 400
            else None
        ),
    )
    sign_in(page, service, service.operator_key)
    for path in ("/events", "/grid", "/sites", "/plan", "/value"):
        page.goto(service.url + path)
        expect(page.locator("#main")).to_be_visible()
        page.wait_for_timeout(3000)  # the page's API calls, most forwarded to the leader
    assert failed == [], failed
    # a write from the replica's session is made by the leader
    h = {"X-Requested-With": "gridflock"}
    r = page.context.request.post(
        service.url + "/api/v1/events",
        headers=h,
        data={"target_kw": 1.0, "duration_s": 600, "scope": "fleet", "allow_partial": True},
    )
    assert r.status == 201, r.text()
    event_id = r.json()["id"]
    lead = httpx.get(
        f"{leader}/api/v1/events/{event_id}",
        headers={"X-API-Key": service.viewer_key},
        timeout=10,
    )
    assert lead.status_code == 200
    assert lead.json()["created_by"].startswith("apikey:")
