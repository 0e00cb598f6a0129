"""The gateway's command, schedule and silence rules, on the real SunSpec driver and server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gridflock.edge.gateway import EdgeGateway
from gridflock.gateways.mqtt.protocol import Command, CommandMessage, Schedule, ScheduleMessage

from ._site import Site, free_port, gateway_on


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def _cmds(now: float, *items: tuple[str, str, int, float | None, float]) -> CommandMessage:
    return CommandMessage(
        v=1,
        issued_at=now,
        commands=[
            Command(id=i, device=d, seq=s, p_setpoint_kw=p, valid_until=u)
            for i, d, s, p, u in items
        ],
    )


def test_commands_are_screened_applied_clipped_and_acknowledged() -> None:
    site = Site()
    clock = Clock()

    async def main() -> None:
        async with gateway_on(site, site.config(1883, failsafe={"silence_s": 30}), clock) as gw:
            now = clock.t
            acks = await gw.handle_commands(
                _cmds(
                    now,
                    ("c1", "site-bat", 10, 2.0, now + 30),
                    ("c2", "site-pv", 10, 9.0, now + 30),  # above the 5 kW rating
                    ("c3", "site-meter", 1, 1.0, now + 30),
                    ("c4", "elsewhere", 1, 1.0, now + 30),
                    ("c5", "site-bat", 11, 1.0, now - 1),
                    ("c6", "site-bat", 9, -1.0, now + 30),
                )
            )
            got = [(a.id, a.status, a.reason) for a in acks]
            assert got == [
                ("c1", "accepted", None),
                ("c2", "accepted", "clipped_to_range"),
                ("c3", "rejected", "not_controllable"),
                ("c4", "rejected", "unknown_device"),
                ("c5", "rejected", "expired"),
                ("c6", "rejected", "replayed"),
            ]
            assert abs(site.bat.requested_kw - 2.0) < 0.01
            assert site.pv.limit_pct == 100.0  # clipped to 5 kW = 100 %
            assert gw.applied["site-pv"] == 5.0
            # a replay of the same message (QoS 1 redelivery) changes nothing
            again = await gw.handle_commands(_cmds(now, ("c1", "site-bat", 10, -4.0, now + 30)))
            assert again[0].reason == "replayed"
            assert abs(site.bat.requested_kw - 2.0) < 0.01
            # the command lapses: the control loop puts the battery back on its own control
            clock.t = now + 30.0
            gw.last_heard = clock.t
            await gw.control_step()
            assert site.bat.requested_kw == site.bat.own_p_kw
            # null releases at once
            acks = await gw.handle_commands(
                _cmds(clock.t, ("c7", "site-bat", 12, -1.0, clock.t + 30))
            )
            assert acks[0].status == "accepted"
            assert abs(site.bat.requested_kw + 1.0) < 0.01
            acks = await gw.handle_commands(
                _cmds(clock.t, ("c8", "site-bat", 13, None, clock.t + 30))
            )
            assert acks[0].status == "accepted"
            assert site.bat.requested_kw == site.bat.own_p_kw

    asyncio.run(main())


def test_schedule_slots_start_on_time_commands_win_and_silence_drops_commands_only() -> None:
    site = Site()
    clock = Clock()

    async def main() -> None:
        async with gateway_on(site, site.config(1883, failsafe={"silence_s": 20}), clock) as gw:
            t0 = clock.t
            gw.last_heard = t0
            msg = ScheduleMessage(
                v=1,
                type="schedule",
                issued_at=t0,
                schedules=[
                    Schedule(
                        id="s1",
                        device="site-bat",
                        seq=1,
                        plan="p",
                        start=t0 + 10,
                        step_s=10.0,
                        p_kw=[-2.0, None, 3.0],
                        valid_until=t0 + 40,
                    ),
                    Schedule(
                        id="s2",
                        device="site-meter",
                        seq=1,
                        plan="p",
                        start=t0 + 10,
                        step_s=10.0,
                        p_kw=[1.0],
                        valid_until=t0 + 20,
                    ),
                ],
            )
            acks = await gw.handle_schedules(msg)
            assert [(a.status, a.reason) for a in acks] == [
                ("accepted", None),
                ("rejected", "not_controllable"),
            ]
            expect = {5: 0.0, 12: -2.0, 25: 0.0, 33: 3.0, 41: 0.0}
            for dt, want in expect.items():
                clock.t = t0 + dt
                gw.last_heard = clock.t
                await gw.control_step()
                assert abs(site.bat.requested_kw - want) < 0.01, (dt, site.bat.requested_kw)
            # a new schedule, and a command that overrides it, then the service falls silent
            msg2 = msg.model_copy(
                update={
                    "schedules": [
                        msg.schedules[0].model_copy(
                            update={
                                "seq": 2,
                                "start": t0 + 50,
                                "valid_until": t0 + 80,
                                "p_kw": [-1.0, -1.0, -1.0],
                            }
                        )
                    ]
                }
            )
            clock.t = t0 + 50
            gw.last_heard = clock.t
            await gw.handle_schedules(msg2)
            acks = await gw.handle_commands(
                _cmds(clock.t, ("e1", "site-bat", 1, 4.0, clock.t + 100))
            )
            assert acks[0].status == "accepted"
            assert abs(site.bat.requested_kw - 4.0) < 0.01
            clock.t = t0 + 50 + 21  # silent for longer than silence_s: the command goes
            await gw.control_step()
            assert gw.stats.silences == 1
            assert abs(site.bat.requested_kw + 1.0) < 0.01  # ... and the plan goes on
            clock.t = t0 + 81  # the plan's end: own control
            await gw.control_step()
            assert site.bat.requested_kw == site.bat.own_p_kw

    asyncio.run(main())


def test_hostile_messages_far_future_commands_and_a_restart() -> None:
    site = Site()
    clock = Clock()

    async def main() -> None:
        await site.server.start()
        # a restart mid-event: the battery still holds a setpoint from before
        site.bat.model(124).StorCtl_Mod.value = 2  # discharge
        site.bat.model(124).OutWRte.cvalue = 50.0
        assert site.bat.requested_kw > 0
        gw = EdgeGateway(site.config(free_port(), failsafe={"silence_s": 30}), clock=clock)
        run = asyncio.create_task(gw.run())  # no broker at all: it keeps trying
        try:
            for _ in range(100):
                if site.bat.requested_kw == 0.0:
                    break
                await asyncio.sleep(0.05)
            assert site.bat.requested_kw == 0.0  # started from the safe mode
            assert not gw.connected
            # garbage on the cmd topic is counted and dropped
            for junk in (b"not json", b'{"v": 2, "commands": []}', b"[]", b'{"v":1}' * 1000):
                await gw._handle_cmd(junk)
            assert gw.stats.bad_messages == 4
            # a command valid for 30,000 years: the device's revert timer is capped, and
            # the silence watchdog still ends it
            now = clock.t
            gw.last_heard = now
            acks = await gw.handle_commands(_cmds(now, ("far", "site-bat", 1, 1.0, now + 1e12)))
            assert acks[0].status == "accepted"
            assert site.bat.model(124).InOutWRte_RvrtTms.value == 65_534
            clock.t = now + 31
            await gw.control_step()
            assert site.bat.requested_kw == 0.0
        finally:
            gw.stop()
            await asyncio.wait_for(run, 10)
            await site.server.stop()

    asyncio.run(main())


def test_a_restarted_gateway_keeps_sequence_numbers_and_schedules_not_commands(
    tmp_path: Path,
) -> None:
    site = Site()
    clock = Clock()
    state = tmp_path / "edge-state.json"

    cfg = site.config(free_port())
    cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"state_file": state})})

    async def main() -> None:
        await site.server.start()
        t0 = clock.t
        first = EdgeGateway(cfg, clock=clock)
        for d in first.drivers:
            await d.start()
        sched = ScheduleMessage(
            v=1,
            type="schedule",
            issued_at=t0,
            schedules=[
                Schedule(
                    id="s",
                    device="site-bat",
                    seq=7,
                    plan="p",
                    start=t0,
                    step_s=60.0,
                    p_kw=[-1.0, -2.0],
                    valid_until=t0 + 120,
                )
            ],
        )
        await first._handle_cmd(sched.model_dump_json().encode())
        cmd = _cmds(t0, ("c", "site-bat", 5, 3.0, t0 + 100))
        await first._handle_cmd(cmd.model_dump_json().encode())
        assert abs(site.bat.requested_kw - 3.0) < 0.01
        for d in first.drivers:
            await d.close()  # the gateway goes away; the battery is released
        assert state.exists()

        clock.t = t0 + 70  # restarted in the schedule's second slot
        second = EdgeGateway(cfg, clock=clock)
        for d in second.drivers:
            await d.start()
        try:
            again = await second.handle_commands(cmd)  # a redelivered command
            assert again[0].reason == "replayed"
            second.last_heard = clock.t
            await second.control_step()  # the schedule goes on; the command does not
            assert abs(site.bat.requested_kw + 2.0) < 0.01
            acks = await second.handle_schedules(sched)
            assert acks[0].reason == "replayed"
        finally:
            for d in second.drivers:
                await d.close()
            await site.server.stop()

    asyncio.run(main())
    state.write_text("{not json")  # a damaged file: a fresh start, which is safe
    assert EdgeGateway(cfg, clock=clock).table.last_seq == {}


def test_a_pv_slot_with_an_export_cap_limits_the_inverter() -> None:
    site = Site()
    clock = Clock()

    async def main() -> None:
        async with gateway_on(site, site.config(free_port()), clock) as gw:
            t0 = clock.t
            gw.last_heard = t0
            acks = await gw.handle_schedules(
                ScheduleMessage(
                    v=1,
                    type="schedule",
                    issued_at=t0,
                    schedules=[
                        Schedule(
                            id="pv",
                            device="site-pv",
                            seq=1,
                            plan="p",
                            start=t0,
                            step_s=60.0,
                            p_kw=[None, None],
                            p_max_kw=[1.5, None],
                            valid_until=t0 + 120,
                        )
                    ],
                )
            )
            assert acks[0].status == "accepted"
            assert abs(site.pv.p_kw - 1.5) < 0.01  # capped at 1.5 kW in the first slot
            clock.t = t0 + 61
            await gw.control_step()
            assert site.pv.limit_pct == 100.0  # no cap in the second: its own control

    asyncio.run(main())
