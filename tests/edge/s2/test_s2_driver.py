"""The S2 driver (the gateway as CEM) against s2-python's resource-manager side over a real
websocket: handshake, control type, setpoints to instructions, fill-level limits, PPBC
shifting, disconnects and release."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s2python.common import (
    ControlType,
    Duration,
    PowerForecast,
    PowerForecastElement,
    PowerForecastValue,
)

from gridflock.edge.driver import LocalDriver
from gridflock.edge.s2 import S2DeviceConfig, build_s2_driver

from ._rms import (
    L1,
    P_MAX_W,
    RM,
    BatteryFRBC,
    BatteryPhysics,
)
from ._site import BAT_RM, Site, configs, run, storage, until


def test_driver_is_a_local_driver() -> None:
    driver = build_s2_driver(configs())
    assert isinstance(driver, LocalDriver)
    assert driver.name == "s2"
    assert list(driver.device_ids) == ["bat-1", "wm-1"]


def test_handshake_details_and_control_type_selection() -> None:
    async def scenario() -> None:
        async with Site() as site:
            bat = site.driver.session("bat-1")
            wm = site.driver.session("wm-1")
            assert bat is not None
            assert wm is not None
            assert bat.handshaken
            assert str(bat.details.resource_id) == BAT_RM
            assert bat.control_type is ControlType.FILL_RATE_BASED_CONTROL
            assert wm.control_type is ControlType.POWER_PROFILE_BASED_CONTROL
            assert site.bat.controlled
            assert site.wm.controlled
            assert bat.frbc.fill_level == pytest.approx(50.0)
            assert wm.ppbc_definition is not None
            assert wm.ppbc_definition.id == site.wm.profile_id
            assert bat.errors_sent == []
            assert wm.errors_sent == []

    run(scenario())


def test_setpoints_become_instructions_and_the_rm_power_follows() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, bat, rm = site.driver, site.bat, site.bat_rm
            assert rm is not None
            until_t = time.time() + 600
            res = await d.apply("bat-1", -3.0, until_t)  # charge 3 kW
            assert res.accepted
            assert res.reason is None
            assert res.applied_kw == pytest.approx(-3.0)
            assert bat.mode is not None
            assert bat.mode.diagnostic_label == "charge"
            assert bat.power_w() == pytest.approx(3000.0)
            await rm.measure(bat.power_w())
            await until(lambda: d.session("bat-1").measurement is not None)  # type: ignore[union-attr]
            [reading] = [r for r in await d.read() if r.device_id == "bat-1"]
            assert reading.p_kw == pytest.approx(-3.0)
            assert reading.soc == pytest.approx(0.5)
            assert all(r.device_id != "bat-1" for r in await d.read())  # nothing new since

            res = await d.apply("bat-1", 2.5, until_t)  # discharge 2.5 kW
            assert res.accepted
            assert res.applied_kw == pytest.approx(2.5)
            assert bat.mode.diagnostic_label == "discharge"  # type: ignore[union-attr]
            assert bat.power_w() == pytest.approx(-2500.0)

            res = await d.apply("bat-1", 9.0, until_t)  # beyond the 5 kW the modes allow
            assert res.accepted
            assert res.applied_kw == pytest.approx(P_MAX_W / 1000)
            assert res.reason is not None
            assert "limited to 5.000 kW" in res.reason
            assert bat.power_w() == pytest.approx(-P_MAX_W)
            assert len(bat.instructions) == 3

    run(scenario())


def test_fill_level_limits_hold_near_full_and_as_the_level_moves() -> None:
    async def scenario() -> None:
        async with Site(min_horizon_s=60.0) as site:
            d, bat, rm = site.driver, site.bat, site.bat_rm
            assert rm is not None
            bat.fill = 99.0
            await rm.send(storage(bat.fill))
            await until(lambda: d.session("bat-1").frbc.fill_level == 99.0)  # type: ignore[union-attr]
            horizon = 1200.0
            res = await d.apply("bat-1", -5.0, time.time() + horizon)
            assert res.accepted
            assert res.reason is not None
            assert "fill level" in res.reason
            assert res.applied_kw is not None
            assert -5.0 < res.applied_kw < 0.0
            bat.step(horizon)
            assert max(bat.trace) <= 100.0 + 1e-9
            # Discharging from near empty, with the level reported as it moves.
            bat.fill = 2.0
            bat.trace.clear()
            await rm.send(storage(bat.fill))
            res = await d.apply("bat-1", 5.0, time.time() + 3600)
            assert res.accepted
            assert res.applied_kw is not None
            assert 0.0 < res.applied_kw < 5.0
            bat.step(600.0)
            # Someone drew from the battery behind the CEM's back: the level dropped. The next
            # StorageStatus makes the CEM re-plan the standing setpoint at once.
            n, before = len(bat.instructions), bat.power_w()
            bat.fill *= 0.5
            await rm.send(storage(bat.fill))
            await until(lambda: len(bat.instructions) > n, what="re-planned instruction")
            assert bat.power_w() < 0.0
            assert abs(bat.power_w()) < abs(before)  # less discharge for the lower level
            bat.step(3000.0)
            assert min(bat.trace) >= -1e-9

    run(scenario())


def test_release_hands_control_back_and_apply_takes_it_again() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, bat = site.driver, site.bat
            await d.apply("bat-1", -4.0, time.time() + 600)
            assert bat.power_w() == pytest.approx(4000.0)
            await d.release("bat-1")
            s = d.session("bat-1")
            assert s is not None
            assert s.control_type is ControlType.NO_SELECTION
            assert not bat.controlled
            assert bat.power_w() == 0.0
            res = await d.apply("bat-1", -1.0, time.time() + 600)
            assert res.accepted
            assert bat.controlled
            assert bat.power_w() == pytest.approx(1000.0)

    run(scenario())


def test_idle_safe_mode_keeps_control_at_zero_kw() -> None:
    async def scenario() -> None:
        async with Site(safe_mode="idle") as site:
            d, bat = site.driver, site.bat
            await d.apply("bat-1", 3.0, time.time() + 600)
            await d.release("bat-1")
            assert bat.controlled
            assert bat.power_w() == pytest.approx(0.0)
            s = d.session("bat-1")
            assert s is not None
            assert s.control_type is ControlType.FILL_RATE_BASED_CONTROL

    run(scenario())


def test_an_expired_setpoint_is_released_on_read() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, bat = site.driver, site.bat
            await d.apply("bat-1", 3.0, time.time() + 0.05)
            assert bat.power_w() == pytest.approx(-3000.0)
            await asyncio.sleep(0.1)
            await d.read()
            assert not bat.controlled
            assert bat.power_w() == 0.0

    run(scenario())


def test_ppbc_moves_the_profile_out_of_the_window_and_release_reverts() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, wm, rm = site.driver, site.wm, site.wm_rm
            assert rm is not None
            now = datetime.now(UTC)
            assert wm.power_w(now) == 2000.0  # its own plan: running now
            await rm.measure(wm.power_w(now))
            await until(lambda: d.session("wm-1").measurement is not None)  # type: ignore[union-attr]
            [r] = [r for r in await d.read() if r.device_id == "wm-1"]
            assert r.p_kw == pytest.approx(-2.0)
            assert r.p_baseline_kw == pytest.approx(-2.0)

            window_end = time.time() + 1800
            res = await d.apply("wm-1", 0.0, window_end)  # nothing from the grid for 30 min
            assert res.accepted
            assert res.reason is None
            assert res.applied_kw == pytest.approx(0.0)
            [instr] = wm.schedule.values()
            assert instr.execution_time.timestamp() == pytest.approx(window_end, abs=1.0)
            assert wm.power_w(datetime.now(UTC)) == 0.0
            await rm.measure(wm.power_w(datetime.now(UTC)))
            await until(lambda: d.session("wm-1").measurement[1] == 0.0)  # type: ignore[index,union-attr]
            [r] = [r for r in await d.read() if r.device_id == "wm-1"]
            assert r.p_kw == 0.0
            assert r.p_baseline_kw == pytest.approx(-2.0)

            await d.release("wm-1")
            assert wm.revoked == [instr.id]
            assert not wm.controlled
            assert wm.power_w(datetime.now(UTC)) == 2000.0

    run(scenario())


def test_ppbc_says_what_stays_in_the_window_when_the_end_time_is_near() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, wm = site.driver, site.wm
            # The cycle must end within 80 min: a 60-min window cannot be cleared.
            wm.end = datetime.fromtimestamp(time.time() + 4800, UTC)
            s = d.session("wm-1")
            assert s is not None
            await s.select(ControlType.POWER_PROFILE_BASED_CONTROL)  # re-sends the definition
            await until(s.ready.is_set)
            res = await d.apply("wm-1", -0.5, time.time() + 3600)
            assert res.accepted
            assert res.reason is not None
            assert "kWh" in res.reason
            [instr] = wm.schedule.values()
            # Latest start that still ends in time: 4800 s - 3600 s of the normal cycle.
            assert instr.execution_time.timestamp() <= time.time() + 1200 + 1
            assert instr.power_sequence_id == wm.sequences["normal"][0]

    run(scenario())


def test_an_rm_that_disconnects_is_unreachable() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, rm = site.driver, site.bat_rm
            assert rm is not None
            await rm.measure(0.0)
            await until(lambda: d.session("bat-1").measurement is not None)  # type: ignore[union-attr]
            await rm.stop()
            site.bat_rm = None
            await until(lambda: not d.connected("bat-1"), what="disconnect seen")
            assert all(r.device_id != "bat-1" for r in await d.read())
            res = await d.apply("bat-1", 1.0, time.time() + 60)
            assert not res.accepted
            assert "not connected" in (res.reason or "")
            await d.release("bat-1")  # a no-op, not an error
            # The RM comes back: served again.
            site.bat_rm = RM(d.endpoints["bat-1"], BAT_RM, BatteryFRBC(site.bat))
            await site.bat_rm.start()
            await until(lambda: site._ready("bat-1"), what="reconnect")
            assert (await d.apply("bat-1", 1.0, time.time() + 60)).accepted

    run(scenario())


def test_bad_setpoints_are_refused_with_a_reason() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d = site.driver
            assert not (await d.apply("bat-1", math.nan, time.time() + 60)).accepted
            assert not (await d.apply("bat-1", 1.0, math.inf)).accepted
            assert "passed" in ((await d.apply("bat-1", 1.0, time.time() - 1)).reason or "")
            assert "not an S2 device" in (
                (await d.apply("nope", 1.0, time.time() + 9)).reason or ""
            )
            # A far-future expiry only makes the fill-level guard stricter.
            res = await d.apply("bat-1", -5.0, time.time() + 1e9)
            assert res.accepted
            assert res.applied_kw is not None
            assert abs(res.applied_kw) < 1e-3

    run(scenario())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fill=st.floats(0.0, 100.0),
    leak=st.sampled_from([0.0, 2e-4]),
    steps=st.lists(st.tuples(st.floats(-9.0, 9.0), st.floats(1.0, 4000.0)), min_size=1, max_size=5),
)
def test_fill_level_holds_over_any_setpoints_through_the_websocket(fill, leak, steps) -> None:
    """Setpoints through the real session; the battery RM's own model is the oracle."""

    async def scenario() -> None:
        async with Site() as site:
            d, bat, rm = site.driver, site.bat, site.bat_rm
            assert rm is not None
            bat.leakage = leak
            bat.fill = fill
            s = d.session("bat-1")
            assert s is not None
            await s.select(ControlType.FILL_RATE_BASED_CONTROL)  # re-described with leakage
            await until(lambda: s.ready.is_set() and s.frbc.fill_level == fill)
            for p_kw, dt in steps:
                res = await d.apply("bat-1", p_kw, time.time() + dt)
                assert res.accepted, res.reason
                for _ in range(4):  # the level reported as it moves: re-checked by the CEM
                    bat.step(dt / 4, substeps=50)
                    await rm.send(storage(bat.fill))
                await until(lambda: "bat-1" not in d._recheck_due)
            assert max(bat.trace) <= 100.0 + 1e-6
            assert min(bat.trace) >= -1e-6

    run(scenario())


def test_a_rejected_instruction_refuses_the_setpoint_and_forecasts_give_the_baseline() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, bat, rm = site.driver, site.bat, site.bat_rm
            assert rm is not None
            bat.reject = True
            res = await d.apply("bat-1", 2.0, time.time() + 600)
            assert not res.accepted
            assert "rejected FRBC.Instruction" in (res.reason or "")
            assert bat.power_w() == 0.0
            now = datetime.now(UTC)
            await rm.send(
                PowerForecast(
                    message_id=uuid.uuid4(),
                    start_time=now - timedelta(minutes=1),
                    elements=[
                        PowerForecastElement(
                            duration=Duration.from_milliseconds(3_600_000),
                            power_values=[
                                PowerForecastValue(value_expected=1500.0, commodity_quantity=L1)
                            ],
                        )
                    ],
                )
            )
            await rm.measure(1200.0)
            await until(lambda: d.session("bat-1").measurement is not None)  # type: ignore[union-attr]
            [r] = [r for r in await d.read() if r.device_id == "bat-1"]
            assert r.p_kw == pytest.approx(-1.2)
            assert r.p_baseline_kw == pytest.approx(-1.5)
            # An appliance asked to deliver power says it cannot.
            res = await d.apply("wm-1", 1.0, time.time() + 600)
            assert res.accepted
            assert res.applied_kw == 0.0
            assert "cannot deliver" in (res.reason or "")

    run(scenario())


def test_a_water_heater_reports_its_tank_temperature_not_a_soc() -> None:
    async def scenario() -> None:
        rid = uuid.uuid4()
        driver = build_s2_driver(
            [S2DeviceConfig(device_id="wh-1", kind="water_heater", resource_id=rid, listen_port=0)]
        )
        await driver.start()
        tank = BatteryPhysics(fill=55.0, label="°C")
        rm = RM(driver.endpoints["wh-1"], str(rid), BatteryFRBC(tank))
        try:
            await rm.start()
            await until(
                lambda: driver.session("wh-1") is not None and driver.session("wh-1").ready.is_set()
            )  # type: ignore[union-attr]
            await rm.measure(2000.0)
            await until(lambda: driver.session("wh-1").measurement is not None)  # type: ignore[union-attr]
            [r] = await driver.read()
            assert r.p_kw == pytest.approx(-2.0)
            assert math.isnan(r.soc)
            assert r.extras == {"t_tank_c": 55.0}
        finally:
            await rm.stop()
            await driver.close()

    run(scenario())
