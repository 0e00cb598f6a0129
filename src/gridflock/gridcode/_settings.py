"""The settings pushed to a device from its site's profile: one documented JSON per device.

``device_settings`` gives what an inverter or controller needs to act on its own: the
volt-var, volt-watt and frequency-watt curves (per unit, with its rating to scale them),
the must-trip settings, the ramp and enter-service rules, and optionally the droop of a
fast frequency product it is contracted for, each with its clause. The schema is in
docs/grid-codes.md (``gridflock.settings/1``).
"""

from __future__ import annotations

from typing import Any

from gridflock.gridcode._model import FrequencyProduct, Profile

__all__ = ["SETTINGS_SCHEMA", "device_settings"]

SETTINGS_SCHEMA = "gridflock.settings/1"


def device_settings(
    profile: Profile,
    device_id: str,
    kind: str,
    p_rated_kw: float,
    product: FrequencyProduct | None = None,
    ffr_up_kw: float = 0.0,
    ffr_down_kw: float = 0.0,
) -> dict[str, Any]:
    """The settings document for one device (JSON-ready)."""
    if not p_rated_kw >= 0:
        raise ValueError(f"p_rated_kw must be >= 0 kW, got {p_rated_kw}")
    vv, vw, fw, c = profile.volt_var, profile.volt_watt, profile.freq_watt, profile.control
    doc: dict[str, Any] = {
        "schema": SETTINGS_SCHEMA,
        "device_id": device_id,
        "kind": kind,
        "grid_code": profile.code,
        "f_nom_hz": profile.f_nom_hz,
        "p_rated_kw": p_rated_kw,
        "volt_var": {
            "enabled": vv.enabled,
            "v_pu": list(vv.x),
            "q_pu": list(vv.y),
            "response_s": vv.response_s,
            "clause": vv.clause,
        },
        "volt_watt": {
            "enabled": vw.enabled,
            "v_pu": list(vw.x),
            "p_pu": list(vw.y),
            "response_s": vw.response_s,
            "clause": vw.clause,
        },
        "freq_watt": {
            "enabled": True,
            "db_over_hz": fw.db_over_hz,
            "droop_over": fw.droop_over,
            "db_under_hz": fw.db_under_hz,
            "droop_under": fw.droop_under,
            "response_s": fw.response_s,
            "clause": fw.clause,
        },
        "trips": [t.model_dump() for t in profile.trips],
        "control": {
            "ramp_pu_per_s": c.ramp_pu_per_s,
            "floor_kw": c.floor_kw if kind in c.floor_kinds else None,
            "enter_service_ramp_s": c.enter_service_ramp_s,
            "clause": c.clause,
        },
        "ffr": None,
    }
    if product is not None:
        if product.f_nom_hz != profile.f_nom_hz:
            raise ValueError(
                f"product {product.code} is for {product.f_nom_hz} Hz grids; "
                f"{profile.code} runs at {profile.f_nom_hz} Hz"
            )
        doc["ffr"] = {
            "product": product.code,
            "deadband_hz": product.deadband_hz,
            "knee_hz": product.knee_hz,
            "knee_pu": product.knee_pu,
            "full_hz": product.full_hz,
            "up_kw": max(float(ffr_up_kw), 0.0),
            "down_kw": max(float(ffr_down_kw), 0.0),
            "full_s": product.full_s,
            "clause": product.clause,
        }
    return doc
