"""History kept per group survives a fleet of another shape (after a fleet import).

Before the fix, every sample of the last 24 h was labelled with the *current* fleet's
groups, so after an import that changed how many grid nodes, programmes or regions there
are, ``/grid-nodes`` and ``/fleet/history/groups`` failed ("All arrays must be of the same
length") until the old samples aged out.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

from gridflock.api import create_app
from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_116_800.0  # 2026-07-15T12:00:00Z
STEP_S = 2.0
ADMIN = Principal("key-admin", "root", Role.ADMIN)


def _reshaped(spec: FleetSpec) -> FleetSpec:
    """``spec`` with three programmes and two regions instead of two and one."""
    sites = spec.sites.copy()
    i = np.arange(len(sites))
    sites["program"] = np.array(["summer-peak", "basic", "heat-wave"], dtype=object)[i % 3]
    sites["region"] = np.array(["east", "west"], dtype=object)[i % 2]
    return replace(spec, sites=sites)


def test_group_history_and_grid_nodes_answer_after_importing_a_fleet_of_another_shape(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'import.db'}"
    first = generate_fleet(60, 1)  # 2 grid nodes, 2 programmes, 1 region
    second = _reshaped(generate_fleet(300, 2))  # 3 grid nodes, 3 programmes, 2 regions
    clock = [T0]
    with Store(url) as store:
        store.upgrade()
        store.save_fleet(first)
        key, _ = store.create_api_key(Role.VIEWER, "dash")
        twin = RealtimeTwin(
            first,
            seed=3,
            step_s=STEP_S,
            hours=1.0,
            imperfections=Imperfections.ideal(),
            clock=lambda: clock[0],
        )
        rt = Runtime(
            Settings(database_url=url, control_interval_s=STEP_S, mqtt_url=None),
            store,
            first,
            twin,
            clock=lambda: clock[0],
        )

        def run(seconds: float) -> None:
            for _ in range(round(seconds / STEP_S)):
                clock[0] += STEP_S
                rt.control_cycle()

        run(180)  # three samples a minute apart of the first fleet
        asyncio.run(rt.import_fleet(second, ADMIN))
        run(120)  # two of the second

        now = clock[0]
        for by, before, after in (
            ("grid_node", set(first.grid_nodes["id"]), set(second.grid_nodes["id"])),
            ("program", {"summer-peak", "basic"}, {"summer-peak", "basic", "heat-wave"}),
            ("region", {"east"}, {"east", "west"}),
        ):
            history = rt.group_history(now - 3600, now + 1, by)
            times = sorted(history["ts"].unique())
            assert len(times) == 5, by
            old = history[history["ts"].isin(times[:3])]
            new = history[history["ts"].isin(times[3:])]
            assert set(old["group"]) == before, by
            assert set(new["group"]) == after, by
            assert len(new) == 2 * len(after), by
            assert np.isfinite(history["p_kw"]).all(), by

        async def get(path: str) -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://gf"
            ) as client:
                return await client.get(path, headers={"Authorization": f"Bearer {key}"})

        nodes = asyncio.run(get("/api/v1/grid-nodes"))
        assert nodes.status_code == 200, nodes.text
        assert {n["id"] for n in nodes.json()} == set(second.grid_nodes["id"])
        assert all(n["peak_utilisation_pct_24h"] is not None for n in nodes.json())
        for by in ("grid_node", "program", "region"):
            r = asyncio.run(get(f"/api/v1/fleet/history/groups?by={by}"))
            assert r.status_code == 200, (by, r.text)
