"""The service's administrative commands, run as separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gridflock.domain.auth import Role
from gridflock.gateways.mqtt.acl import hash_password
from gridflock.store import Store


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gridflock", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        cwd=cwd,
        check=False,
    )


def test_db_upgrade_and_apikey_print_the_key_alone(tmp_path):
    env = {"GRIDFLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'gf.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    r = run("apikey", "create", "--role", "viewer", "--name", "ops-1", env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert r.stdout == key + "\n"  # alone on stdout, for scripts: KEY=$(gridflock apikey ...)
    store = Store(env["GRIDFLOCK_DATABASE_URL"])
    principal = store.authenticate(key)
    store.close()
    assert principal is not None
    assert principal.role is Role.VIEWER
    assert principal.name == "ops-1"
    bad = run("apikey", "create", "--role", "root", env=env)
    assert bad.returncode == 2
    assert "'root' is not a role" in bad.stderr


def test_apikey_on_a_database_without_schema_says_what_to_do(tmp_path):
    env = {"GRIDFLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    r = run("apikey", "create", env=env)
    assert r.returncode == 2
    assert "gridflock db upgrade" in " ".join(r.stderr.split())


def test_config_show_reads_env_and_toml_and_masks_secrets(tmp_path):
    (tmp_path / "gridflock.toml").write_text('port = 9100\nmqtt_url = "mqtt://127.0.0.1:1883"\n')
    env = {
        "GRIDFLOCK_DATABASE_URL": "postgresql://app:hunter2@db.local/gf",
        "GRIDFLOCK_MQTT_PASSWORD": "s3cret",
        "GRIDFLOCK_CONFIG": str(tmp_path / "gridflock.toml"),
    }
    r = run("config", "show", env=env)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["port"] == 9100
    assert shown["mqtt_url"] == "mqtt://127.0.0.1:1883"
    assert shown["database_url"] == "postgresql://app:********@db.local/gf"
    assert shown["mqtt_password"] == "********"
    assert "hunter2" not in r.stdout
    assert "s3cret" not in r.stdout
    r = run("config", "show", env={"GRIDFLOCK_PORT": "eighty"})
    assert r.returncode == 2
    assert "PORT" in r.stderr


def test_broker_acl_writes_accounts_for_provisioned_gateways(tmp_path):
    url = f"sqlite:///{tmp_path / 'gf.db'}"
    store = Store(url)
    store.upgrade()
    store.create_gateway(
        "gw-a", kind="home", site_id=None, groups=["north"], password_hash=hash_password("a-secret")
    )
    store.close()
    env = {"GRIDFLOCK_DATABASE_URL": url, "GRIDFLOCK_MQTT_PASSWORD": "svc-secret"}
    r = run("broker", "acl", "--out", str(tmp_path / "broker"), "--port", "18830", env=env)
    assert r.returncode == 0, r.stderr
    security = (tmp_path / "broker" / "dynamic-security.json").read_text()
    cfg = json.loads(security)
    assert [c["username"] for c in cfg["clients"]] == ["gridflock-service", "gw-a"]
    assert "gf/v1/gw-a/telemetry" in security
    assert "gf/v1/groups/north/activate" in security
    assert "a-secret" not in security
    assert "svc-secret" not in security
    assert "18830" in (tmp_path / "broker" / "mosquitto.conf").read_text()
    r = run("broker", "acl", "--out", str(tmp_path / "b2"), env={"GRIDFLOCK_DATABASE_URL": url})
    assert r.returncode == 2
    assert "GRIDFLOCK_MQTT_PASSWORD" in r.stderr


def test_broker_acl_refuses_a_bad_record_and_keeps_the_previous_files(tmp_path):
    url = f"sqlite:///{tmp_path / 'gf.db'}"
    store = Store(url)
    store.upgrade()
    store.create_gateway(
        "gw-a", kind="home", site_id=None, groups=[], password_hash=hash_password("a")
    )
    env = {"GRIDFLOCK_DATABASE_URL": url, "GRIDFLOCK_MQTT_PASSWORD": "svc-secret"}
    out = tmp_path / "broker"
    assert run("broker", "acl", "--out", str(out), env=env).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a record from before ids had a grammar (the API refuses such an id now)
    store.create_gateway(
        "gw:colon", kind="home", site_id=None, groups=[], password_hash=hash_password("b")
    )
    store.close()
    r = run("broker", "acl", "--out", str(out), env=env)
    assert r.returncode == 2
    assert "invalid gateway id 'gw:colon'" in r.stderr
    assert "previous ones are unchanged" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_an_api_replica_without_a_bus_says_what_to_set(tmp_path):
    env = {
        "GRIDFLOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'gf.db'}",
        "GRIDFLOCK_CONFIG": str(tmp_path / "none.toml"),
        "GRIDFLOCK_BUS_URL": "",
    }
    assert run("db", "upgrade", env=env).returncode == 0
    r = run("serve", "--role", "api", env=env)
    assert r.returncode == 2, r.stderr
    assert "--role api needs the bus" in r.stderr
    assert "GRIDFLOCK_BUS_URL" in r.stderr
    bad = run("serve", "--role", "replica", env=env)
    assert bad.returncode == 2
    assert "ROLE" in bad.stderr
