"""The SunSpec driver against the twin's SunSpec Modbus server, over TCP on a free port."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
import sunspec2.modbus.client as ssclient

from gridflock.edge.config import SunSpecDevice
from gridflock.edge.driver import DriverError, LocalDriver
from gridflock.edge.sunspec import SunSpecDriver, discover
from gridflock.sim.physics import ETA_INVERTER
from gridflock.sim.sunspec_server import BatteryUnit, MeterUnit, PvInverterUnit, SunSpecServer

from ._site import HOST, free_port, run_with_server


class Clock:
    """A settable clock for the twin's physics [UTC epoch s]."""

    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def __call__(self) -> float:
        return self.t


def dev(port: int, unit: int, kind: str, id_: str, **kw: Any) -> SunSpecDevice:
    return SunSpecDevice(
        id=id_, kind=kind, protocol="sunspec", host=HOST, port=port, unit=unit, **kw
    )  # type: ignore[arg-type]


def due_now(drv: SunSpecDriver) -> None:
    for d in drv._devs.values():
        d.next_due = 0.0


def test_driver_is_a_local_driver() -> None:
    assert isinstance(SunSpecDriver([]), LocalDriver)


def test_discover_lists_models_identity_and_empty_units() -> None:
    clock = Clock()
    pv = PvInverterUnit(5.0, clock=clock, serial="PV-42")
    pv7 = PvInverterUnit(4.0, flavour="7xx", clock=clock)
    bat = BatteryUnit(10.0, 5.0, clock=clock)
    meter = MeterUnit([pv, bat], clock=clock)

    async def body(port: int) -> None:
        found = await discover(HOST, port, [1, 2, 3, 4, 9], timeout_s=1.0)
        by_unit = {u.unit: u for u in found}
        assert by_unit[1].models == [1, 120, 103, 123]
        assert (by_unit[1].manufacturer, by_unit[1].serial) == ("Gridflock", "PV-42")
        assert by_unit[2].models == [1, 120, 103, 124, 802]
        assert by_unit[3].models == [1, 203]
        assert by_unit[4].models == [1, 701, 702, 704]
        assert not by_unit[9].found
        assert "no SunSpec map" in (by_unit[9].error or "")
        assert all(not u.unsupported for u in found)

    run_with_server({1: pv, 2: bat, 3: meter, 4: pv7}, body)


def test_readings_follow_the_twin_physics_and_setpoints_reach_the_registers() -> None:
    clock = Clock()
    g = 750.0
    pv = PvInverterUnit(5.0, kwp=6.0, irradiance=lambda t: g, clock=clock)
    bat = BatteryUnit(10.0, 5.0, soc=0.5, reserve=0.1, eta=0.95, clock=clock)
    meter = MeterUnit([pv, bat], load_kw=lambda t: 0.8, clock=clock)

    async def body(port: int) -> None:
        drv = SunSpecDriver(
            [dev(port, 1, "pv", "pv"), dev(port, 2, "battery", "bat"), dev(port, 3, "meter", "m")],
            clock=clock,
        )
        await drv.start()
        assert drv.rating_kw("pv") == pytest.approx(5.0)
        assert drv.rating_kw("bat") == pytest.approx(5.0)  # WChaMax with its scale factor
        r = {x.device_id: x for x in await drv.read()}
        available = min(5.0, 6.0 * g / 1000.0 * float(ETA_INVERTER))  # the oracle
        assert r["pv"].p_kw == pytest.approx(available, abs=1e-3)
        assert r["bat"].p_kw == 0.0
        assert r["bat"].soc == pytest.approx(0.5)
        assert r["m"].p_kw == pytest.approx(available - 0.8, abs=2e-3)  # generator sign
        assert await drv.read() == []  # nothing due within the poll interval
        try:
            await _control(drv)
        finally:
            await drv.close()

    async def _control(drv: SunSpecDriver) -> None:
        res = await drv.apply("pv", 2.5, clock.t + 60)
        assert (res.accepted, res.reason, res.applied_kw) == (True, None, 2.5)
        assert pv.limit_pct == pytest.approx(50.0)
        assert pv.model(123).WMaxLimPct_RvrtTms.value == 60
        clock.t += 61.0  # the gateway is gone: the device drops the limit by itself
        assert pv.limit_pct == 100.0
        until = clock.t + 3600
        assert (await drv.apply("pv", 2.5, until)).accepted
        res = await drv.apply("bat", -7.0, until)  # beyond the 5 kW rating: clipped
        assert (res.accepted, res.reason, res.applied_kw) == (True, "clipped_to_range", -5.0)
        assert bat.requested_kw == pytest.approx(-5.0)
        res = await drv.apply("pv", -1.0, until)  # a PV inverter cannot take power
        assert (res.reason, res.applied_kw) == ("clipped_to_range", 0.0)
        assert (await drv.apply("m", 1.0, until)).reason == "not_controllable"
        assert (await drv.apply("nope", 1.0, until)).reason == "unknown_device"
        assert (await drv.apply("bat", math.nan, until)).reason == "out_of_range"

        clock.t += 360.0  # 0.1 h charging at 5 kW, 95 % efficient
        due_now(drv)
        r = {x.device_id: x for x in await drv.read()}
        assert r["bat"].p_kw == pytest.approx(-5.0)
        assert r["bat"].soc == pytest.approx(0.5 + 5.0 * 0.95 * 0.1 / 10.0, abs=1e-3)
        assert r["pv"].p_kw == pytest.approx(0.0)
        assert r["m"].p_kw == pytest.approx(0.0 - 5.0 - 0.8, abs=2e-3)

        # release: own control again (PV unlimited, battery idle)
        await drv.release("pv")
        await drv.release("bat")
        assert pv.limit_pct == 100.0
        assert bat.requested_kw == 0.0

    run_with_server({1: pv, 2: bat, 3: meter}, body)


def test_setpoints_in_percent_with_scale_factors_match_for_any_value() -> None:
    """WMaxLimPct (SF -1) and OutWRte/InWRte (SF -1) of many setpoints, against the rating."""
    clock = Clock()
    pv = PvInverterUnit(4.0, kwp=10.0, irradiance=lambda t: 1000.0, clock=clock)
    bat = BatteryUnit(13.5, 4.6, soc=0.6, reserve=0.0, clock=clock)
    rng = __import__("numpy").random.default_rng(3)

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv"), dev(port, 2, "battery", "bat")])
        await drv.start()
        try:
            await _sweep(drv)
        finally:
            await drv.close()

    async def _sweep(drv: SunSpecDriver) -> None:
        for p in [0.0, 4.0, 1e-3, *rng.uniform(-1.0, 5.0, 12).tolist()]:
            res = await drv.apply("pv", p, time.time() + 30)
            want = min(max(p, 0.0), 4.0)
            assert res.applied_kw == pytest.approx(want)
            assert pv.p_kw == pytest.approx(want, abs=4.0 * 0.0005 + 1e-9)  # 0.1 % steps
        for p in [-4.6, 4.6, 0.0, *rng.uniform(-6.0, 6.0, 12).tolist()]:
            res = await drv.apply("bat", p, time.time() + 30)
            want = min(max(p, -4.6), 4.6)
            assert res.applied_kw == pytest.approx(want)
            assert bat.requested_kw == pytest.approx(want, abs=4.6 * 0.0005 + 1e-9)

    run_with_server({1: pv, 2: bat}, body)


def test_der_models_701_704_limit_and_safe_mode_zero() -> None:
    clock = Clock()
    pv = PvInverterUnit(4.0, kwp=8.0, irradiance=lambda t: 1000.0, flavour="7xx", clock=clock)

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", safe_mode="zero", models=[701, 704])])
        await drv.start()
        assert drv.rating_kw("pv") == pytest.approx(4.0)
        assert (await drv.read())[0].p_kw == pytest.approx(4.0)
        assert (await drv.apply("pv", 1.0, time.time() + 30)).accepted
        assert pv.model(704).WMaxLimPctEna.value == 1
        assert pv.p_kw == pytest.approx(1.0)
        await drv.release("pv")  # safe mode "zero": curtailed to nothing, not released
        assert pv.p_kw == 0.0
        await drv.close()

    run_with_server({1: pv}, body)


def test_start_reports_every_device_problem_at_once() -> None:
    clock = Clock()
    pv = PvInverterUnit(5.0, clock=clock)
    meter = MeterUnit([pv], clock=clock)

    async def body(port: int) -> None:
        dead = free_port()
        drv = SunSpecDriver(
            [
                dev(port, 1, "pv", "ok"),
                dev(port, 1, "battery", "pv-as-battery"),
                dev(port, 2, "pv", "meter-as-pv"),
                dev(port, 1, "pv", "wants-704", models=[704]),
                dev(port, 7, "pv", "wrong-unit", timeout_s=0.5),
                dev(dead, 1, "pv", "nothing-there", timeout_s=0.5),
            ]
        )
        with pytest.raises(DriverError) as e:
            await drv.start()
        msg = str(e.value)
        assert "pv-as-battery" in msg
        assert "no storage control (model 124 or 704)" in msg
        assert "meter-as-pv" in msg
        assert "no model to read its power from" in msg
        assert "wants-704" in msg
        assert "lacks SunSpec model(s) [704]" in msg
        assert "wrong-unit" in msg
        assert "nothing-there" in msg
        assert "cannot connect; check the host, the port" in msg
        assert "no SunSpec map at 40000, 0 or 50000; check the unit id" in msg
        assert "device ok " not in msg

    run_with_server({1: pv, 2: meter}, body)


def test_a_device_that_stops_answering_is_left_out_then_comes_back() -> None:
    clock = Clock()
    pv = PvInverterUnit(5.0, clock=clock)
    port = free_port()

    async def main() -> None:
        srv = SunSpecServer({1: pv}, port=port)
        await srv.start()
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", timeout_s=0.5)])
        await drv.start()
        assert len(await drv.read()) == 1
        await srv.stop()
        due_now(drv)
        assert await drv.read() == []  # unreachable: no reading, no exception
        srv = SunSpecServer({1: pv}, port=port)
        await srv.start()
        due_now(drv)
        assert [r.device_id for r in await drv.read()] == ["pv"]
        await drv.close()
        await srv.stop()

    asyncio.run(main())


def test_server_refuses_read_only_registers_and_out_of_range_values() -> None:
    clock = Clock()
    pv = PvInverterUnit(5.0, clock=clock)

    async def body(port: int) -> None:
        def hostile() -> tuple[str, str]:
            d = ssclient.SunSpecModbusClientDeviceTCP(
                slave_id=1, ipaddr=HOST, ipport=port, timeout=2
            )
            d.scan()
            d.connect()
            errors = []
            m = d.models[103][0]
            m.W.value = 100  # a measurement: read-only
            try:
                m.write()
            except Exception as e:
                errors.append(str(e))
            c = d.models[123][0]
            c.WMaxLimPct.value = 1500  # 150.0 %
            try:
                c.write()
            except Exception as e:
                errors.append(str(e))
            d.disconnect()
            return errors[0], errors[1]

        ro, oor = await asyncio.to_thread(hostile)
        assert "2" in ro  # ILLEGAL_ADDRESS
        assert "3" in oor  # ILLEGAL_VALUE
        assert pv.limit_pct == 100.0
        assert pv.writes == 0

    run_with_server({1: pv}, body)


def test_unreachable_start_is_a_driver_error() -> None:
    drv = SunSpecDriver([dev(free_port(), 1, "meter", "m", timeout_s=0.3)])
    with pytest.raises(DriverError, match="no SunSpec device found"):
        asyncio.run(drv.start())


class _HostilePv(PvInverterUnit):
    """An inverter whose registers lie: a power scale factor of 10^4, a rating of 3.2 GW."""

    lie = True

    def refresh(self) -> None:
        super().refresh()
        if self.lie:
            m = self.model(103)
            m.W_SF.value = 4
            m.W.value = 30_000  # 300 MW


def test_hostile_register_values_are_refused_not_forwarded() -> None:
    clock = Clock()
    pv = _HostilePv(5.0, clock=clock)
    bat = BatteryUnit(10.0, 5.0, clock=clock)
    big = PvInverterUnit(5.0, clock=clock)
    big.model(120).WRtg_SF.value = 5
    big.model(120).WRtg.value = 32_000  # 3.2 GW

    async def body(port: int) -> None:
        drv = SunSpecDriver(
            [dev(port, 1, "pv", "liar"), dev(port, 2, "battery", "bat"), dev(port, 3, "pv", "big")]
        )
        with pytest.raises(DriverError, match=r"big .*beyond 100000 kW; give p_max_kw"):
            await drv.start()
        drv = SunSpecDriver([dev(port, 1, "pv", "liar"), dev(port, 2, "battery", "bat")])
        await drv.start()
        bat.soc = 65.535  # a register of 0xFFFF-ish garbage
        got = {r.device_id: r for r in await drv.read()}
        assert "liar" not in got  # 300 MW is not forwarded
        assert math.isnan(got["bat"].soc)
        pv.lie = False
        pv.model(103).W_SF.value = 0
        bat.soc = 0.4
        due_now(drv)
        got = {r.device_id: r for r in await drv.read()}
        assert got["liar"].p_kw == pytest.approx(pv.p_kw, abs=1e-3)
        assert got["bat"].soc == pytest.approx(0.4)
        await drv.close()

    run_with_server({1: pv, 2: bat, 3: big}, body)


class _SlowPv(PvInverterUnit):
    """An inverter that takes ``delay_s`` to answer every request."""

    delay_s = 0.0

    def device(self, unit_id: int) -> Any:
        dev = super().device(unit_id)
        fast = dev.action

        async def slow(*args: Any) -> Any:
            await asyncio.sleep(self.delay_s)
            return await fast(*args)

        dev.action = slow
        return dev


def test_a_slow_device_does_not_hold_back_the_others() -> None:
    clock = Clock()
    fast = PvInverterUnit(5.0, clock=clock)
    slow = _SlowPv(5.0, clock=clock)

    async def body(port: int) -> None:
        drv = SunSpecDriver(
            [dev(port, 1, "pv", "fast"), dev(port, 2, "pv", "slow", timeout_s=10)],
            read_wait_s=0.5,
        )
        await drv.start()
        slow.delay_s = 1.5
        due_now(drv)
        t0 = time.monotonic()
        first = await drv.read()
        assert time.monotonic() - t0 < 1.2
        assert [r.device_id for r in first] == ["fast"]
        await asyncio.sleep(1.5)
        due_now(drv)
        later = {r.device_id for r in await drv.read()}
        assert "slow" in later  # its reading arrives with a later call
        slow.delay_s = 0.0
        await drv.close()

    run_with_server({1: fast, 2: slow}, body)


def test_der_battery_through_704_wset() -> None:
    clock = Clock()
    bat = BatteryUnit(8.0, 4.0, soc=0.5, reserve=0.2, eta=1.0, flavour="7xx", clock=clock)

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "battery", "bat", models=[701, 704, 802])], clock=clock)
        await drv.start()
        assert drv.rating_kw("bat") == pytest.approx(4.0)  # 702 WMaxRtg
        res = await drv.apply("bat", -6.0, clock.t + 600)
        assert (res.accepted, res.reason, res.applied_kw) == (True, "clipped_to_range", -4.0)
        c = bat.model(704)
        assert (c.WSetEna.value, c.WSetMod.value, c.WSetRvrtTms.value) == (1, 1, 600)
        assert bat.requested_kw == pytest.approx(-4.0)
        clock.t += 360.0  # 0.1 h at 4 kW into 8 kWh, lossless
        due_now(drv)
        r = (await drv.read())[0]
        assert r.p_kw == pytest.approx(-4.0)
        assert r.soc == pytest.approx(0.55, abs=1e-3)
        assert (await drv.apply("bat", 2.5, clock.t + 600)).applied_kw == 2.5
        assert bat.requested_kw == pytest.approx(2.5)
        await drv.release("bat")
        assert bat.requested_kw == 0.0
        await drv.close()

    run_with_server({1: bat}, body)
