"""Sites and devices as the API lists them: the provisioned tables joined with live values.

The joins (device → fleet-state row, site → state site row) are cached per
(spec, state) pair, since both are replaced, never edited, on a fleet import; live
values are read from the state arrays on each request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridflock.api._convert import iso, jsonable
from gridflock.api.runtime import Runtime
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import IntArray
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState

__all__ = ["Catalog", "CatalogCache"]


@dataclass(frozen=True)
class Catalog:
    """Device and site tables of one spec, with their rows in one fleet state (-1: absent)."""

    spec: FleetSpec
    state: FleetState
    devices: pd.DataFrame  # id, site_id, kind, gateway_id, cost_per_kwh, protocol
    device_rows: IntArray
    site_rows: IntArray  # row of each spec site in state.grid

    def device_live(self, positions: IntArray) -> list[dict[str, Any]]:
        """Device records (common columns and live values) at ``positions`` of ``devices``."""
        st = self.state
        out = []
        for pos in positions:
            row = self.devices.iloc[int(pos)]
            r = int(self.device_rows[int(pos)])
            live = r >= 0
            out.append(
                {
                    "id": str(row["id"]),
                    "site_id": str(row["site_id"]),
                    "kind": str(row["kind"]),
                    "gateway_id": str(row["gateway_id"]),
                    "protocol": str(row.get("protocol", "mqtt")),
                    "cost_per_kwh": float(row["cost_per_kwh"]),
                    "p_kw": jsonable(st.p_kw[r]) if live else None,
                    "p_baseline_kw": jsonable(st.p_baseline_kw[r]) if live else None,
                    "soc": jsonable(st.soc[r]) if live else None,
                    "online": bool(st.online[r]) if live else False,
                    "ts": iso(st.ts[r]) if live else None,
                }
            )
        return out

    def online(self) -> np.ndarray:
        """Whether each device of ``devices`` is online."""
        ok = self.device_rows >= 0
        out = np.zeros(len(self.device_rows), bool)
        out[ok] = self.state.online[self.device_rows[ok]]
        return out

    def attributes(self, device_id: str, kind: str) -> dict[str, Any]:
        """A device's kind-specific attributes from the spec."""
        df = self.spec.devices.get(DeviceKind(kind))
        if df is None:
            return {}
        match = df[df["id"] == device_id]
        if not len(match):
            return {}
        rec = match.iloc[0].to_dict()
        for common in ("id", "site_id", "kind", "gateway_id", "cost_per_kwh", "protocol"):
            rec.pop(common, None)
        attrs: dict[str, Any] = jsonable(rec)
        return attrs

    def sites(self, positions: IntArray) -> list[dict[str, Any]]:
        """Site records with live net power, at ``positions`` of ``spec.sites``."""
        st = self.state
        site_p = st.site_power_kw()
        online = self.online()
        dev_sites = pd.Index(self.spec.sites["id"]).get_indexer(self.devices["site_id"])
        count = np.bincount(dev_sites[dev_sites >= 0], minlength=len(self.spec.sites))
        up = np.bincount(
            dev_sites[dev_sites >= 0],
            weights=online[dev_sites >= 0].astype(float),
            minlength=len(self.spec.sites),
        )
        out = []
        for pos in positions:
            p = int(pos)
            rec: dict[str, Any] = jsonable(self.spec.sites.iloc[p].to_dict())
            r = int(self.site_rows[p])
            rec["device_count"] = int(count[p])
            rec["devices_online"] = int(up[p])
            rec["p_kw"] = float(site_p[r]) if r >= 0 else 0.0
            out.append(rec)
        return out


class CatalogCache:
    """The catalog of the runtime's current spec and state, rebuilt when either changes."""

    def __init__(self) -> None:
        self._catalog: Catalog | None = None

    def get(self, runtime: Runtime) -> Catalog:
        """The catalog for ``runtime.spec`` and ``runtime.state`` now."""
        spec, state = runtime.spec, runtime.state
        cat = self._catalog
        if cat is not None and cat.spec is spec and cat.state is state:
            return cat
        devices = spec.all_devices().reset_index(drop=True)
        rows = pd.Index(state.device_ids).get_indexer(pd.Index(devices["id"]))
        site_rows = pd.Index(state.grid.site_ids).get_indexer(pd.Index(spec.sites["id"]))
        cat = Catalog(
            spec=spec,
            state=state,
            devices=devices,
            device_rows=np.asarray(rows, dtype=np.int64),
            site_rows=np.asarray(site_rows, dtype=np.int64),
        )
        self._catalog = cat
        return cat
