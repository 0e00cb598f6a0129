"""Schedule messages of protocol v1: round trips, splitting, strict decoding, gateway rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gridflock.domain.messages import CommandBatch
from gridflock.domain.schedules import MAX_SCHEDULE_STEPS, ScheduleBatch
from gridflock.gateways.mqtt import (
    CommandMessage,
    ProtocolError,
    Schedule,
    ScheduleMessage,
    decode_cmd,
    decode_schedules,
    encode_commands,
    encode_schedules,
    screen_commands,
    screen_schedules,
)
from gridflock.gateways.mqtt.protocol import (
    MAX_GATEWAY_MESSAGE_BYTES,
    MAX_SCHEDULE_SLOTS_PER_MESSAGE,
    SCHEMA_MODELS,
)

NOW = 1_784_116_800.0


def _batch(n: int, steps: int = 96, seed: int = 0) -> ScheduleBatch:
    rng = np.random.default_rng(seed)
    p = rng.uniform(-7, 7, (n, steps)).round(3)
    p[rng.random((n, steps)) < 0.1] = np.nan
    return ScheduleBatch(
        np.array([f"day-1:{1000 + i}:dev-{i}" for i in range(n)], dtype=object),
        np.array([f"dev-{i}" for i in range(n)], dtype=object),
        np.arange(1000, 1000 + n, dtype=np.int64),
        p,
        NOW,
        900.0,
        NOW + steps * 900.0,
        NOW - 1.0,
        "day-1",
    )


def test_round_trip_one_message_per_gateway_every_slot_kept() -> None:
    b = _batch(7)
    gw = {f"dev-{i}": ("A" if i % 2 else "B") for i in range(7)}
    out = encode_schedules(b, gw)
    assert sorted(out) == ["A", "B"]
    assert all(len(v) == 1 for v in out.values())
    got: dict[str, Schedule] = {}
    for g, payloads in out.items():
        msg = decode_cmd(payloads[0])
        assert isinstance(msg, ScheduleMessage)
        assert msg.issued_at == b.issued_at
        for s in msg.schedules:
            assert gw[s.device] == g
            got[s.device] = s
    for i in range(7):
        s = got[f"dev-{i}"]
        assert (s.id, s.seq, s.plan) == (b.schedule_ids[i], b.seq[i], "day-1")
        assert (s.start, s.step_s, s.valid_until) == (NOW, 900.0, b.valid_until)
        back = np.array([math.nan if x is None else x for x in s.p_kw])
        np.testing.assert_array_equal(back, b.p_kw[i])  # NaN as null, values to 1 W


def test_a_large_gateway_gets_several_messages_each_under_the_size_limit() -> None:
    b = _batch(1_200, steps=MAX_SCHEDULE_STEPS, seed=1)
    out = encode_schedules(b, lambda d: "OEM")
    payloads = out["OEM"]
    per = MAX_SCHEDULE_SLOTS_PER_MESSAGE // MAX_SCHEDULE_STEPS
    assert len(payloads) == math.ceil(1_200 / per)
    assert max(len(p) for p in payloads) < MAX_GATEWAY_MESSAGE_BYTES
    ids = [s.id for p in payloads for s in decode_schedules(p)]
    assert ids == b.schedule_ids.tolist()  # nothing lost, nothing twice, in order


def test_schema_on_disk_is_the_model_and_commands_still_decode_as_commands() -> None:
    assert SCHEMA_MODELS["schedule.json"] is ScheduleMessage
    cmd = CommandBatch(
        np.array(["c1"], dtype=object),
        np.array(["dev-0"], dtype=object),
        np.array([2.0]),
        np.array([NOW + 30]),
        np.array([5]),
        NOW,
        "ev-1",
    )
    msg = decode_cmd(encode_commands(cmd, {"dev-0": "A"})["A"])
    assert isinstance(msg, CommandMessage)
    with pytest.raises(ProtocolError, match="not a schedule message"):
        decode_schedules(encode_commands(cmd, {"dev-0": "A"})["A"])


def _one(**change: object) -> bytes:
    s = {
        "id": "p:1:d",
        "device": "d",
        "seq": 1,
        "plan": "p",
        "start": NOW,
        "step_s": 900.0,
        "p_kw": [1.0, None],
        "valid_until": NOW + 1800.0,
    }
    s.update(change)
    return json.dumps({"v": 1, "type": "schedule", "issued_at": NOW, "schedules": [s]}).encode()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"valid_until": NOW + 2700.0}, "at most the end of the last slot"),
        ({"valid_until": NOW}, "must be after start"),
        ({"p_kw": []}, "at least 1"),
        ({"p_kw": [0.0] * (MAX_SCHEDULE_STEPS + 1)}, f"at most {MAX_SCHEDULE_STEPS}"),
        ({"p_kw": [2e5]}, "less than or equal to 100000"),
        ({"p_kw": ["1.0"]}, "p_kw.0"),
        ({"step_s": 0.1}, "step_s"),
        ({"seq": -1}, "seq"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_schedule_is_refused_whole_with_what_is_wrong(change: dict, says: str) -> None:
    with pytest.raises(ProtocolError, match="schedule does not match protocol v1") as e:
        decode_cmd(_one(**change))
    assert says in str(e.value)


def test_gateway_rules_refuse_replayed_expired_unknown_and_out_of_range_with_a_reason() -> None:
    def sched(seq: int, device: str = "d", until: float = NOW + 1800.0, p: float = 1.0):
        return Schedule(
            id=f"p:{seq}:{device}", device=device, seq=seq, plan="p", start=until - 1800.0,
            step_s=900.0, p_kw=[p, None], valid_until=until,
        )  # fmt: skip

    last: dict[str, int] = {}
    acks = screen_schedules(
        [
            sched(5),
            sched(5),  # the same again: a replay
            sched(4),  # older
            sched(6, until=NOW),  # over when it arrived
            sched(7, device="x"),  # not behind this gateway
            sched(8, p=9.0),  # beyond the device
            sched(9),
        ],
        last,
        NOW,
        known_devices=lambda d: d == "d",
        limits=lambda d: (-5.0, 5.0),
    )
    assert [(a.status, a.reason) for a in acks] == [
        ("accepted", None),
        ("rejected", "replayed"),
        ("rejected", "replayed"),
        ("rejected", "expired"),
        ("rejected", "unknown_device"),
        ("rejected", "out_of_range"),
        ("accepted", None),
    ]
    assert last == {"d": 9}
    # schedules' seq is apart from commands': a command with a lower seq is still new
    cmd_last: dict[str, int] = {}
    cmd = decode_cmd(
        encode_commands(
            CommandBatch(
                np.array(["c"], dtype=object), np.array(["d"], dtype=object), np.array([1.0]),
                np.array([NOW + 30]), np.array([1]), NOW, "ev",
            ),
            {"d": "A"},
        )["A"]
    )  # fmt: skip
    assert isinstance(cmd, CommandMessage)
    assert screen_commands(cmd.commands, cmd_last, NOW)[0].status == "accepted"


def test_limits_travel_with_the_schedule_and_crossed_limits_are_refused() -> None:
    b = _batch(3, steps=4)
    lo = np.full((3, 4), np.nan)
    lo[:, 1] = -2.5  # an import cap in slot 1
    hi = np.full((3, 4), np.nan)
    hi[:, 2] = 0.75  # an export cap in slot 2
    limited = ScheduleBatch(
        b.schedule_ids, b.device_ids, b.seq, b.p_kw, b.start, b.step_s, b.valid_until,
        b.issued_at, b.plan_id, lo, hi,
    )  # fmt: skip
    (payload,) = encode_schedules(limited, lambda d: "A")["A"]
    for s in decode_schedules(payload):
        assert s.p_min_kw == [None, -2.5, None, None]
        assert s.p_max_kw == [None, None, 0.75, None]
    plain = decode_schedules(encode_schedules(b, lambda d: "A")["A"][0])
    assert all(s.p_min_kw is None and s.p_max_kw is None for s in plain)
    with pytest.raises(ProtocolError, match=r"p_min_kw 1\.0 is above p_max_kw 0\.5"):
        decode_cmd(_one(p_min_kw=[1.0, None], p_max_kw=[0.5, None]))
    with pytest.raises(ProtocolError, match="p_max_kw has 1 slots, p_kw 2"):
        decode_cmd(_one(p_max_kw=[0.5]))
