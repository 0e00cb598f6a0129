"""The real parts of a fault scenario, each started and stopped by the scenario itself.

- :class:`Broker`: a private Mosquitto on a free loopback port (plain and anonymous, or
  the configuration ``write_broker_config`` generates: accounts and ACLs per gateway),
  which a scenario can kill, stop and start again on the same port;
- :class:`PgSchema`: a throw-away schema in the PostgreSQL test database, reached
  through ``search_path`` in the URL, so ``gridflock serve`` needs no extra setting;
- :class:`Serve` and :class:`Sim`: ``gridflock serve`` and ``gridflock sim gateways`` as
  subprocesses, with their logs in the scenario's folder.

Shared by the fault tests (small fleets) and ``benchmarks/bench_faults.py`` (large ones),
so nothing here depends on pytest: a wait that times out raises :class:`ScenarioError`.
Everything listens on 127.0.0.1; every process is ended by its own pid; every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from tests._net import HOST, free_port, tail

GRIDFLOCK = str(Path(sys.executable).with_name("gridflock"))
PG_URL = os.environ.get(
    "GRIDFLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
).replace("postgresql://", "postgresql+psycopg://", 1)
SERVICE_USER = "gridflock-service"


class ScenarioError(AssertionError):
    """A scenario could not go on: a wait timed out or a part died."""


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``cond`` until truthy and return its value; raise naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ScenarioError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------
# PostgreSQL


class PgSchema:
    """A fresh schema in the test database; :attr:`url` puts it first on the search path."""

    def __init__(self, tag: str = "gf_fault") -> None:
        self.name = f"{tag}_{uuid.uuid4().hex[:10]}"
        self.engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        except Exception as e:
            self.engine.dispose()
            raise ScenarioError(f"PostgreSQL is not reachable at {PG_URL}: {e}") from e
        self.url = self.url_via(PG_URL)

    def url_via(self, base: str) -> str:
        """``base`` (a PostgreSQL URL) with this schema on the search path."""
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options=-csearch_path%3D{self.name}"

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value of a query, with ``{s}`` standing for the quoted schema."""
        with self.engine.connect() as conn:
            return conn.execute(text(sql.format(s=f'"{self.name}"')), params).scalar_one()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """All rows of a query, with ``{s}`` standing for the quoted schema."""
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql.format(s=f'"{self.name}"')), params).all())

    def execute(self, sql: str, **params: Any) -> None:
        """Run a statement (committed), with ``{s}`` standing for the quoted schema."""
        with self.engine.begin() as conn:
            conn.execute(text(sql.format(s=f'"{self.name}"')), params)

    def drop(self) -> None:
        """Drop the schema with everything in it."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        finally:
            self.engine.dispose()


# ---------------------------------------------------------------------------------------
# Gridflock processes


def clean_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The environment of a Gridflock process: no inherited ``GRIDFLOCK_*``, no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDFLOCK_")}
    env["GRIDFLOCK_CONFIG"] = str(workdir / "none.toml")
    env.update({f"GRIDFLOCK_{k.upper()}": v for k, v in settings.items()})
    return env


class Serve:
    """``gridflock serve`` as a subprocess on a fixed port, restartable on the same port."""

    def __init__(self, workdir: Path, api_key: str, name: str = "serve", **settings: str) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        defaults = {
            "host": HOST,
            "port": str(self.port),
            "control_interval_s": "1",
            "telemetry_flush_s": "0.5",
            "log_level": os.environ.get("FAULTS_LOG_LEVEL", "warning"),
        }
        self.env = clean_env(workdir, **{**defaults, **settings})
        self.base = f"http://{HOST}:{self.port}"
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started: list[subprocess.Popen[bytes]] = []
        self.answer_cpu_s = float("nan")

    def start(self) -> None:
        """Start a new process (the previous one must be gone)."""
        with self.log.open("ab") as log:
            log.write(f"---- start at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [GRIDFLOCK, "serve"],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append(self.proc)

    def answering(self) -> bool:
        """Whether ``/api/v1/health`` answers 200 (raises if the process has exited)."""
        if self.proc is None or self.proc.poll() is not None:
            raise ScenarioError(f"gridflock serve exited: {tail(self.log)}")
        try:
            with httpx.Client(timeout=2) as c:
                return c.get(self.base + "/api/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_answering(self, timeout: float = 30) -> float:
        """Wait until the API answers; the seconds it took from :meth:`start`.

        :attr:`answer_cpu_s` is then the CPU time the process used until it answered:
        on a machine shared with other work, the part of the wait that was its own.
        """
        t0 = time.monotonic()
        wait_until(self.answering, timeout, "gridflock serve to answer", every=0.05)
        took = time.monotonic() - t0
        self.answer_cpu_s = self.cpu_s()
        return took

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the running process has used so far (Linux)."""
        if self.proc is None:
            return float("nan")
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def get(self, path: str, timeout: float = 5) -> httpx.Response:
        """GET ``/api/v1{path}`` with the key (a fresh connection, closed by the client)."""
        with httpx.Client(timeout=timeout) as c:
            return c.get(self.base + "/api/v1" + path, headers=self.auth)

    def post(self, path: str, body: dict[str, Any], timeout: float = 5) -> httpx.Response:
        """POST JSON to ``/api/v1{path}`` with the key."""
        with httpx.Client(timeout=timeout) as c:
            return c.post(self.base + "/api/v1" + path, headers=self.auth, json=body)

    def json(self, path: str) -> Any:
        """GET ``path``; its JSON, or :class:`ScenarioError` with the answer if not 200."""
        r = self.get(path)
        if r.status_code != 200:
            raise ScenarioError(f"GET {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    def health(self) -> dict[str, Any]:
        """``/api/v1/health`` (no key needed)."""
        with httpx.Client(timeout=5) as c:
            body: dict[str, Any] = c.get(self.base + "/api/v1/health").json()
            return body

    def metrics(self) -> str:
        """``/metrics`` as text."""
        with httpx.Client(timeout=5) as c:
            return c.get(self.base + "/metrics").text

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait (the service flushes what it buffered); the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise ScenarioError(f"gridflock serve did not stop: {tail(self.log)}") from e

    def cleanup(self) -> None:
        """Kill every process this started that still runs."""
        for p in self.started:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


def metric(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus exposition (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search(r"^" + pattern + r"$", exposition, re.M)
    return float(m.group(1)) if m else 0.0


class Sim:
    """``gridflock sim gateways`` as a subprocess: the fleet's gateways, ideal, every second.

    Stopped with SIGINT, it prints how many readings it published; :meth:`stop` returns
    that number, which the scenarios compare with the rows in the store.
    """

    def __init__(self, workdir: Path, broker_url: str, *args: str, password: str = "") -> None:
        self.log = workdir / "sim.log"
        self.command_log = workdir / "commands.log"
        """Every command and schedule the gateways received (``--command-log``)."""
        env = clean_env(workdir)
        if password:
            env["GRIDFLOCK_MQTT_PASSWORD"] = password
        cmd = [GRIDFLOCK, "sim", "gateways", "--mqtt", broker_url, "--step", "1s", "--ideal"]
        cmd += ["--command-log", str(self.command_log)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, *args], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )

    def publishing(self) -> bool:
        """Whether it has started (its banner is out; it connects and publishes next)."""
        if self.proc.poll() is not None:
            raise ScenarioError(f"the simulated gateways exited: {tail(self.log)}")
        return "simulating" in tail(self.log)

    def stop(self) -> int:
        """SIGINT, wait, and return the readings it published in all."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired as e:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise ScenarioError(f"the simulated gateways did not stop: {tail(self.log)}") from e
        m = re.search(r"stopped: [\d,]+ telemetry messages \(([\d,]+) readings\)", tail(self.log))
        if m is None:
            raise ScenarioError(f"the simulated gateways printed no totals: {tail(self.log)}")
        return int(m.group(1).replace(",", ""))

    def kill(self) -> None:
        """SIGKILL (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------
# Fleet and figures


def provision(schema: PgSchema, spec: Any) -> str:
    """Migrate the schema, store the fleet and make an operator key (returned)."""
    from gridflock.domain.auth import Role
    from gridflock.store import Store

    store = Store(schema.url)
    try:
        store.upgrade()
        store.save_fleet(spec)
        key, _ = store.create_api_key(Role.OPERATOR, "fault-suite")
    finally:
        store.close()
    return key


def readings_applied(serve: Serve) -> float:
    """Readings the service has applied to its fleet state since it started (``/metrics``)."""
    return metric(serve.metrics(), "gridflock_telemetry_readings_total", outcome="applied")


def rate(serve: Serve, seconds: float) -> float:
    """Readings applied per second over the next ``seconds`` (a measurement, not a test)."""
    c0, t0 = readings_applied(serve), time.monotonic()
    time.sleep(seconds)
    c1, t1 = readings_applied(serve), time.monotonic()
    return (c1 - c0) / (t1 - t0)


class Observer:
    """An independent MQTT subscriber to every gateway's telemetry (paho, its own thread).

    It counts what the broker delivers, so the service's share of it is a correctness
    figure that holds at any machine speed. It subscribes again after each reconnect
    (a restarted broker).
    """

    def __init__(self, broker_url: str) -> None:
        import paho.mqtt.client as paho

        self.messages = 0
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe("gf/v1/+/telemetry", qos=0)
        self.client.on_message = self._count
        self.client.reconnect_delay_set(0.2, 1.0)
        port = int(broker_url.rsplit(":", 1)[1])
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()

    def _count(self, *_: object) -> None:
        with self._lock:
            self.messages += 1

    def count(self) -> int:
        """Telemetry messages received so far."""
        with self._lock:
            return self.messages

    def stop(self) -> None:
        """Disconnect and stop its thread."""
        self.client.disconnect()
        self.client.loop_stop()


def messages_received(serve: Serve) -> float:
    """Telemetry messages the service has received since it started (``/metrics``)."""
    return metric(serve.metrics(), "gridflock_telemetry_messages_total")


def share(serve: Serve, observer: Observer, seconds: float) -> tuple[float, int]:
    """The service's share of the telemetry messages ``observer`` saw over ``seconds``,
    and how many it saw: 1.0 when the service receives every message (give or take the
    ones in flight at either end of the window), about 0.5 when another session of the
    service's shared subscription takes half."""
    s0, o0 = messages_received(serve), observer.count()
    time.sleep(seconds)
    s1, o1 = messages_received(serve), observer.count()
    seen = o1 - o0
    return ((s1 - s0) / seen if seen else 0.0), seen


def ts_of(iso: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time as the API writes it."""
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def table(figures: object) -> list[tuple[str, str]]:
    """A figures dataclass as ``(name, value)`` rows, floats to 2 decimals."""
    from dataclasses import asdict

    def show(v: object) -> str:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return str(v)
        return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"

    return [(k, show(v)) for k, v in asdict(figures).items()]  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------
# The service's fleet and events

#: Share of the event target within which delivery counts as "on target" again.
ON_TARGET = 0.2


def fleet(homes: int, seed: int) -> object:
    """The generated fleet of ``homes`` homes (what ``sim gateways --homes --seed`` runs)."""
    from gridflock.fleet.generate import generate_fleet

    return generate_fleet(homes, seed)


def all_online(serve: Serve, n: int, timeout: float) -> None:
    """Wait until the service sees all ``n`` devices online."""
    wait_until(
        lambda: serve.json("/fleet")["devices_online"] == n,
        timeout,
        f"all {n} devices online",
        every=0.25,
    )


def post_event(serve: Serve, share: float, duration_s: int = 1800) -> tuple[str, float]:
    """Start an event asking ``share`` of the fleet's up flexibility now; (id, target)."""
    flex = float(serve.json("/fleet")["flex_up_kw"])
    if flex <= 0:
        raise ScenarioError("the fleet has no up flexibility for an event")
    target = round(share * flex, 1)
    r = serve.post("/events", {"target_kw": target, "duration_s": duration_s, "scope": "fleet"})
    if r.status_code != 201:
        raise ScenarioError(f"POST /events: {r.status_code} {r.text[:500]}")
    return str(r.json()["id"]), target


def on_target(serve: Serve, event_id: str, target: float) -> bool:
    """Whether the event is active and delivers within ``ON_TARGET`` of its target."""
    ev = serve.json(f"/events/{event_id}")
    d = ev.get("delivered_kw")
    return bool(
        ev["status"] == "active" and d is not None and abs(d - target) <= ON_TARGET * target
    )
