"""``gridflock envelopes import/list`` on a real database (in process)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from gridflock.cli import app
from gridflock.fleet.generate import generate_fleet
from gridflock.store import Store

runner = CliRunner()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_import_csv_and_csip_then_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gf.db'}"
    store = Store(url)
    store.upgrade()
    spec = generate_fleet(5, 1)
    store.save_fleet(spec)
    store.close()
    site, node = str(spec.sites["id"].iloc[0]), str(spec.grid_nodes["id"].iloc[0])
    now = time.time()
    csv_file = tmp_path / "doe.csv"
    csv_file.write_text(
        "id,target_type,target_id,start,end,import_limit_kw,export_limit_kw,kind\n"
        f"a,site,{site},{_iso(now - 60)},{_iso(now + 900)},,0,\n"
        f"b,node,{node},{_iso(now + 900)},{_iso(now + 1800)},50,,para14a\n"
    )
    env = {"GRIDFLOCK_DATABASE_URL": url, "COLUMNS": "200"}
    r = runner.invoke(app, ["envelopes", "import", str(csv_file)], env=env)
    assert r.exit_code == 0, r.output
    assert "stored 2 envelope(s)" in r.output
    csip = tmp_path / "derc.json"
    csip.write_text(
        json.dumps(
            {
                "DERControl": [
                    {
                        "mRID": "C9",
                        "creationTime": int(now - 10),
                        "interval": {"start": int(now), "duration": 300},
                        "DERControlBase": {"opModExpLimW": {"value": 25, "multiplier": 2}},
                    }
                ]
            }
        )
    )
    r = runner.invoke(app, ["envelopes", "import", str(csip)], env=env)
    assert r.exit_code == 2
    assert "--target-type" in r.output
    args = ["envelopes", "import", str(csip), "--target-type", "site", "--target-id", site]
    r = runner.invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["envelopes", "list"], env=env)
    assert r.exit_code == 0, r.output
    for needle in ("a ", "b ", "C9", f"node:{node}", "para14a", "csip", "in force", "2.5"):
        assert needle in r.output, needle
    # a bad file: every problem, nothing stored
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "target_type,target_id,start,end,export_limit_kw\n"
        f"site,{site},{_iso(now)},{_iso(now - 5)},-3\n"
        f"site,nowhere,{_iso(now)},{_iso(now + 60)},1\n"
    )
    r = runner.invoke(app, ["envelopes", "import", str(bad)], env=env)
    assert r.exit_code == 2
    assert "2 problem(s)" in r.output
    bad.write_text(
        "target_type,target_id,start,end,export_limit_kw\n"
        f"site,nowhere,{_iso(now)},{_iso(now + 60)},1\n"
    )
    r = runner.invoke(app, ["envelopes", "import", str(bad)], env=env)
    assert r.exit_code == 2
    assert "nowhere" in r.output
