"""Shared pieces of the OCPP tests: a fleet of OCPP chargers, a CSMS on a free port, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gridflock.domain import FleetSpec, build_spec
from gridflock.domain.messages import CommandBatch
from gridflock.gateways.mqtt import hash_password
from gridflock.gateways.ocpp import MemoryCredentials, OcppLink, OcppSettings
from gridflock.sim.ocpp import ChargerSpec

HOST = "127.0.0.1"


def secret(cp_id: str) -> str:
    return f"pw-of-{cp_id}-0123456789"


@functools.cache
def ocpp_fleet(n: int) -> FleetSpec:
    """``n`` sites, each an 11 kW 3-phase charger behind charge point ``CP{i}``, plus a PV.

    Cached (building a spec takes a while); callers must not change it.
    """
    nodes = [{"id": "f-1", "kind": "feeder", "limit_import_kw": 1e6, "limit_export_kw": 1e6}]
    sites, devices = [], []
    for i in range(n):
        sid = f"s{i}"
        sites.append(
            {
                "id": sid,
                "lat": 48.1,
                "lon": 11.5,
                "tz": "Europe/Berlin",
                "grid_node": "f-1",
                "import_limit_kw": 40,
                "export_limit_kw": 40,
            }
        )
        devices.append(
            {
                "id": f"{sid}-ev",
                "site_id": sid,
                "kind": "ev_charger",
                "p_max_kw": 11,
                "phases": 3,
                "gateway_id": f"CP{i}",
                "protocol": "ocpp",
                "ocpp_connector": 1,
            }
        )
        devices.append({"id": f"{sid}-pv", "site_id": sid, "kind": "pv", "kwp": 5})
    return build_spec(nodes, sites, devices, "ocpp-test")


def charger(i: int, version: str, **kw: Any) -> ChargerSpec:
    return ChargerSpec(f"CP{i}", secret(f"CP{i}"), version=version, **kw)


def link_for(spec: FleetSpec, **settings: Any) -> OcppLink:
    """A CSMS on a free loopback port knowing every ``CP{i}`` of the fleet."""
    ids = set(spec.all_devices()["gateway_id"])
    creds = MemoryCredentials({c: hash_password(secret(c)) for c in ids})
    settings.setdefault("allow_insecure", settings.get("ssl") is None)
    settings.setdefault("response_timeout_s", 2.0)
    return OcppLink(spec, creds, OcppSettings(host=HOST, port=0, **settings))


async def until(cond: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    """Poll ``cond`` on the loop until truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def commands(
    device_ids: list[str], p_kw: list[float], *, valid_s: float = 60.0, tag: str = "c"
) -> CommandBatch:
    now = time.time()
    n = len(device_ids)
    return CommandBatch(
        np.array([f"{tag}-{d}" for d in device_ids], dtype=object),
        np.array(device_ids, dtype=object),
        np.array(p_kw, dtype=float),
        np.full(n, now + valid_s),
        np.arange(1, n + 1, dtype=np.int64),
        now,
        "ev-1",
    )


async def shut_down(link: OcppLink, runner: asyncio.Task[None], *tasks: asyncio.Task[Any]) -> None:
    """Cancel the charge points' ``tasks``, stop the CSMS and wait for all of them to end."""
    for t in tasks:
        t.cancel()
    link.stop()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, ConnectionError):
            await t  # a cancelled call may surface as a timeout
    await runner
