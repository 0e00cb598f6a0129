"""End to end: `gridflock serve` and `gridflock sim gateways` as separate processes, over
the local Mosquitto and PostgreSQL, driven through the REST API as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gridflock.fleet.files import write_fleet
from gridflock.fleet.generate import generate_fleet

POSTGRES_URL = os.environ.get(
    "GRIDFLOCK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MQTT_URL = os.environ.get("GRIDFLOCK_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
GRIDFLOCK = [sys.executable, "-m", "gridflock"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_reachable() -> None:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError as e:
        pytest.fail(
            f"Mosquitto is not reachable at 127.0.0.1:1883 ({e}); start it with "
            "mosquitto -d -c /etc/mosquitto/mosquitto.conf"
        )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"gf_e2e_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as c:
            c.execute(sa.text(f"create schema {schema}"))
    except sa.exc.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is not reachable ({e}); start it with "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as c:
        c.execute(sa.text(f"drop schema {schema} cascade"))
    engine.dispose()


def cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run(
        [*GRIDFLOCK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.mark.postgres
def test_serve_and_gateways_deliver_an_event(tmp_path: Path, pg_schema: str) -> None:
    broker_reachable()
    port = free_port()
    env = {
        **os.environ,
        "GRIDFLOCK_DATABASE_URL": pg_schema,
        "GRIDFLOCK_MQTT_URL": MQTT_URL,
        "GRIDFLOCK_PORT": str(port),
        "GRIDFLOCK_CONTROL_INTERVAL_S": "1",
        "GRIDFLOCK_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "200",
    }
    # gateway ids unique to this run, so other users of the shared broker do not interfere
    spec = generate_fleet(120, 5)
    tag = uuid.uuid4().hex[:6]
    for df in spec.devices.values():
        df["gateway_id"] = f"e2e{tag}-" + df["gateway_id"]
    env["GRIDFLOCK_MQTT_CLIENT_ID"] = f"gridflock-e2e-{tag}"  # not another service's session
    fleet = tmp_path / "fleet.yaml"
    write_fleet(spec, fleet)

    cli(env, "db", "upgrade")
    admin = cli(env, "apikey", "create", "--role", "admin", "--name", "e2e-admin")
    operator = cli(env, "apikey", "create", "--role", "operator", "--name", "e2e-ops")
    viewer = cli(env, "apikey", "create", "--role", "viewer", "--name", "e2e-viewer")
    base = f"http://127.0.0.1:{port}/api/v1"
    logs = {n: open(tmp_path / f"{n}.log", "w") for n in ("serve", "gateways")}  # noqa: SIM115
    serve = subprocess.Popen(
        [*GRIDFLOCK, "serve"], env=env, stdout=logs["serve"], stderr=subprocess.STDOUT, text=True
    )
    gateways = None
    http = httpx.Client(timeout=10)
    try:
        wait_for("the API", lambda: http.get(f"{base}/health").status_code == 200, 30)
        r = http.post(
            f"{base}/fleet/import",
            content=fleet.read_bytes(),
            headers={"Authorization": f"Bearer {admin}", "content-type": "application/yaml"},
        )
        assert r.status_code in (200, 201, 204), r.text
        gateways = subprocess.Popen(
            [
                *GRIDFLOCK,
                "sim",
                "gateways",
                "--fleet",
                str(fleet),
                "--mqtt",
                MQTT_URL,
                "--step",
                "2s",
                "--seed",
                "5",
            ],
            env=env,
            stdout=logs["gateways"],
            stderr=subprocess.STDOUT,
            text=True,
        )
        ops = {"Authorization": f"Bearer {operator}"}

        def fleet_online():
            f = http.get(f"{base}/fleet", headers=ops).json()
            total = f["devices_total"]
            return f if total and f["devices_online"] >= 0.9 * total else None

        summary = wait_for("the gateways' devices to report", fleet_online, 60)
        assert summary["devices_total"] == spec.n_devices
        assert summary["flex_up_kw"] > 10

        # refused: no key, a viewer
        body = {"target_kw": round(0.4 * summary["flex_up_kw"]), "duration_s": 300}
        assert http.post(f"{base}/events", json=body).status_code == 401
        assert (
            http.post(
                f"{base}/events", json=body, headers={"Authorization": f"Bearer {viewer}"}
            ).status_code
            == 403
        )
        r = http.post(f"{base}/events", json=body, headers=ops)
        assert r.status_code == 201, r.text
        event_id = r.json()["id"]

        def delivered():
            ev = http.get(f"{base}/events/{event_id}", headers=ops).json()
            d = ev["delivered_kw"]
            return (
                ev
                if d is not None and abs(d - body["target_kw"]) <= 0.1 * body["target_kw"]
                else None
            )

        ev = wait_for("delivered power to reach the target", delivered, 90)
        assert ev["status"] == "active"
        assert ev["created_by"] == "apikey:e2e-ops"
        cmds = http.get(f"{base}/events/{event_id}/commands", headers=ops).json()
        items = cmds["items"] if isinstance(cmds, dict) else cmds
        assert items, "the commands of the event are in the audit"
        assert {c.get("status") for c in items} & {"accepted", "sent"}
        r = http.post(f"{base}/events/{event_id}/cancel", headers=ops)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"

        def audited():
            audit = http.get(f"{base}/audit", params={"subject": event_id}, headers=ops).json()
            rows = audit["items"] if isinstance(audit, dict) else audit
            return {a["action"] for a in rows} >= {"event.create", "event.cancel"}

        wait_for("the audit records", audited, 10)
    finally:
        http.close()
        if gateways is not None:
            stop(gateways)
        code = stop(serve)
        for f in logs.values():
            f.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
