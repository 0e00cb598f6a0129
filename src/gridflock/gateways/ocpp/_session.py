"""Fleet-side bookkeeping of the CSMS: where each device is and what each charger runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec

__all__ = ["Need", "Place", "Session", "next_departure", "places_of"]


@dataclass(frozen=True)
class Place:
    """Where a device is reached: charge point id and connector / EVSE id, and its rating."""

    device_id: str
    cp_id: str
    connector: int
    phases: int
    p_max_kw: float
    session_kwh: float = 12.0
    """Typical energy a session needs [kWh] (assumed until the car says otherwise)."""
    departure_hour: float = 7.5
    """Typical local hour the car leaves [h]."""
    tz: str = "UTC"
    """The site's time zone (for ``departure_hour``)."""


@dataclass
class Session:
    """One connected charge point: its OCPP version, connection and transactions."""

    cp_id: str
    version: str
    cp: Any
    """The ``ocpp`` ChargePoint object (``Csms16`` or ``Csms201``)."""
    ws: Any
    tx: dict[int, str] = field(default_factory=dict)
    """Running transaction id by connector / EVSE."""
    status: dict[int, str] = field(default_factory=dict)
    """Last announced state by connector / EVSE (Available, Charging...)."""


def places_of(spec: FleetSpec | None) -> dict[str, Place]:
    """The fleet's OCPP devices (EV chargers with ``protocol: ocpp``) by device id."""
    if spec is None:
        return {}
    df = spec.devices.get(DeviceKind.EV_CHARGER)
    if df is None or not len(df) or "protocol" not in df.columns:
        return {}
    mine = df[(df["protocol"] == "ocpp").to_numpy()]
    tz_of = dict(zip(spec.sites["id"].tolist(), spec.sites["tz"].tolist(), strict=True))
    return {
        d: Place(d, g, int(c), int(ph), float(p), float(kwh), float(dep), tz_of.get(s, "UTC"))
        for d, g, c, ph, p, kwh, dep, s in zip(
            mine["id"].tolist(),
            mine["gateway_id"].tolist(),
            np.asarray(mine["ocpp_connector"]).tolist(),
            np.asarray(mine["phases"]).tolist(),
            np.asarray(mine["p_max_kw"]).tolist(),
            np.asarray(mine["session_kwh"]).tolist(),
            np.asarray(mine["departure_hour"]).tolist(),
            mine["site_id"].tolist(),
            strict=True,
        )
    }


@dataclass
class Need:
    """A plugged-in car's remaining energy [kWh] and departure [UTC epoch s].

    Starts from the fleet's typical session (or the car's own figures, OCPP 2.0.1
    NotifyEVChargingNeeds) and shrinks with the energy metered since.
    """

    e_need_kwh: float
    departure_ts: float
    last_ts: float
    last_p_kw: float = 0.0
    exact: bool = False


def next_departure(place: Place, now: float) -> float:
    """The next ``departure_hour`` in the site's zone after ``now`` (at least 1 h ahead)."""
    try:
        zone = ZoneInfo(place.tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(now + 3600.0, zone)
    h = int(place.departure_hour)
    m = round((place.departure_hour - h) * 60) % 60
    dep = local.replace(hour=min(h, 23), minute=m, second=0, microsecond=0)
    if dep <= local:
        dep += timedelta(days=1)
    return dep.timestamp()
