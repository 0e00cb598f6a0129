"""Fleet-side bookkeeping of the CSMS: where each device is and what each charger runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.spec import FleetSpec

__all__ = ["Place", "Session", "places_of"]


@dataclass(frozen=True)
class Place:
    """Where a device is reached: charge point id and connector / EVSE id, and its rating."""

    device_id: str
    cp_id: str
    connector: int
    phases: int
    p_max_kw: float


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
    return {
        d: Place(d, g, int(c), int(ph), float(p))
        for d, g, c, ph, p in zip(
            mine["id"].tolist(),
            mine["gateway_id"].tolist(),
            np.asarray(mine["ocpp_connector"]).tolist(),
            np.asarray(mine["phases"]).tolist(),
            np.asarray(mine["p_max_kw"]).tolist(),
            strict=True,
        )
    }
