"""Fencing at the gateway: commands and schedules of a deposed leader's epoch are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gridflock.domain.messages import CommandBatch
from gridflock.domain.schedules import ScheduleBatch
from gridflock.edge.control import ControlTable
from gridflock.gateways.mqtt.codec import (
    EpochFence,
    decode_cmd,
    encode_commands,
    encode_schedules,
    screen_commands,
)
from gridflock.gateways.mqtt.protocol import CommandMessage, ScheduleMessage


def _batch(seq: int, epoch: int | None) -> CommandBatch:
    return CommandBatch(
        np.array([f"c{seq}", f"d{seq}"], dtype=object),
        np.array(["d1", "d2"], dtype=object),
        np.array([1.5, np.nan]),
        np.array([2e9, 2e9]),
        np.array([seq, seq], dtype=np.int64),
        1.9e9,
        "ev",
        epoch,
    )


@given(st.lists(st.one_of(st.none(), st.integers(0, 20)), max_size=40))
def test_the_fence_admits_an_epoch_only_if_none_higher_was_seen(epochs: list[int | None]) -> None:
    fence, seen = EpochFence(), -1
    for e in epochs:
        expected = e is None or e >= seen  # the oracle: the running maximum
        assert fence.admit(e) is expected
        if e is not None:
            seen = max(seen, e)


def test_commands_and_schedules_carry_the_epoch_on_the_wire() -> None:
    payload = encode_commands(_batch(5, 7), {"d1": "g1", "d2": "g1"})["g1"]
    msg = decode_cmd(payload)
    assert isinstance(msg, CommandMessage)
    assert msg.epoch == 7
    assert "epoch" not in json.loads(encode_commands(_batch(5, None), {"d1": "g", "d2": "g"})["g"])
    sched = ScheduleBatch(
        np.array(["s1"], dtype=object),
        np.array(["d1"], dtype=object),
        np.array([3], dtype=np.int64),
        np.array([[1.0, 2.0]]),
        1.9e9,
        900.0,
        1.9e9 + 1800,
        1.9e9,
        "plan-1",
        epoch=4,
    )
    (smsg,) = encode_schedules(sched, {"d1": "g1"})["g1"]
    decoded = decode_cmd(smsg)
    assert isinstance(decoded, ScheduleMessage)
    assert decoded.epoch == 4


def test_a_gateway_refuses_a_deposed_leaders_commands_with_the_reason() -> None:
    fence, last = EpochFence(), {}
    new = decode_cmd(encode_commands(_batch(10, 2), {"d1": "g", "d2": "g"})["g"])
    old = decode_cmd(encode_commands(_batch(20, 1), {"d1": "g", "d2": "g"})["g"])
    assert isinstance(new, CommandMessage)
    assert isinstance(old, CommandMessage)
    acks = screen_commands(new.commands, last, 1.9e9, deposed=not fence.admit(new.epoch))
    assert [a.status for a in acks] == ["accepted", "accepted"]
    # a higher seq does not help: the epoch is lower than the highest seen
    acks = screen_commands(old.commands, last, 1.9e9, deposed=not fence.admit(old.epoch))
    assert [(a.status, a.reason) for a in acks] == [("rejected", "deposed_leader")] * 2
    assert last == {"d1": 10, "d2": 10}  # nothing of the deposed leader was taken


def test_the_edge_gateway_keeps_the_highest_epoch_across_a_restart(tmp_path: Path) -> None:
    table = ControlTable(["d1", "d2"])
    msg = decode_cmd(encode_commands(_batch(10, 3), {"d1": "g", "d2": "g"})["g"])
    assert isinstance(msg, CommandMessage)
    assert all(a.status == "accepted" for a in table.screen_commands(msg.commands, 1.9e9, 3))
    table.save(tmp_path / "state.json")
    again = ControlTable(["d1", "d2"])
    again.load(tmp_path / "state.json", 1.9e9)
    old = decode_cmd(encode_commands(_batch(50, 2), {"d1": "g", "d2": "g"})["g"])
    assert isinstance(old, CommandMessage)
    acks = again.screen_commands(old.commands, 1.9e9, old.epoch)
    assert {a.reason for a in acks} == {"deposed_leader"}
