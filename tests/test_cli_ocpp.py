"""``gridflock charger create|list|revoke``: per-charger passwords, stored hashed like gateways'."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.cli.ocpp import store_credentials
from gridflock.gateways.ocpp import verify_password
from gridflock.store import Store


def test_charger_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'chargers.db'}"
    with Store(db) as s:
        s.upgrade()
        s.create_gateway(
            "gw-1", kind="hems", site_id=None, groups=[], password_hash="$7$1$AA==$AA=="
        )
    runner = CliRunner()
    r = runner.invoke(app, ["charger", "create", "CP-1", "--site", "s1", "--db", db])
    assert r.exit_code == 0, r.output
    password = r.stdout.strip().splitlines()[0]
    assert 16 <= len(password) <= 40  # what OCPP chargers take
    with Store(db) as s:
        lookup = store_credentials(s)
        stored = asyncio.run(lookup("CP-1"))
        assert stored is not None
        assert password not in stored
        assert verify_password(password, stored)
        assert asyncio.run(lookup("gw-1")) is None  # an MQTT gateway is not a charge point
        assert any(a.action == "charger.create" for a in s.audit_log())
    again = runner.invoke(app, ["charger", "create", "CP-1", "--db", db])
    assert again.exit_code == 2
    assert "exists" in again.output
    listed = runner.invoke(app, ["charger", "list", "--db", db])
    assert "CP-1" in listed.stdout
    assert "gw-1" not in listed.stdout
    assert runner.invoke(app, ["charger", "revoke", "CP-1", "--db", db]).exit_code == 0
    with Store(db) as s:
        assert asyncio.run(store_credentials(s)("CP-1")) is None  # refused from now on
    gone = runner.invoke(app, ["charger", "revoke", "CP-1", "--db", db])
    assert gone.exit_code == 2
    assert runner.invoke(app, ["charger", "revoke", "gw-1", "--db", db]).exit_code == 2
