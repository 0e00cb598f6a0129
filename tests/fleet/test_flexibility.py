"""Flexibility per kind: held-for-duration headroom from capability, state and constraints."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.domain import DeviceKind
from gridflock.domain.bands import COMFORT_MARGIN_K_PER_H
from gridflock.fleet import aggregate, flexibility
from gridflock.fleet.state import FleetState

NOW = 1_750_000_000.0


def online_state(spec) -> FleetState:
    st = FleetState.from_spec(spec)
    st.ts[:] = NOW
    st.online[:] = True
    return st


def one(st, device_id):
    return int(st.indices([device_id])[0])


def test_battery_is_energy_limited_by_the_backup_reserve(small_spec):
    st = online_state(small_spec)
    i = one(st, "s0-bat")
    st.p_kw[i] = st.p_baseline_kw[i] = 0.0
    st.soc[i] = 0.8
    f = flexibility(st, 2.0, NOW)
    # (0.8 - reserve 0.2) * 10 kWh * 0.95 over 2 h, below the 5 kW inverter
    assert f.up_kw[i] == pytest.approx((0.8 - 0.2) * 10 * 0.95 / 2)
    # room to charge: (1 - 0.8) * 10 / 0.95 kWh over 2 h
    assert f.down_kw[i] == pytest.approx((1 - 0.8) * 10 / 0.95 / 2)
    f_short = flexibility(st, 0.25, NOW)
    assert f_short.up_kw[i] == pytest.approx(5.0)  # power-limited over a short window
    st.soc[i] = 0.2
    st.p_baseline_kw[i] = -3.0  # charging from PV surplus
    f = flexibility(st, 2.0, NOW)
    assert f.up_kw[i] == pytest.approx(3.0)  # can only stop charging


def test_pv_curtailment_is_down_only(small_spec):
    st = online_state(small_spec)
    i = one(st, "s0-pv")
    st.p_baseline_kw[i] = 6.0
    f = flexibility(st, 1.0, NOW)
    assert f.up_kw[i] == 0.0
    assert f.down_kw[i] == pytest.approx(6.0)


def test_ev_defers_only_what_departure_allows(small_spec):
    st = online_state(small_spec)
    i = one(st, "s0-ev")
    st.p_baseline_kw[i] = -11.0
    st.extras["e_need_kwh"][i] = 10.0
    st.extras["departure_ts"][i] = NOW + 10 * 3600
    f = flexibility(st, 2.0, NOW)
    assert f.up_kw[i] == pytest.approx(11.0)  # plenty of time: pause fully
    st.extras["departure_ts"][i] = NOW + 1.5 * 3600  # 10 kWh / 0.92 in 1.5 h needs 7.2 kW
    f = flexibility(st, 2.0, NOW)
    assert f.up_kw[i] == pytest.approx(11.0 - 10 / 0.92 / 1.5)
    st.extras["e_need_kwh"][i] = 0.0  # full: unplugged for flexibility
    assert flexibility(st, 2.0, NOW).up_kw[i] == 0.0


def test_heat_pump_respects_the_comfort_band(small_spec):
    st = online_state(small_spec)
    i = one(st, "s0-hp")
    st.p_baseline_kw[i] = -1.0
    st.extras["t_out_c"][i] = 32.0
    st.extras["cop"][i] = 3.0
    st.extras["cooling"][i] = 1.0
    st.extras["gain_kw"][i] = 0.0
    st.extras["t_in_c"][i] = 24.0
    f = flexibility(st, 1.0, NOW)
    # off for an hour: about +0.15*(32-24)/6 = 0.2 K, well inside the band up to 26 degC
    assert f.up_kw[i] == pytest.approx(1.0)
    st.extras["t_in_c"][i] = 25.99  # near the edge: must keep enough cooling to stay inside
    f = flexibility(st, 1.0, NOW)

    def end_temperature(p_el: float, gain: float) -> float:  # the 1R1C house, exactly
        a = np.exp(-0.15 / 6.0)
        return a * 25.99 + (1 - a) * 32.0 + (1 - a) / 0.15 * (gain - 3.0 * p_el)

    edge = 26.0 - COMFORT_MARGIN_K_PER_H * 1.0  # the margin for the weather over 1 h
    assert end_temperature(1.0 - f.up_kw[i], 0.0) == pytest.approx(edge)
    assert f.down_kw[i] > 0.5  # but may pre-cool
    st.extras["gain_kw"][i] = 1.5  # a sunny afternoon: the sun heats the house too
    f_sun = flexibility(st, 1.0, NOW)
    # at 1 kW the sun would push the house over the edge: it cannot run less at all
    assert end_temperature(1.0, 1.5) > edge
    assert f_sun.up_kw[i] == 0.0
    assert f_sun.down_kw[i] > 0.0


def test_offline_and_opted_out_devices_offer_nothing(small_spec):
    st = online_state(small_spec)
    i = one(st, "s0-bat")
    st.p_baseline_kw[i] = 0.0
    st.online[i] = False
    assert flexibility(st, 1.0, NOW).up_kw[i] == 0.0
    st.online[i] = True
    st.grid.site_opt_out[st.site_idx[i]] = True
    assert flexibility(st, 1.0, NOW).up_kw[i] == 0.0


def test_aggregate_by_kind_and_node(small_spec):
    st = online_state(small_spec)
    st.p_baseline_kw[:] = 0.0
    f = flexibility(st, 1.0, NOW)
    by_kind = aggregate(st, "kind", {"up_kw": f.up_kw, "down_kw": f.down_kw})
    assert by_kind["up_kw"].sum() == pytest.approx(f.up_kw.sum())
    bat = by_kind.set_index("kind").loc[DeviceKind.BATTERY.value]
    assert bat["devices"] == 6
    by_node = aggregate(st, "grid_node", {"up_kw": f.up_kw})
    assert by_node["devices"].sum() == st.n
    assert set(by_node["grid_node"]) == {"tx-1", "f-1", "f-2"}
    with pytest.raises(ValueError, match="cannot group by"):
        aggregate(st, "colour", {})
    assert np.isfinite(f.up_kw).all()
