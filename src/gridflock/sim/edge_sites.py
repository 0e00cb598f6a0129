"""Simulated sites with SunSpec devices behind edge gateways: ``gridflock sim edge``.

Each site is what an installer puts in a home: a PV inverter (Modbus unit 1), a battery
inverter (unit 2) and a site meter (unit 3) on one SunSpec Modbus TCP server of its own
(:mod:`gridflock.sim.sunspec_server`, registers driven by the twin's physics), and an
:class:`~gridflock.edge.gateway.EdgeGateway` that polls them over TCP and speaks protocol
v1 to the service's broker as gateway ``{prefix}-{k:04d}`` (user name = gateway id).
The sites' fleet (:func:`edge_fleet_yaml`) goes into the service like any fleet file:
each site is its own gateway, so the service dispatches these devices as it does every
other gateway's. The meter is polled too but is not part of the fleet (the service
knows no meters): its readings are logged by the gateway, not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridflock.domain.spec import FleetSpec
from gridflock.edge.config import EdgeConfig, parse_config
from gridflock.edge.gateway import EdgeGateway
from gridflock.fleet.files import read_fleet
from gridflock.sim.sunspec_server import (
    BatteryUnit,
    MeterUnit,
    PvInverterUnit,
    SunSpecServer,
    clear_sky,
)

__all__ = ["EdgeSite", "SimulatedEdgeSites", "edge_fleet", "edge_fleet_yaml", "site_ids"]

#: Ratings of every simulated site (kW, kWh).
PV_KW, PV_KWP = 5.0, 6.0
BAT_KWH, BAT_KW = 10.0, 5.0


def site_ids(n: int, prefix: str = "edge") -> list[str]:
    """The gateway (and site) id of each of ``n`` sites."""
    return [f"{prefix}-{k + 1:04d}" for k in range(n)]


def edge_fleet_yaml(n: int, prefix: str = "edge") -> str:
    """The fleet file (YAML, version 1) of ``n`` simulated edge sites, for the service."""
    lines = [
        "version: 1",
        "grid_nodes:",
        f"  - {{id: {prefix}-tx, kind: transformer, limit_import_kw: {max(50, 12 * n)}, "
        f"limit_export_kw: {max(50, 12 * n)}}}",
        "sites:",
    ]
    for k, sid in enumerate(site_ids(n, prefix)):
        lines += [
            f"  - id: {sid}",
            f"    lat: {48.1 + 0.01 * (k % 50):.2f}",
            f"    lon: {11.5 + 0.01 * (k // 50):.2f}",
            "    tz: Europe/Berlin",
            f"    grid_node: {prefix}-tx",
            "    devices:",
            f"      - {{id: {sid}-pv, kind: pv, kwp: {PV_KWP:g}, tilt_deg: 30, azimuth_deg: 180, "
            "protocol: edge}",
            f"      - {{id: {sid}-bat, kind: battery, e_kwh: {BAT_KWH:g}, "
            f"p_charge_max_kw: {BAT_KW:g}, p_discharge_max_kw: {BAT_KW:g}, soc_initial: 0.6, "
            "protocol: edge}",
        ]
    return "\n".join(lines) + "\n"


def edge_fleet(n: int, prefix: str = "edge") -> FleetSpec:
    """The fleet of ``n`` simulated edge sites (the file :func:`edge_fleet_yaml` writes)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edge-fleet.yaml"
        path.write_text(edge_fleet_yaml(n, prefix))
        return read_fleet(path)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EdgeSite:
    """One simulated site: its Modbus server and units, and its edge gateway."""

    gateway_id: str
    server: SunSpecServer
    pv: PvInverterUnit
    bat: BatteryUnit
    meter: MeterUnit
    config: EdgeConfig
    gateway: EdgeGateway


class SimulatedEdgeSites:
    """``n_sites`` sites, each a SunSpec server and an edge gateway, in one event loop.

    Parameters
    ----------
    n_sites : how many sites
    broker_url : the service's broker, ``mqtt://host:port`` or ``mqtts://``
    password : the gateways' broker secret (each logs in as its own id); None = anonymous
    prefix : gateway ids are ``{prefix}-0001`` ...
    poll_s : poll interval of every device [s] (1 s at the fastest)
    tls_ca : CA bundle of the broker's certificate (mqtts://)
    clock : wall clock of the physics [UTC epoch s]
    irradiance : plane-of-array irradiance at a time [W/m²] (a clear-sky day by default)

    """

    def __init__(
        self,
        n_sites: int,
        broker_url: str,
        *,
        password: str | None = None,
        prefix: str = "edge",
        poll_s: float = 5.0,
        host: str = "127.0.0.1",
        tls_ca: str | None = None,
        clock: Callable[[], float] = time.time,
        irradiance: Callable[[float], float] = clear_sky,
    ) -> None:
        if n_sites < 1:
            raise ValueError(f"n_sites must be >= 1, got {n_sites}")
        self.sites: list[EdgeSite] = []
        for sid in site_ids(n_sites, prefix):
            pv = PvInverterUnit(PV_KW, PV_KWP, irradiance=irradiance, clock=clock, serial=sid)
            bat = BatteryUnit(BAT_KWH, BAT_KW, soc=0.6, reserve=0.1, clock=clock, serial=sid)
            meter = MeterUnit([pv, bat], clock=clock, serial=sid)
            port = _free_port(host)
            server = SunSpecServer({1: pv, 2: bat, 3: meter}, host=host, port=port)
            base = {"protocol": "sunspec", "host": host, "port": port, "poll_interval_s": poll_s}
            gateway: dict[str, Any] = {"id": sid, "broker": broker_url}
            if password is not None:
                gateway["password"] = password
            if tls_ca is not None:
                gateway["tls_ca"] = tls_ca
            cfg = parse_config(
                {
                    "gateway": gateway,
                    "devices": [
                        {**base, "id": f"{sid}-pv", "kind": "pv", "unit": 1},
                        {**base, "id": f"{sid}-bat", "kind": "battery", "unit": 2},
                    ],
                },
                f"site {sid}",
            )
            self.sites.append(
                EdgeSite(sid, server, pv, bat, meter, cfg, EdgeGateway(cfg, clock=clock))
            )
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to stop the gateways (devices released) and the servers."""
        self._stop.set()

    async def run(self) -> None:
        """Start every server and gateway; run until :meth:`stop`."""
        for s in self.sites:
            await s.server.start()
        tasks = [asyncio.create_task(s.gateway.run()) for s in self.sites]
        try:
            stop = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            stop.cancel()
        finally:
            for s in self.sites:
                s.gateway.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in self.sites:
                with contextlib.suppress(Exception):
                    await s.server.stop()

    @property
    def readings_sent(self) -> int:
        """Readings the gateways delivered to the broker (acknowledged) in all."""
        return sum(s.gateway.stats.readings_sent for s in self.sites)
