"""``gridflock cluster status``: which control process leads, with which epoch, since when.

Read from the database the election runs in (docs/high-availability.md): the
``leadership`` row (epoch, holder, since) and the election sessions of the control
processes connected now, the leader's marked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from gridflock.cli._app import app, out
from gridflock.cli.service import Db, _open_store, _settings

cluster_app = typer.Typer(
    help="Control processes: the elected leader and its standbys.", no_args_is_help=True
)
app.add_typer(cluster_app, name="cluster")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@cluster_app.command("status")
def cluster_status(
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """The leader (epoch, process, since) and the control processes standing by."""
    settings = _settings(database_url=db)
    store = _open_store(settings.database_url, upgrade=False)
    try:
        lead = store.leadership()
        sessions = store.control_sessions()
    finally:
        store.close()
    leader = next((s for s in sessions if s["leader"]), None)
    processes = [
        {**s, "connected": _iso(s["connected"]), "role": "leader" if s["leader"] else "standby"}
        for s in sessions
    ]
    doc: dict[str, Any] = {
        "epoch": None if lead is None else lead["epoch"],
        "holder": None if lead is None else lead["holder"],
        "since": None if lead is None else _iso(lead["since"]),
        "leader_connected": leader is not None,
        "processes": processes,
    }
    if as_json:
        out.print_json(json.dumps(doc))
        return
    if lead is None:
        out.print("no leader was ever elected here (role all, or no control process yet)")
    else:
        state = "connected" if leader is not None else "NOT connected: a standby takes over"
        out.print(
            f"epoch {lead['epoch']}: {lead['holder']} leads since {doc['since']} ({state})",
            highlight=False,
        )
    for p in processes:
        out.print(f"  {p['role']:8} {p['process']} (connected {p['connected']})", highlight=False)
