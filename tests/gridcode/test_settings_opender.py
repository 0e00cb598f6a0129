"""The settings pushed to a device behave as EPRI's OpenDER model of IEEE 1547-2018.

The settings document for an IEEE 1547 site is read back the way a device would (curve
points, droop, enable flags) into OpenDER's own DER model; its steady-state response to
voltage and frequency must equal the response Gridflock computes from the same settings
(``curve_value``, ``droop_p_pu``): reactive power from volt-var, active power from
volt-watt and from the frequency droop.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opender import DER_PV

from gridflock.gridcode import (
    Curve,
    FreqWatt,
    curve_value,
    device_settings,
    droop_p_pu,
    products,
    profile,
)

RATED_KW = 10.0


def pushed() -> dict:
    """What is sent to the inverter, through JSON as on the wire."""
    doc = device_settings(profile("IEEE1547-B"), "inv-1", "pv", RATED_KW)
    return json.loads(json.dumps(doc))


def opender_from(doc: dict, **modes: bool) -> DER_PV:
    """An OpenDER PV inverter configured from a pushed settings document."""
    vv, vw, fw = doc["volt_var"], doc["volt_watt"], doc["freq_watt"]
    va = doc["p_rated_kw"] * 1000
    kw = {
        "NP_VA_MAX": va,
        "NP_P_MAX": va,
        "NP_Q_MAX_INJ": 0.44 * va,
        "NP_Q_MAX_ABS": 0.44 * va,
        "NP_AC_V_NOM": 240,
        "QV_MODE_ENABLE": modes.get("qv", False),
        "PV_MODE_ENABLE": modes.get("pv", False),
        "PF_MODE_ENABLE": modes.get("pf", False),
        "QV_OLRT": vv["response_s"],
        "PV_OLRT": vw["response_s"],
        "PV_CURVE_V1": vw["v_pu"][0],
        "PV_CURVE_P1": vw["p_pu"][0],
        "PV_CURVE_V2": vw["v_pu"][1],
        "PV_CURVE_P2": vw["p_pu"][1],
        "PF_DBOF": fw["db_over_hz"],
        "PF_DBUF": fw["db_under_hz"],
        "PF_KOF": fw["droop_over"],
        "PF_KUF": fw["droop_under"],
        "PF_OLRT": fw["response_s"],
    }
    for i in range(4):
        kw[f"QV_CURVE_V{i + 1}"] = vv["v_pu"][i]
        kw[f"QV_CURVE_Q{i + 1}"] = vv["q_pu"][i]
    DER_PV.t_s = 100_000  # snapshot: every response has settled
    return DER_PV(**kw)


def _curve(section: dict, y: str) -> Curve:
    return Curve(
        x=tuple(section["v_pu"]), y=tuple(section[y]), response_s=1, enabled=True, clause="xxx"
    )


@settings(max_examples=25, deadline=None)
@given(v=st.floats(0.89, 1.095), p_avail=st.floats(0.05, 1.0))
def test_volt_var_and_volt_watt_equal_opender(v: float, p_avail: float):
    doc = pushed()
    der = opender_from(doc, qv=True, pv=True)
    der.update_der_input(v_pu=v, f=60.0, p_dc_pu=p_avail)
    p_w, q_var = der.run()
    s_va = RATED_KW * 1000
    q_ours = float(curve_value(_curve(doc["volt_var"], "q_pu"), v)) * s_va
    p_ours = min(p_avail, float(curve_value(_curve(doc["volt_watt"], "p_pu"), v))) * s_va
    # the inverter's own limits, as IEEE 1547-2018 5.2 has them for category B: reactive
    # capability 0.44 pu, derated linearly below 20 % active power; reactive power has
    # priority within the apparent-power circle
    q_cap = 0.44 * s_va * min(1.0, p_ours / s_va / 0.2)
    q_ours = float(np.clip(q_ours, -q_cap, q_cap))
    assert q_var == pytest.approx(q_ours, abs=1e-3)
    assert p_w == pytest.approx(min(p_ours, np.sqrt(s_va**2 - q_ours**2)), abs=1e-3)


@settings(max_examples=25, deadline=None)
@given(f=st.floats(59.0, 61.15), p_pre=st.floats(0.1, 1.0))
def test_frequency_droop_equals_opender(f: float, p_pre: float):
    doc = pushed()
    der = opender_from(doc, pf=True)
    der.update_der_input(v_pu=1.0, f=60.0, p_dc_pu=p_pre)
    der.run()
    der.update_der_input(v_pu=1.0, f=f, p_dc_pu=p_pre)
    p_w, _ = der.run()
    fw = FreqWatt.model_validate({k: v for k, v in doc["freq_watt"].items() if k != "enabled"})
    ours = float(np.clip(droop_p_pu(fw, doc["f_nom_hz"], f, p_pre), 0.0, p_pre))  # PV: no rise
    assert p_w == pytest.approx(ours * RATED_KW * 1000, abs=1e-3)


def test_settings_document_carries_clauses_trips_and_product():
    de = device_settings(
        profile("DE-VDE4105"), "hp-1", "heat_pump", 3.0, products()["GB-DC"], 0.0, 2.5
    )
    assert de["schema"] == "gridflock.settings/1"
    assert de["control"]["floor_kw"] == 4.2
    assert "§14a" in de["control"]["clause"]
    assert {t["name"] for t in de["trips"]} >= {"f<", "f>"}
    assert de["ffr"]["down_kw"] == 2.5
    assert de["ffr"]["deadband_hz"] == 0.015
    bat = device_settings(profile("DE-VDE4105"), "b", "battery", 5.0)
    assert bat["control"]["floor_kw"] == 4.2  # §14a covers batteries charging from the grid
    assert bat["ffr"] is None
    pv = device_settings(profile("DE-VDE4105"), "p", "pv", 5.0)
    assert pv["control"]["floor_kw"] is None
    with pytest.raises(ValueError, match="50 Hz grids"):
        device_settings(profile("IEEE1547-B"), "x", "battery", 5.0, products()["GB-DC"])
    with pytest.raises(ValueError, match="p_rated_kw"):
        device_settings(profile("NZ"), "x", "battery", float("nan"))
