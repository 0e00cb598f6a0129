"""The buffer's bound and order, and which setpoint a device follows, checked against oracles."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.edge.buffer import ReadingBuffer
from gridflock.edge.control import ControlTable
from gridflock.edge.driver import DeviceReading
from gridflock.gateways.mqtt.protocol import Command, Schedule

DEVICES = ["a", "b", "c"]


@settings(max_examples=60, deadline=None)
@given(
    cap=st.integers(1, 8),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.lists(st.sampled_from(DEVICES), max_size=6)),
            st.tuples(st.just("send"), st.integers(1, 10)),
        ),
        max_size=30,
    ),
)
def test_buffer_keeps_the_newest_within_its_bound_and_sends_oldest_first(
    cap: int, steps: list[tuple[str, object]]
) -> None:
    buf = ReadingBuffer(cap)
    t = 0.0
    kept: dict[str, list[float]] = {d: [] for d in DEVICES}  # the oracle: a list per device
    dropped = 0
    for op, arg in steps:
        if op == "add":
            batch = []
            for d in arg:  # type: ignore[union-attr]
                t += 1.0
                batch.append(DeviceReading(d, t, 1.0))
                kept[d].append(t)
                if len(kept[d]) > cap:
                    kept[d].pop(0)
                    dropped += 1
            buf.add(batch)
        else:
            n = int(arg)  # type: ignore[call-overload]
            head = buf.peek(n)
            want = sorted(x for v in kept.values() for x in v)[:n]
            assert [r.ts for r in head] == want
            buf.add([DeviceReading("a", t + 0.5, 2.0)])  # arrives while the batch is in flight
            t += 1.0
            kept["a"].append(t - 0.5)
            if len(kept["a"]) > cap:
                kept["a"].pop(0)
                dropped += 1
            buf.remove(head)
            for r in head:
                if r.ts in kept[r.device_id]:
                    kept[r.device_id].remove(r.ts)
        assert len(buf) == sum(len(v) for v in kept.values()) <= cap * len(DEVICES)
        assert buf.dropped == dropped


def _cmd(device: str, seq: int, p: float | None, until: float) -> Command:
    return Command(id=f"c{seq}", device=device, seq=seq, p_setpoint_kw=p, valid_until=until)


def _sched(device: str, seq: int, start: float, p: list[float | None], until: float) -> Schedule:
    return Schedule(
        id=f"s{seq}",
        device=device,
        seq=seq,
        plan="p",
        start=start,
        step_s=10.0,
        p_kw=p,
        valid_until=until,
    )


@settings(max_examples=80, deadline=None)
@given(
    cmd=st.one_of(st.none(), st.tuples(st.floats(-5, 5), st.floats(0, 100))),
    slots=st.lists(st.one_of(st.none(), st.floats(-5, 5)), min_size=1, max_size=6),
    start=st.floats(0, 50),
    cut=st.floats(0.1, 1.0),
    now=st.floats(0, 120),
)
def test_target_is_command_then_schedule_slot_then_safe_mode(
    cmd: tuple[float, float] | None,
    slots: list[float | None],
    start: float,
    cut: float,
    now: float,
) -> None:
    table = ControlTable(["x"])
    until_s = start + len(slots) * 10.0 * cut
    until_s = max(until_s, start + 1e-3)
    table.set_schedule(_sched("x", 1, start, slots, until_s))
    if cmd is not None:
        table.hold("x", "c", cmd[0], cmd[1])
    p, _ = table.target("x", now)
    # the oracle, written out from docs/protocol.md "What a device does at any moment"
    if cmd is not None and now < cmd[1]:
        want: float | None = cmd[0]
    elif start <= now < until_s and slots[int((now - start) // 10.0)] is not None:
        want = slots[int((now - start) // 10.0)]
    else:
        want = None
    assert p == want


def test_screening_rejects_unknown_expired_and_replayed() -> None:
    table = ControlTable(["x"])
    acks = table.screen_commands(
        [
            _cmd("x", 5, 1.0, 100.0),
            _cmd("y", 1, 1.0, 100.0),
            _cmd("x", 6, 1.0, 9.0),
            _cmd("x", 5, 2.0, 100.0),
            _cmd("x", 7, None, 100.0),
        ],
        now=10.0,
    )
    assert [(a.status, a.reason) for a in acks] == [
        ("accepted", None),
        ("rejected", "unknown_device"),
        ("rejected", "expired"),
        ("rejected", "replayed"),
        ("accepted", None),
    ]
    # schedules keep their own sequence numbers
    s = table.screen_schedules([_sched("x", 1, 0.0, [1.0, 2.0], 15.0)], now=10.0)
    assert s[0].status == "accepted"
    table.hold("x", "c", 1.0, 50.0)
    assert table.drop_commands() == ["x"]
    assert table.target("x", 20.0) == (None, math.inf)
