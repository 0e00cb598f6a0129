"""The CSMS against real ``ocpp`` charge-point clients over websockets, OCPP 1.6J and 2.0.1."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from gridflock.domain.ports import DeviceLink
from gridflock.domain.schedules import ScheduleBatch
from gridflock.sim.ocpp import SimulatedChargePoint

from ._ocpp import charger, commands, link_for, ocpp_fleet, shut_down, until

VERSIONS = ["ocpp1.6", "ocpp2.0.1"]


def _latest(link, seen: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Fold the link's new readings into ``seen`` (device -> (p_kw, soc))."""
    for b in link.receive():
        for d, p, s in zip(b.device_ids, b.p_kw, b.soc, strict=True):
            seen[str(d)] = (float(p), float(s))
    return seen


def _p(link, seen: dict[str, tuple[float, float]]) -> float:
    """The newest power of ``s0-ev`` [kW], NaN before any reading."""
    return _latest(link, seen).get("s0-ev", (math.nan, math.nan))[0]


def _expected_kw(kw: float) -> float:
    """What an 11 kW 3-phase charger told ``kw`` in amps (0.1 A steps at 230 V) draws."""
    amps = round(kw * 1000 / (230 * 3), 1)
    return amps * 230 * 3 / 1000


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_transaction_meter_values_and_an_event_change_the_power(version: str) -> None:
    async def main() -> None:
        spec = ocpp_fleet(1)
        link = link_for(spec)
        assert isinstance(link, DeviceLink)
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        cp = SimulatedChargePoint(charger(0, version, soc=0.4))
        task = asyncio.create_task(cp.run(link.url, interval_s=0.2))
        seen: dict[str, tuple[float, float]] = {}
        try:
            await until(lambda: "CP0" in link.sessions and link.sessions["CP0"].tx, "a session")
            assert link.sessions["CP0"].version == version
            await until(lambda: "s0-ev" in _latest(link, seen), "a reading")
            p, soc = seen["s0-ev"]
            assert p == pytest.approx(-11.0, abs=0.05)  # charging: negative, full rating
            assert soc == pytest.approx(0.4, abs=0.01)
            batch = link.receive() or await until(link.receive, "another reading")
            need, dep = batch[0].extras["e_need_kwh"][0], batch[0].extras["departure_ts"][0]
            if version == "ocpp2.0.1":  # the car said: (0.9 - 0.4) x 60 kWh, leaving in 8 h
                assert need == pytest.approx(30.0, abs=0.2)
                assert dep == pytest.approx(time.time() + 8 * 3600, abs=30)
            else:  # assumed from the fleet: a 12 kWh session, leaving at 07:30 local
                assert need == pytest.approx(12.0, abs=0.2)
                assert time.time() + 3600 < dep <= time.time() + 25 * 3600
            report = link.take_report()
            assert report.messages >= 1
            assert [(s.gateway, s.status) for s in report.statuses] == [("CP0", "online")]

            link.send(commands(["s0-ev"], [-5.0]))
            await until(
                lambda: abs(_p(link, seen) + _expected_kw(5.0)) < 0.05,
                "the charger to follow the event",
            )
            acks = await until(lambda: link.take_report().acks, "the ack")
            assert [(a.command_id, a.status) for a in acks] == [("c-s0-ev", "accepted")]
            tx_profile = cp.ev.profiles[1001]
            assert tx_profile.purpose == "TxProfile"  # a transaction runs
            assert tx_profile.transaction_id == link.sessions["CP0"].tx[1]

            link.send(commands(["s0-ev"], [math.nan], tag="release"))
            await until(lambda: abs(_p(link, seen) + 11.0) < 0.05, "full power again")
        finally:
            await shut_down(link, runner, task)

    asyncio.run(main())


@pytest.mark.parametrize("version", VERSIONS)
def test_a_plan_becomes_a_default_profile_and_an_event_overrides_it(version: str) -> None:
    async def main() -> None:
        spec = ocpp_fleet(1)
        link = link_for(spec, rate_unit="W")
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        cp = SimulatedChargePoint(charger(0, version))
        task = asyncio.create_task(cp.run(link.url, interval_s=0.2))
        seen: dict[str, tuple[float, float]] = {}
        try:
            await until(lambda: "CP0" in link.sessions and link.sessions["CP0"].tx, "a session")
            now = time.time()
            start = now - 30  # slot 0 runs now, slot 1 from 30 s on
            plan = ScheduleBatch(
                np.array(["sch-1"], dtype=object),
                np.array(["s0-ev"], dtype=object),
                np.array([1]),
                np.array([[-6.0, -3.0, np.nan]]),
                start,
                60.0,
                start + 180.0,
                now,
                "plan-1",
            )
            link.send_schedules(plan)
            await until(lambda: abs(_p(link, seen) + 6.0) < 0.01, "the plan's 6 kW")
            acks = await until(lambda: link.take_report().acks, "the schedule's ack")
            assert [(a.command_id, a.status) for a in acks] == [("sch-1", "accepted")]
            profile = cp.ev.profiles[2001]
            assert profile.purpose == "TxDefaultProfile"
            assert [(q.start_s, q.limit) for q in profile.periods] == [
                (0, 6000.0),
                (60, 3000.0),
                (120, 11000.0),  # no setpoint: the rating, i.e. no limit
            ]
            link.send(commands(["s0-ev"], [-8.0]))  # the event wins over the plan
            await until(lambda: abs(_p(link, seen) + 8.0) < 0.01, "8 kW")
            link.send(commands(["s0-ev"], [math.nan], tag="release"))  # back to the plan
            await until(lambda: abs(_p(link, seen) + 6.0) < 0.01, "6 kW")
        finally:
            await shut_down(link, runner, task)

    asyncio.run(main())


def test_offline_discharging_and_expired_commands_are_rejected_with_a_reason() -> None:
    async def main() -> None:
        spec = ocpp_fleet(2)
        link = link_for(spec)
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        cp = SimulatedChargePoint(charger(0, "ocpp1.6"))
        task = asyncio.create_task(cp.run(link.url, interval_s=0.2))
        try:
            await until(lambda: "CP0" in link.sessions and link.sessions["CP0"].tx, "a session")
            link.send(commands(["s0-ev", "s1-ev", "s0-pv"], [4.0, -5.0, 1.0]))
            link.send(commands(["s0-ev"], [-5.0], valid_s=-1, tag="old"))
            acks = {a.command_id: a for a in link.take_report().acks}
            assert acks["c-s0-ev"].status == "rejected"
            assert acks["c-s0-ev"].reason.startswith("out_of_range")
            assert acks["c-s1-ev"].reason.startswith("charger_offline")
            assert acks["old-s0-ev"].reason.startswith("expired")
            assert "c-s0-pv" not in acks  # not an OCPP device: another link's
        finally:
            await shut_down(link, runner, task)

    asyncio.run(main())


class _Liar(SimulatedChargePoint):
    """Says Accepted to every profile and keeps none (a charger with broken smart charging)."""

    def set_profile(self, connector: int, wire: dict, version: str) -> str:
        return "Accepted"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_composite_schedule_unmasks_a_charger_that_ignores_its_profile(version: str) -> None:
    async def main() -> None:
        link = link_for(ocpp_fleet(2))
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        liar = _Liar(charger(0, version))
        honest = SimulatedChargePoint(charger(1, version))
        tasks = [asyncio.create_task(p.run(link.url, interval_s=0.2)) for p in (liar, honest)]
        try:
            await until(lambda: all(link.sessions.get(c) for c in ("CP0", "CP1")), "sessions")
            await until(lambda: all(link.sessions[c].tx for c in ("CP0", "CP1")), "transactions")
            # and both chargers have taken the transaction ids (else a TxProfile is refused)
            await until(lambda: liar.ev.tx_id and honest.ev.tx_id, "the chargers' transactions")
            link.send(commands(["s0-ev", "s1-ev"], [-5.0, -1e9]))  # absurd: capped at the rating
            acks: list = []
            await until(lambda: acks.extend(link.take_report().acks) or len(acks) == 2, "2 acks")
            by_id = {a.command_id: a for a in acks}
            assert by_id["c-s0-ev"].status == "rejected"
            assert by_id["c-s0-ev"].reason.startswith("composite_mismatch")
            assert "allows 15.9 A, not the 7.2 A sent" in by_id["c-s0-ev"].reason
            assert by_id["c-s1-ev"].status == "accepted"
            assert honest.ev.profiles[1001].periods[0].limit == pytest.approx(15.9, abs=0.05)
            assert honest.ev.p_kw == pytest.approx(11.0, abs=0.05)  # never above its rating
        finally:
            await shut_down(link, runner, *tasks)

    asyncio.run(main())
