"""The shipped profiles: they load, cite a clause per setting, and IEEE 1547 is OpenDER's."""

from __future__ import annotations

import math

import pytest
from opender.common_file_format.common_file_format import DERCommonFileFormat
from pydantic import ValidationError

from gridflock.gridcode import Curve, Profile, kind_responses, products, profile, profiles

REQUIRED = {
    "IEEE1547-B",
    "US-CA-RULE21",
    "DE-VDE4105",
    "AU-A",
    "AU-B",
    "AU-C",
    "NZ",
    "GB-G98",
    "GB-G99",
    "EU-RFG",
}


def test_every_required_profile_ships_and_validates():
    assert set(profiles()) >= REQUIRED


@pytest.mark.parametrize("code", sorted(REQUIRED))
def test_every_setting_cites_its_clause(code: str):
    p = profile(code)
    for section in (p.volt_var, p.volt_watt, p.freq_watt, p.ride_through, p.export, p.control):
        assert len(section.clause) > 10, (code, section)
    for t in p.trips:
        assert t.clause, (code, t.name)
    # the curves do what their names say: volt-var absorbs at high voltage, volt-watt
    # never raises power as voltage rises
    assert p.volt_var.y[-1] <= 0 <= p.volt_var.y[0]
    assert all(b <= a for a, b in zip(p.volt_watt.y, p.volt_watt.y[1:], strict=False))
    # the droop gives up all rated power within a few Hz, never within the deadband
    fw = p.freq_watt
    assert 0 < fw.db_over_hz + fw.droop_over * p.f_nom_hz <= 6


def test_ieee1547_numbers_are_opender_defaults():
    d = DERCommonFileFormat()
    p = profile("IEEE1547-B")
    assert (d.NP_NORMAL_OP_CAT, d.NP_ABNORMAL_OP_CAT) == ("CAT_B", "CAT_III")
    assert p.volt_var.x == tuple(float(getattr(d, f"QV_CURVE_V{i}")) for i in range(1, 5))
    assert p.volt_var.y == tuple(float(getattr(d, f"QV_CURVE_Q{i}")) for i in range(1, 5))
    assert p.volt_var.response_s == d.QV_OLRT
    assert p.volt_watt.x == (d.PV_CURVE_V1, d.PV_CURVE_V2)
    assert p.volt_watt.y == (d.PV_CURVE_P1, d.PV_CURVE_P2)
    assert p.volt_watt.response_s == d.PV_OLRT
    fw = p.freq_watt
    assert (fw.db_over_hz, fw.db_under_hz, fw.droop_over, fw.droop_under, fw.response_s) == (
        d.PF_DBOF,
        d.PF_DBUF,
        d.PF_KOF,
        d.PF_KUF,
        d.PF_OLRT,
    )
    trips = {t.name: t for t in p.trips}
    for name in ("OV2", "OV1", "UV1", "UV2"):
        assert trips[name].threshold == getattr(d, f"{name}_TRIP_V")
        assert trips[name].clear_s == getattr(d, f"{name}_TRIP_T")
    for name in ("OF2", "OF1", "UF1", "UF2"):
        assert trips[name].threshold == getattr(d, f"{name}_TRIP_F")
        assert trips[name].clear_s == getattr(d, f"{name}_TRIP_T")
    assert p.control.enter_service_ramp_s == d.ES_RAMP_RATE


def test_rule21_is_ieee1547_with_volt_var_and_volt_watt_on():
    ieee, r21 = profile("IEEE1547-B"), profile("US-CA-RULE21")
    assert not ieee.volt_var.enabled
    assert r21.volt_var.enabled
    assert r21.volt_watt.enabled
    assert (r21.volt_var.x, r21.volt_var.y) == (ieee.volt_var.x, ieee.volt_var.y)
    assert r21.trips == ieee.trips
    assert r21.freq_watt == ieee.freq_watt


def test_german_and_british_specifics():
    de, g98, g99 = profile("DE-VDE4105"), profile("GB-G98"), profile("GB-G99")
    assert de.control.floor_kw == 4.2
    assert "§14a" in de.control.clause
    assert set(de.control.floor_kinds) == {"heat_pump", "ev_charger", "battery"}
    assert de.f_nom_hz + de.freq_watt.db_over_hz == pytest.approx(50.2)
    assert g98.export.max_site_generation_kw == pytest.approx(16 * 230 / 1000)
    assert g99.export.max_site_generation_kw is None
    assert g98.f_nom_hz + g98.freq_watt.db_over_hz == pytest.approx(50.4)
    assert g98.freq_watt.droop_over == 0.10


def test_australian_regions_differ_where_the_standard_does():
    a, b, c, nz = (profile(x) for x in ("AU-A", "AU-B", "AU-C", "NZ"))
    assert a.volt_var.x[0] * 230 == pytest.approx(207, abs=0.01)
    assert b.volt_var.y[0] == 0.30
    assert nz.volt_var.y[0] == 0.60
    assert c.freq_watt.db_over_hz > a.freq_watt.db_over_hz > b.freq_watt.db_over_hz
    for p in (a, b, c, nz):
        assert p.control.ramp_pu_per_s == pytest.approx(0.1667 / 60, rel=1e-3)


def test_a_broken_profile_is_refused_with_what_is_wrong():
    good = profile("IEEE1547-B").model_dump()
    bad = {**good, "volt_var": {**good["volt_var"], "x": [0.92, 0.9, 1.02, 1.08]}}
    with pytest.raises(ValidationError, match="increase strictly"):
        Profile.model_validate(bad)
    with pytest.raises(ValidationError, match="extra"):
        Profile.model_validate({**good, "typo_field": 1})
    trips = [*good["trips"], {**good["trips"][4], "name": "X", "threshold": 60.5}]
    with pytest.raises(ValidationError, match="inside the continuous operating range"):
        Profile.model_validate({**good, "trips": trips})
    with pytest.raises(ValidationError):
        Curve(x=(1.0, 1.1), y=(1.0,), response_s=1, enabled=True, clause="abc")
    with pytest.raises(KeyError, match="known: "):
        profile("XX-NOPE")


def test_frequency_products_and_kind_responses():
    dc, vf = products()["GB-DC"], products()["AU-VFFCAS"]
    assert (dc.start_s, dc.full_s) == (0.5, 1.0)
    assert vf.full_s == 1.0
    kr = kind_responses()
    assert kr["battery"].full_s < 1.0
    assert kr["water_heater"].full_s < 1.0
    assert kr["heat_pump"].full_s > 1.0
    assert kr["ev_charger"].full_s > 1.0
    assert all(math.isfinite(k.full_s) for k in kr.values())
