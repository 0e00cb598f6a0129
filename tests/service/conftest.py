"""Fixtures of the service fault tests: private brokers, a cuttable TCP proxy, MQTT peers.

The broker and the proxy are the shared ones of ``tests/_net.py``.

Everything listens and connects on 127.0.0.1 only; every process and thread a fixture
starts is stopped by it, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
import pytest
from sqlalchemy import create_engine, text
from tests._net import HOST, Broker, CuttableProxy, free_port, port_open

from gridflock.domain.spec import FleetSpec
from gridflock.store._engine import normalise_url

PG_URL = normalise_url(
    os.environ.get(
        "GRIDFLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
)


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(every)


def prefixed(spec: FleetSpec, tag: str) -> FleetSpec:
    """``spec`` with ``tag`` before every device and gateway id (unique to one test run)."""
    devices = {}
    for kind, df in spec.devices.items():
        df = df.copy()
        df["id"] = tag + df["id"].astype(str)
        df["gateway_id"] = tag + df["gateway_id"].astype(str)
        devices[kind] = df
    return replace(spec, devices=devices)


def run_tag() -> str:
    return f"t{uuid.uuid4().hex[:6]}-"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.kill()


class Peer:
    """A plain MQTT client (paho, its own thread) that records what arrives on its topics."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"peer-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            pytest.fail("the test's MQTT peer could not subscribe", pytrace=False)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes | str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t == topic]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def pg_proxy() -> Iterator[CuttableProxy]:
    """A proxy in front of the test PostgreSQL server (checked to be reachable)."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {e}", pytrace=False)
    finally:
        engine.dispose()
    proxy = CuttableProxy((HOST, 5432))
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) after the test."""
    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is killed (by its own pid) and reaped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (conftest is not importable by name)."""
    return SimpleNamespace(
        free_port=free_port,
        wait_until=wait_until,
        port_open=port_open,
        prefixed=prefixed,
        run_tag=run_tag,
        Peer=Peer,
        PG_URL=PG_URL,
    )
