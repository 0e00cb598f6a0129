"""``gridflock gridcode push`` and ``status`` against a running service's API (uvicorn)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from gridflock.api import create_app
from gridflock.cli import app
from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.domain.ports import SettingsVerdict
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.service.links import MemoryLink
from gridflock.store import Store

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    spec = generate_fleet(6, 5)
    store = Store(f"sqlite:///{tmp_path / 'cli.db'}")
    store.upgrade()
    store.save_fleet(spec)
    operator, _ = store.create_api_key(Role.OPERATOR, "op")
    viewer, _ = store.create_api_key(Role.VIEWER, "view")
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, spec, link)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < end, "the API did not start in 20 s"
        time.sleep(0.05)
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "operator": operator,
            "viewer": viewer,
            "runtime": rt,
            "link": link,
        }
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_push_and_status_through_the_api(served: dict[str, Any]) -> None:
    url, link, rt = served["url"], served["link"], served["runtime"]
    link.settings.clear()
    r = runner.invoke(
        app,
        ["gridcode", "push", "--url", url, "--api-key", served["operator"], "--product", "GB-DC"],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    n = len(rt.loop.gridcode.records)
    assert f"pushed {n} device setting(s)" in r.output
    assert "product GB-DC" in r.output
    sent = [it for _, items in link.settings for it in items]
    assert len(sent) == n
    # the gateways answer: one refuses
    for i, it in enumerate(sent):
        gw = rt.loop.gridcode.records[it.device].gateway
        if i == 0:
            link.answer_settings(
                SettingsVerdict(gw, it.id, it.device, it.seq, "rejected", "not_adopted")
            )
        else:
            link.answer_settings(SettingsVerdict(gw, it.id, it.device, it.seq, "accepted"))
    rt.control_cycle()
    r = runner.invoke(
        app,
        ["gridcode", "status", "--url", url, "--api-key", served["viewer"]],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert f"accepted {n - 1}, rejected 1" in r.output
    assert "not_adopted" in r.output
    assert sent[0].device in r.output
    assert sent[1].device not in r.output  # accepted ones only with --all


def test_refusals_are_clear(served: dict[str, Any]) -> None:
    url = served["url"]
    r = runner.invoke(app, ["gridcode", "push", "--url", url, "--api-key", served["viewer"]])
    assert r.exit_code == 1
    assert "403" in r.output
    r = runner.invoke(
        app,
        ["gridcode", "push", "--url", url, "--api-key", served["operator"], "--product", "NOPE"],
    )
    assert r.exit_code == 1
    assert "unknown frequency product" in r.output
    r = runner.invoke(app, ["gridcode", "status", "--url", url], env={"GRIDFLOCK_API_KEY": ""})
    assert r.exit_code == 2
    assert "API key" in r.output
    r = runner.invoke(app, ["gridcode", "status", "--url", "http://127.0.0.1:1", "--api-key", "x"])
    assert r.exit_code == 2
    assert "cannot reach the service" in r.output
