"""The CLI and secrets, keys and ports: revoke, list, --version, masked URLs, port probe."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import typer

from gridflock.cli.service import _check_port
from gridflock.store import Store


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gridflock", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        check=False,
    )


def test_version_option():
    r = run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gridflock ")


def test_apikey_revoke_list_and_audit(tmp_path):
    url = f"sqlite:///{tmp_path / 'gf.db'}"
    env = {"GRIDFLOCK_DATABASE_URL": url}
    assert run("db", "upgrade", env=env).returncode == 0
    key = run("apikey", "create", "--role", "operator", "--name", "ops-1", env=env).stdout.strip()
    key_id = key.split("_")[1]
    listed = run("apikey", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout
    assert "ops-1" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # never the secret

    r = run("apikey", "revoke", key_id, env=env)
    assert r.returncode == 0, r.stderr
    assert f"revoked operator key {key_id} (ops-1)" in r.stderr
    store = Store(url)
    try:
        assert store.authenticate(key) is None
        (entry,) = store.audit_log(action="apikey.revoke")
        assert entry.subject == key_id
        assert entry.actor.startswith("cli:")
    finally:
        store.close()

    again = run("apikey", "revoke", key_id, env=env)
    assert again.returncode == 1
    assert "already revoked" in again.stderr
    unknown = run("apikey", "revoke", "000000000000", env=env)
    assert unknown.returncode == 2
    assert "no API key has the id" in unknown.stderr


def test_the_database_password_is_never_printed():
    url = "postgresql://gf:pa55w0rd-s3cret@127.0.0.1:1/gf"  # nothing listens on port 1
    r = run("apikey", "create", env={"GRIDFLOCK_DATABASE_URL": url})
    assert r.returncode == 2
    assert "pa55w0rd-s3cret" not in r.stderr + r.stdout
    assert "gf:********@127.0.0.1:1/gf" in r.stderr


def test_the_simulator_never_prints_the_broker_password():
    r = run("sim", "gateways", "--mqtt", "mqtt://gw:s3cret-pw@127.0.0.1:1", "--homes", "2")
    assert r.returncode == 2  # nothing listens on port 1
    assert "s3cret-pw" not in r.stdout + r.stderr
    assert "mqtt://gw:********@127.0.0.1:1" in r.stdout


# ----------------------------------------------------------------------------- the port
def _time_wait_port() -> int:
    """A port whose server side holds a connection in TIME-WAIT and no listener (kill -9)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server closes first: its side goes to TIME-WAIT
    client.recv(1)  # sees the FIN
    client.close()
    server.close()
    return port


def test_the_port_probe_ignores_time_wait_sockets():
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what a plain bind, the old probe, met
    _check_port("127.0.0.1", port)  # does not exit


def test_the_port_probe_refuses_a_live_listener(capsys):
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        with pytest.raises(typer.Exit):
            _check_port("127.0.0.1", port)
    assert "another Gridflock" in capsys.readouterr().err


def test_logs_never_carry_the_database_password(capsys):
    import logging

    from gridflock.service.logs import setup_logging

    url = "postgresql://gf:pa55-w0rd@db.local:5432/gf"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", "json", secret_urls=[url, None])
        try:
            raise RuntimeError(f"could not connect to {url} (password pa55-w0rd refused)")
        except RuntimeError:
            logging.getLogger("gridflock.test").exception("database write failed: %s", url)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    text = capsys.readouterr().err
    assert "pa55-w0rd" not in text
    assert "gf:********@db.local" in text
