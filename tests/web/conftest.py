"""Browser tests: a real `gridflock demo` in a subprocess, driven by Debian's Chromium.

Playwright never downloads a browser here: it launches /usr/bin/chromium (Debian packages
`chromium` and `chromium-driver`). A missing Chromium fails the tests; it never skips them.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 768}


@dataclass(frozen=True)
class Service:
    url: str
    operator_key: str
    viewer_key: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("demo")
    port = _free_port()
    log = tmp / "demo.log"
    gridflock = Path(sys.executable).with_name("gridflock")
    cmd = [
        str(gridflock),
        "demo",
        "--homes",
        "200",
        "--port",
        str(port),
        "--event-after",
        "0",
        "--history-days",  # no forecast history: test_forecast_page serves its own
        "0",
        "--db",
        f"sqlite:///{tmp}/demo.db",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        keys: dict[str, str] = {}
        while time.monotonic() < deadline and len(keys) < 2:
            if proc.poll() is not None:
                pytest.fail(f"gridflock demo exited with {proc.returncode}:\n{log.read_text()}")
            text = log.read_text(errors="replace")
            for role in ("operator", "viewer"):
                m = re.search(rf"^{role} API key:\s*(\S+)", text, re.M)
                if m:
                    keys[role] = m.group(1)
            time.sleep(0.2)
        if len(keys) < 2:
            pytest.fail(f"gridflock demo printed no API keys in 90 s:\n{log.read_text()}")
        yield Service(f"http://127.0.0.1:{port}", keys["operator"], keys["viewer"], log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver); the browser tests never skip"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Berlin")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield pg
    assert not errors, f"errors in the page: {errors}"


def sign_in(page: Page, service: Service, key: str) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")
