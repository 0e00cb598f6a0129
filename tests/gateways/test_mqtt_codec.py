"""The MQTT v1 codec: round trips, every rejection, whole-message errors, speed, schemas."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gridflock.gateways.mqtt as mqtt
from gridflock.domain import CommandBatch, UnknownDeviceError
from gridflock.gateways.mqtt import codec, protocol
from gridflock.gateways.mqtt.codec import (
    REJECT_REASONS,
    CommandAcks,
    ProtocolError,
    Rejection,
    TelemetryAck,
    decode_ack,
    decode_commands,
    decode_telemetry,
    decode_telemetry_many,
    encode_command_ack,
    encode_commands,
    encode_telemetry,
    encode_telemetry_ack,
    screen_commands,
)

NOW = 1_750_000_000.0
TOPIC = "gf/v1/gw-1/telemetry"
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def payload(readings, **top):
    return json.dumps({"v": 1, "gateway": "gw-1", "readings": readings, **top}).encode()


def ok(device="d1", ts=NOW, p_kw=1.5, **more):
    return {"device": device, "ts": ts, "p_kw": p_kw, **more}


# --- topics ----------------------------------------------------------------------------


def test_topics_and_gateway_of():
    assert mqtt.telemetry_topic("G") == "gf/v1/G/telemetry"
    assert mqtt.cmd_topic("G") == "gf/v1/G/cmd"
    assert mqtt.ack_topic("G") == "gf/v1/G/ack"
    assert mqtt.status_topic("G") == "gf/v1/G/status"
    assert mqtt.activate_topic("north") == "gf/v1/groups/north/activate"
    assert mqtt.shared_telemetry_subscription() == "$share/gridflock/gf/v1/+/telemetry"
    for t in ("telemetry", "cmd", "ack", "status"):
        assert mqtt.gateway_of(f"gf/v1/gw.A_1-x/{t}") == "gw.A_1-x"
    for bad in (
        "gf/v1/G/other",
        "gf/v2/G/telemetry",
        "gf/v1/groups/x/activate",
        "gf/v1/a/b/telemetry",
        "gf/v1//telemetry",
        "gf/v1/" + "x" * 65 + "/telemetry",
        "gf/v1/G/telemetry/",
    ):
        assert mqtt.gateway_of(bad) is None, bad
    assert mqtt.group_of("gf/v1/groups/north/activate") == "north"
    assert mqtt.group_of("gf/v1/G/telemetry") is None


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x" * 65, "é", "a b", "a\n"])
def test_topic_helpers_refuse_bad_ids(bad):
    with pytest.raises(ValueError, match="invalid gateway id"):
        mqtt.telemetry_topic(bad)


def test_public_names():
    assert set(mqtt.__all__) == {n for n in dir(mqtt) if not n.startswith("_")} - {
        "acl",
        "codec",
        "link",  # the service-side connection, a submodule imported on demand
        "protocol",
    }


# --- telemetry round trip ------------------------------------------------------------------


def test_telemetry_round_trip_keeps_values_and_omits_nan():
    n = 6
    ids = [f"d{i}" for i in range(n)]
    ts = NOW - np.arange(n, dtype=float)
    p = np.array([-1.25, 0.0, 3.5, -1e-9, 99_999.0, 2.0])
    soc = np.array([0.5, np.nan, 1.0, 0.0, np.nan, 0.25])
    base = np.array([np.nan, -2.0, np.nan, 1.0, 0.0, np.nan])
    extras = {
        "t_in_c": np.array([21.5, np.nan, np.nan, np.nan, np.nan, 19.0]),
        "departure_ts": np.array([np.nan, -np.inf, NOW + 3600, np.nan, np.nan, np.nan]),
    }
    raw = encode_telemetry("gw-1", ids, ts, p, soc, base, extras)
    msg = json.loads(raw)
    assert "soc" not in msg["readings"][1]
    assert "extras" not in msg["readings"][1]  # -inf left out too
    assert "extras" not in msg["readings"][3]
    protocol.Telemetry.model_validate_json(raw)  # what we send matches the schema
    d = decode_telemetry(TOPIC, raw, NOW)
    assert d.gateway == "gw-1"
    assert d.rejected == []
    assert d.received == n
    b = d.batch
    assert b.rows is None
    assert b.device_ids.tolist() == ids
    np.testing.assert_array_equal(b.ts, ts)
    np.testing.assert_array_equal(b.p_kw, p)
    np.testing.assert_array_equal(b.soc, soc)
    np.testing.assert_array_equal(b.p_baseline_kw, base)
    np.testing.assert_array_equal(b.extras["t_in_c"], extras["t_in_c"])
    np.testing.assert_array_equal(
        b.extras["departure_ts"], [np.nan, np.nan, NOW + 3600, np.nan, np.nan, np.nan]
    )


def test_unicode_device_ids_and_str_payload():
    raw = encode_telemetry("gw-1", ['wärme"pumpe\\1'], [NOW], [1.0])
    d = decode_telemetry(TOPIC, raw.decode(), NOW)
    assert d.batch.device_ids.tolist() == ['wärme"pumpe\\1']


def test_iso_timestamps_with_offset_accepted():
    raw = payload(
        [
            ok("a", ts="2025-06-15T15:06:40Z"),
            ok("b", ts="2025-06-15T17:06:40+02:00"),
            ok("c", ts=1750000000),
        ]
    )
    d = decode_telemetry(TOPIC, raw, NOW)
    assert d.rejected == []
    np.testing.assert_array_equal(d.batch.ts, [NOW, NOW, NOW])
    protocol.Telemetry.model_validate_json(raw)


def test_empty_readings():
    d = decode_telemetry(TOPIC, payload([]), NOW)
    assert len(d.batch) == 0
    assert d.rejected == []


# --- per-reading rejections ------------------------------------------------------------------

CASES = {
    "not_an_object": [1.5, "x", None, [ok()]],
    "unknown_field": [ok(temp=3), ok(P_KW=1)],
    "bad_device": [
        {"ts": NOW, "p_kw": 1.0},
        ok(device=None),
        ok(device=7),
        ok(device=""),
        ok(device="x" * 257),
        ok(device=["a"]),
    ],
    "bad_ts": [
        ok(ts=None),
        {"device": "d", "p_kw": 1.0},
        ok(ts="yesterday"),
        ok(ts="2025-06-15T15:06:40"),  # no offset
        ok(ts=True),
        ok(ts=float("nan")),
        ok(ts=10**400),
    ],
    "ts_in_future": [ok(ts=NOW + 301), ok(ts="2099-01-01T00:00:00Z")],
    "ts_too_old": [ok(ts=NOW - 7 * 86400 - 1), ok(ts=0)],
    "bad_p_kw": [
        {"device": "d", "ts": NOW},
        ok(p_kw=None),
        ok(p_kw="1.5"),
        ok(p_kw=float("nan")),
        ok(p_kw=float("inf")),
        ok(p_kw=-float("inf")),
        ok(p_kw=True),
        ok(p_kw={"value": 1}),
    ],
    "p_out_of_range": [ok(p_kw=100_000.5), ok(p_kw=-1e9), ok(p_kw=10**30)],
    "bad_soc": [ok(soc="0.5"), ok(soc=float("nan")), ok(soc=False)],
    "soc_out_of_range": [ok(soc=1.01), ok(soc=-0.01), ok(soc=50)],
    "bad_p_baseline_kw": [ok(p_baseline_kw="1"), ok(p_baseline_kw=float("inf"))],
    "p_baseline_out_of_range": [ok(p_baseline_kw=2e5)],
    "bad_extras": [ok(extras=[1]), ok(extras="t_in_c=3"), ok(extras=1.0)],
    "unknown_extra": [ok(extras={"t_in_c": 20.0, "humidity": 0.4})],
    "bad_extra": [
        ok(extras={"t_in_c": float("nan")}),
        ok(extras={"cop": "3"}),
        ok(extras={"draw_kw": True}),
        ok(extras={"e_need_kwh": float("inf")}),
    ],
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_rejection_keeps_the_valid_rest(reason):
    bad = CASES[reason]
    readings = [ok("good-0", soc=0.5, extras={"t_in_c": 21.0})]
    for i, r in enumerate(bad):
        readings += [r, ok(f"good-{i + 1}", p_baseline_kw=-1.0)]
    d = decode_telemetry(TOPIC, payload(readings), NOW)
    assert [r.reason for r in d.rejected] == [reason] * len(bad)
    assert [r.index for r in d.rejected] == list(range(1, 2 * len(bad), 2))
    for r in d.rejected:
        assert isinstance(r, Rejection)
        assert r.message.startswith(REJECT_REASONS[reason][:20])
        src = readings[r.index]
        want = src.get("device") if isinstance(src, dict) else None
        assert r.device == (want if isinstance(want, str) else None)
    assert d.batch.device_ids.tolist() == [f"good-{i}" for i in range(len(bad) + 1)]
    assert np.isfinite(d.batch.p_kw).all()
    assert d.received == len(readings)
    assert d.batch.extras["t_in_c"][0] == 21.0 if "t_in_c" in d.batch.extras else True


def test_every_reason_but_the_services_own_is_exercised():
    assert set(CASES) | {"duplicate", "unknown_device", "stale"} == set(REJECT_REASONS)


def test_duplicates_keep_the_first():
    readings = [
        ok("a", p_kw=1.0),
        ok("a", ts=NOW - 1),
        ok("a", p_kw=2.0),
        ok("b"),
        ok("a", ts="2025-06-15T15:06:40Z"),
    ]
    d = decode_telemetry(TOPIC, payload(readings), NOW)
    assert [(r.index, r.reason) for r in d.rejected] == [(2, "duplicate"), (4, "duplicate")]
    assert "(reading 0)" in d.rejected[0].message
    assert d.batch.p_kw.tolist() == [1.0, 1.5, 1.5]


def test_invalid_first_reading_does_not_make_a_later_one_a_duplicate():
    d = decode_telemetry(TOPIC, payload([ok("a", p_kw="x"), ok("a")]), NOW)
    assert [r.reason for r in d.rejected] == ["bad_p_kw"]
    assert len(d.batch) == 1


def test_first_reason_wins_and_messages_say_what():
    d = decode_telemetry(TOPIC, payload([ok(device=3, p_kw="x"), ok(ts=NOW + 4000)]), NOW)
    assert [r.reason for r in d.rejected] == ["bad_device", "ts_in_future"]
    assert "device=3" in d.rejected[0].message
    assert "4000 s ahead" in d.rejected[1].message
    assert "NTP" in d.rejected[1].message


def test_tolerances_are_parameters():
    raw = payload([ok(ts=NOW + 10), ok("b", ts=NOW - 100)])
    d = decode_telemetry(TOPIC, raw, NOW, max_future_s=5, max_past_s=50)
    assert [r.reason for r in d.rejected] == ["ts_in_future", "ts_too_old"]
    assert len(decode_telemetry(TOPIC, raw, NOW).rejected) == 0


# --- whole-message errors -------------------------------------------------------------------

WHOLE = [
    (TOPIC, b"not json", "not valid UTF-8 JSON"),
    (TOPIC, b"\xff\xfe\x00", "not valid UTF-8 JSON"),
    (TOPIC, b"[1, 2]", "must be a JSON object, got an array"),
    (TOPIC, b'"text"', "must be a JSON object, got a string"),
    (TOPIC, b'{"gateway": "gw-1", "readings": []}', 'no "v" field.*supports "v" = 1'),
    (TOPIC, b'{"v": 2, "gateway": "gw-1", "readings": []}', '"v": 2.*supports "v" = 1'),
    (TOPIC, b'{"v": "1", "gateway": "gw-1", "readings": []}', "unsupported protocol version"),
    (TOPIC, b'{"v": true, "gateway": "gw-1", "readings": []}', "unsupported protocol version"),
    (TOPIC, b'{"v": 1, "gateway": "gw-2", "readings": []}', "topic says 'gw-1'"),
    (TOPIC, b'{"v": 1, "readings": []}', '"gateway" is None'),
    (TOPIC, b'{"v": 1, "gateway": "gw-1", "readings": {}}', '"readings" must be an array'),
    (TOPIC, b'{"v": 1, "gateway": "gw-1"}', '"readings" must be an array'),
    (TOPIC, b'{"v": 1, "gateway": "gw-1", "readings": [], "x": 1}', "unknown field"),
    ("gf/v1/gw-1/cmd", payload([]), "not a telemetry topic"),
    ("somewhere/else", payload([]), "not a telemetry topic"),
]


@pytest.mark.parametrize(("topic", "raw", "match"), WHOLE)
def test_whole_message_errors(topic, raw, match):
    with pytest.raises(ProtocolError, match=match):
        decode_telemetry(topic, raw, NOW)


def test_too_many_readings_and_too_large():
    with pytest.raises(ProtocolError, match=r"more than the 10000 allowed.*split"):
        decode_telemetry(TOPIC, payload([ok()] * 10_001), NOW)
    with pytest.raises(ProtocolError, match="bytes, more than"):
        decode_telemetry(TOPIC, b" " * (protocol.MAX_PAYLOAD_BYTES + 1), NOW)


# --- large batch and speed ----------------------------------------------------------------


def _fleet_payload(n, gw="gw-1", seed=0):
    rng = np.random.default_rng(seed)
    soc = np.where(rng.random(n) < 0.5, rng.random(n), np.nan)
    t_in = np.where(rng.random(n) < 0.3, 20 + rng.random(n), np.nan)
    return encode_telemetry(
        gw,
        [f"site-{i:06d}-bat" for i in range(n)],
        np.full(n, NOW),
        rng.normal(0, 3, n),
        soc,
        rng.normal(0, 3, n),
        {"t_in_c": t_in},
    )


def test_large_batch_of_ten_thousand():
    raw = _fleet_payload(10_000)
    d = decode_telemetry(TOPIC, raw, NOW)
    assert len(d.batch) == 10_000
    assert d.rejected == []


def test_decode_speed_batches_of_100():
    raw = _fleet_payload(100)
    decode_telemetry(TOPIC, raw, NOW)
    rounds, best = 200, math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            decode_telemetry(TOPIC, raw, NOW)
        best = min(best, time.perf_counter() - t0)
    assert best > 0  # the rate is measured by benchmarks/bench_codec.py, not asserted here


# --- many messages in one pass -------------------------------------------------------------


def _outcome(topic, raw, now):
    """decode_telemetry's answer in comparable form: values, or the error text."""
    try:
        d = decode_telemetry(topic, raw, now)
    except ProtocolError as e:
        return ("error", str(e))
    return _comparable(d)


def _comparable(d):
    b = d.batch
    return (
        d.gateway,
        d.received,
        d.rejected,
        b.device_ids.tolist(),
        [b.ts.tolist(), b.p_kw.tolist(), b.soc.tolist(), b.p_baseline_kw.tolist()],
        {k: v.tolist() for k, v in b.extras.items()},
    )


def _same(a, b):
    """Equal, NaN equal to NaN (repr of floats compares NaN as text)."""
    return repr(a) == repr(b)


def _check_many(items, nows):
    many = decode_telemetry_many(items, nows)
    assert len(many) == len(items)
    rows = []
    for j, ((topic, raw), now) in enumerate(zip(items, nows, strict=True)):
        want = _outcome(topic, raw, now)
        if want[0] == "error":
            assert many.gateways[j] is None
            assert str(many.errors[j]) == want[1]
            with pytest.raises(ProtocolError, match=re.escape(want[1])):
                many.message(j)
            assert many.received[j] == 0
            assert many.rejected[j] == []
            continue
        got = many.message(j)
        assert _same(_comparable(got), want)
        assert many.errors[j] is None
        assert many.rejected[j] == got.rejected
        rows += [(j, i) for i in range(got.received) if i not in {r.index for r in got.rejected}]
    # the combined batch: every valid reading, message after message, extras as a union
    assert list(zip(many.row_message.tolist(), many.row_index.tolist(), strict=True)) == rows
    b = many.batch
    assert len(b) == len(rows) == len(b.ts) == len(b.p_kw) == len(b.soc)
    for j in range(len(items)):
        if many.errors[j] is None:
            one = many.message(j).batch
            sel = many.row_message == j
            assert b.device_ids[sel].tolist() == one.device_ids.tolist()
            assert _same(b.p_kw[sel].tolist(), one.p_kw.tolist())
            for k, v in b.extras.items():
                want_col = one.extras.get(k, np.full(len(one), np.nan))
                assert _same(v[sel].tolist(), want_col.tolist())
    return many


def _corpus():
    """Messages of every kind: valid, refused readings, duplicates, refused whole."""
    msgs = [
        (TOPIC, payload([ok("a")])),
        (TOPIC, payload([ok("a", p_kw=float("nan"))])),
        (TOPIC, payload([ok("a"), ok("a"), ok("b"), ok("a", p_kw=2.0)])),  # duplicates
        (TOPIC, payload([ok("a")])),  # same reading as message 0: not a duplicate here
        (TOPIC, payload([ok("a", extras={"t_in_c": 20.0, "humidity": 0.4}), ok("c")])),
        (TOPIC, payload([ok("a", extras={"t_in_c": 20.0}), ok("c", soc=0.5)])),
        (TOPIC, payload([ok("d", extras={"cop": float("nan")})])),
        (TOPIC, payload([ok("e", ts=NOW + 4000), ok("f", ts="2025-06-15T15:06:40Z")])),
        (TOPIC, payload([])),
        (TOPIC, payload([1.5, ok(device=3, p_kw="x"), ok("g", p_baseline_kw=2e5)])),
        (TOPIC, b'{"v": 2, "gateway": "gw-1", "readings": []}'),
        (TOPIC, b"not json"),
        ("gf/v1/gw-1/cmd", payload([ok()])),
        ("gf/v1/gw-2/telemetry", payload([ok()])),  # names gw-1
        ("gf/v1/gw-2/telemetry", payload([ok("h")], gateway="gw-2")),
        (TOPIC, payload([ok("i", extras=[1]), ok("j", soc=None, extras=None)])),
    ]
    for reason, bad in CASES.items():
        msgs.append((TOPIC, payload([ok(f"{reason}-ok"), *bad])))
    return msgs


def test_decode_many_equals_decode_one_by_one():
    items = _corpus()
    many = _check_many(items, [NOW] * len(items))
    assert sum(e is not None for e in many.errors) == 4
    rows = many.row_message.tolist()
    assert rows.count(2) == 2
    assert rows.count(3) == 1
    # one clock for all messages, or one per message (when each arrived)
    nows = [NOW + 10 * j for j in range(len(items))]
    _check_many(items, nows)
    same = decode_telemetry_many(items, NOW)
    assert same.rejected == many.rejected
    assert _same(same.batch.p_kw.tolist(), many.batch.p_kw.tolist())


def test_decode_many_of_nothing_and_of_only_errors():
    many = decode_telemetry_many([], NOW)
    assert len(many) == 0
    assert len(many.batch) == 0
    many = decode_telemetry_many([(TOPIC, b"[]"), (TOPIC, payload([]))], NOW)
    assert len(many.batch) == 0
    assert many.received == [0, 0]
    assert many.errors[0] is not None
    assert many.message(1).received == 0


_reading_values = st.sampled_from(
    [NOW, NOW - 1, NOW + 4000, 1.5, -2.0, 0.5, 2e5, float("nan"), None, "x", True, 10**400]
)
_readings = st.one_of(
    st.fixed_dictionaries(
        {"device": st.sampled_from(["a", "b", "", 7]), "ts": st.sampled_from([NOW, NOW - 1])},
        optional={
            "p_kw": _reading_values,
            "soc": _reading_values,
            "p_baseline_kw": _reading_values,
            "extras": st.one_of(
                st.none(),
                st.just([1]),
                st.dictionaries(
                    st.sampled_from(["t_in_c", "cop", "humidity"]), _reading_values, max_size=2
                ),
            ),
            "temp": st.just(1),
        },
    ),
    st.sampled_from([1.5, "x", None]),
)
_messages = st.one_of(
    st.lists(_readings, max_size=6).map(lambda rs: (TOPIC, payload(rs))),
    st.sampled_from([(TOPIC, b"not json"), (TOPIC, b'{"v": 9}'), ("x/y", payload([]))]),
)


@given(st.lists(_messages, max_size=12), st.lists(st.sampled_from([NOW, NOW + 3700])))
@settings(max_examples=150, deadline=None)
def test_decode_many_equals_decode_one_by_one_hypothesis(items, nows):
    nows = (nows + [NOW] * len(items))[: len(items)]
    _check_many(items, nows)


def test_decode_many_speed_single_readings():
    items = [
        (f"gf/v1/gw-{i}/telemetry", encode_telemetry(f"gw-{i}", [f"d-{i}"], [NOW], [1.0]))
        for i in range(5000)
    ]
    decode_telemetry_many(items, NOW)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        many = decode_telemetry_many(items, NOW)
        best = min(best, time.perf_counter() - t0)
    assert len(many.batch) == 5000
    assert best > 0  # the rate is measured by benchmarks/bench_codec.py, not asserted here


# --- commands -------------------------------------------------------------------------------


def _commands(n, n_gw, event="ev-1"):
    ids = np.array([f"dev-{i}" for i in range(n)], dtype=object)
    p = np.linspace(-5, 5, n)
    p[::7] = np.nan
    batch = CommandBatch(
        np.array([f"c-{i}" for i in range(n)], dtype=object),
        ids,
        p,
        np.full(n, NOW + 300),
        np.arange(n, dtype=np.int64) + 10,
        NOW,
        event,
    )
    gw = {f"dev-{i}": f"gw-{i % n_gw}" for i in range(n)}
    return batch, gw


def test_encode_commands_groups_by_gateway_and_round_trips():
    batch, gw = _commands(20, 3)
    out = encode_commands(batch, gw)
    assert sorted(out) == ["gw-0", "gw-1", "gw-2"]
    seen = {}
    for g, raw in out.items():
        msg = protocol.CommandMessage.model_validate_json(raw)
        assert msg.issued_at == NOW
        for c in decode_commands(raw):
            assert gw[c.device] == g
            seen[c.device] = c
    assert len(seen) == 20
    c0, c1 = seen["dev-0"], seen["dev-1"]
    assert c0.p_setpoint_kw is None  # NaN → release
    assert c1.p_setpoint_kw == pytest.approx(-5 + 10 / 19)
    assert (c1.id, c1.seq, c1.valid_until, c1.event) == ("c-1", 11, NOW + 300, "ev-1")
    # order within a gateway is kept
    assert [c.device for c in decode_commands(out["gw-0"])] == [f"dev-{i}" for i in range(0, 20, 3)]
    by_fn = encode_commands(batch, lambda d: gw[d])
    assert by_fn == out


def test_encode_commands_without_event_and_errors():
    batch, gw = _commands(3, 1, event=None)
    (raw,) = encode_commands(batch, gw).values()
    assert all(c.event is None for c in decode_commands(raw))
    with pytest.raises(UnknownDeviceError, match="dev-2"):
        encode_commands(batch, {"dev-0": "g", "dev-1": "g"})
    with pytest.raises(ValueError, match="invalid gateway id"):
        encode_commands(batch, dict.fromkeys(gw, "bad/id"))
    empty, _ = _commands(0, 1)
    assert encode_commands(empty, {}) == {}


def test_encode_commands_speed_100k_over_25k_gateways():
    batch, gw = _commands(100_000, 25_000)
    t0 = time.perf_counter()
    out = encode_commands(batch, gw)
    dt = time.perf_counter() - t0
    assert dt > 0  # timed by benchmarks/bench_codec.py
    assert len(out) == 25_000
    assert sum(len(decode_commands(out[g])) for g in ("gw-0", "gw-24999")) == 8


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"v":1,"issued_at":1,"commands":[{"id":"a"}]}', "commands.0.device: Field required"),
        (b'{"v":1,"issued_at":"now","commands":[]}', "issued_at"),
        (b'{"v":3,"issued_at":1,"commands":[]}', "unsupported protocol version"),
        (b"[]", "JSON object"),
    ],
)
def test_decode_commands_errors(raw, match):
    with pytest.raises(ProtocolError, match=match):
        decode_commands(raw)


def test_screen_commands_reference_rules():
    cmd = protocol.Command
    cs = [
        cmd(id="1", device="a", seq=5, p_setpoint_kw=1.0, valid_until=NOW + 10),
        cmd(id="2", device="a", seq=5, p_setpoint_kw=2.0, valid_until=NOW + 10),  # replay
        cmd(id="3", device="b", seq=1, p_setpoint_kw=None, valid_until=NOW - 1),  # expired
        cmd(id="4", device="zz", seq=1, p_setpoint_kw=None, valid_until=NOW + 1),
        cmd(id="5", device="a", seq=6, p_setpoint_kw=None, valid_until=NOW + 10),
    ]
    last: dict[str, int] = {"b": 0}
    acks = screen_commands(cs, last, NOW, known_devices=lambda d: d in {"a", "b"})
    assert [(a.id, a.status, a.reason) for a in acks] == [
        ("1", "accepted", None),
        ("2", "rejected", "replayed"),
        ("3", "rejected", "expired"),
        ("4", "rejected", "unknown_device"),
        ("5", "accepted", None),
    ]
    assert last == {"a": 6, "b": 0}
    raw = encode_command_ack(acks)
    back = decode_ack(raw)
    assert isinstance(back, CommandAcks)
    assert back.acks == acks


# --- acks, status, activate ---------------------------------------------------------------


def test_telemetry_ack_round_trip():
    d = decode_telemetry(TOPIC, payload([ok(), ok("b", p_kw="x")]), NOW)
    extra = Rejection(0, "d1", "unknown_device", "no such device behind gw-1")
    raw = encode_telemetry_ack(d.received, [*d.rejected, extra])
    back = decode_ack(raw)
    assert isinstance(back, TelemetryAck)
    assert (back.received, back.accepted) == (2, 0)
    assert [(r.index, r.device, r.reason) for r in back.rejected] == [
        (1, "b", "bad_p_kw"),
        (0, "d1", "unknown_device"),
    ]
    whole = decode_ack(encode_telemetry_ack(0, [], error="not JSON"))
    assert isinstance(whole, TelemetryAck)
    assert whole.error == "not JSON"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":1,"type":"other","acks":[]}',
        b'{"v":1,"acks":[]}',
        b'{"v":1,"type":"command_ack","acks":[{"id":"1","device":"a","seq":1,"status":"ok"}]}',
        b'{"v":1,"type":"command_ack","acks":[{"id":"1","device":"a","seq":1,'
        b'"status":"rejected","reason":"Bad Reason"}]}',
    ],
)
def test_decode_ack_errors(raw):
    with pytest.raises(ProtocolError, match="ack"):
        decode_ack(raw)


def test_status_and_activate():
    s = codec.decode_status(codec.encode_status("online", NOW))
    assert (s.status, s.ts) == ("online", NOW)
    assert json.loads(codec.encode_status("offline")) == {"v": 1, "status": "offline", "ts": None}
    a = codec.decode_activate(codec.encode_activate("plan-7", NOW + 60))
    assert (a.plan, a.ts) == ("plan-7", NOW + 60)
    with pytest.raises(ProtocolError, match="status"):
        codec.decode_status(b'{"v":1,"status":"sleeping"}')


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(protocol.SCHEMA_MODELS))
def test_published_schemas_match_models(name):
    on_disk = json.loads((SCHEMAS / name).read_text())
    assert on_disk == protocol.SCHEMA_MODELS[name].model_json_schema(), (
        f"docs/schemas/{name} is stale: run protocol.write_schemas('docs/schemas')"
    )


def test_codec_and_model_agree_on_a_valid_batch():
    raw = _fleet_payload(50)
    protocol.Telemetry.model_validate_json(raw)
    assert decode_telemetry(TOPIC, raw, NOW).rejected == []


# --- property: decode never raises anything but ProtocolError ---------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from(["d1", "2025-06-15T15:06:40Z", "gw-1", "t_in_c"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["device", "ts", "p_kw", "soc", "p_baseline_kw", "extras", "cop", "x"]),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)
readings_like = st.lists(
    st.fixed_dictionaries(
        {"device": st.sampled_from(["d1", "d2"]) | json_values},
        optional={
            "ts": st.sampled_from([NOW, NOW - 1]) | json_values,
            "p_kw": st.floats() | json_values,
            "soc": st.floats() | json_values,
            "p_baseline_kw": json_values,
            "extras": st.dictionaries(st.sampled_from(["t_in_c", "cop", "x"]), json_values)
            | json_values,
        },
    )
    | json_values,
    max_size=8,
)


def _check_decode(raw: bytes) -> None:
    try:
        d = decode_telemetry(TOPIC, raw, NOW)
    except ProtocolError:
        return
    b = d.batch
    assert len(b) + len(d.rejected) == d.received
    assert np.isfinite(b.p_kw).all()
    assert np.isfinite(b.ts).all()
    assert (np.abs(b.p_kw) <= protocol.MAX_P_KW).all()
    assert not ((b.soc < 0) | (b.soc > 1)).any()
    assert all(isinstance(x, str) and x for x in b.device_ids)
    assert len(set(zip(b.device_ids.tolist(), b.ts.tolist(), strict=True))) == len(b)
    assert all(r.reason in REJECT_REASONS for r in d.rejected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_arbitrary_bytes_only_raises_protocol_error(raw):
    _check_decode(raw)


@settings(max_examples=400, deadline=None)
@given(readings_like, st.sampled_from([1, 1, 1, 2, "1", None]))
def test_decode_arbitrary_json_only_raises_protocol_error(readings, v):
    _check_decode(json.dumps({"v": v, "gateway": "gw-1", "readings": readings}).encode())


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_decode_any_json_value_only_raises_protocol_error(value):
    _check_decode(json.dumps(value).encode())


def test_examples_in_protocol_md_are_valid():
    text = (SCHEMAS.parent / "protocol.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    models = [
        protocol.Telemetry,
        protocol.TelemetryAck,
        protocol.CommandMessage,
        protocol.ScheduleMessage,
        protocol.SettingsMessage,
        protocol.SettingsAcks,
        protocol.CommandAcks,
        protocol.Status,
        protocol.Activate,
    ]
    assert len(blocks) == len(models)
    for block, model in zip(blocks, models, strict=True):
        model.model_validate_json(block)
    d = decode_telemetry("gf/v1/gw-0042/telemetry", blocks[0].encode(), NOW)
    assert d.rejected == []
    for link in re.findall(r"\]\((schemas/[^)#]*)\)", text):
        assert (SCHEMAS.parent / link).exists(), link


def test_protocol_doc_states_every_limit():
    """docs/protocol.md states the limits the code enforces (a changed constant fails here)."""
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    assert protocol.ID_PATTERN.replace("\\", "") in doc
    assert f"**{protocol.MAX_CLOCK_SKEW_S:g} s** ahead" in doc
    assert f"{protocol.MAX_GATEWAY_MESSAGE_BYTES // 2**20} MiB" in doc
    assert f"{protocol.MAX_GATEWAY_MESSAGE_BYTES:,} bytes" in doc
    assert f"{protocol.MAX_PAYLOAD_BYTES // 2**20} MiB + 64 KiB" in doc
    assert f"first **{protocol.MAX_ACK_REJECTIONS}** refused" in doc
    assert f"**{protocol.MAX_ACK_BYTES // 1024} KiB**" in doc
    assert f"{protocol.MAX_READINGS:,}" in doc
    assert f"{protocol.MAX_READING_AGE_S / 86400:g} days" in doc
    for reason in codec.REJECT_REASONS:
        assert f"`{reason}`" in doc, reason


# --- bounded answers and rate limits (invariants) -------------------------------------------

_rejections = st.lists(
    st.builds(
        Rejection,
        index=st.integers(0, 10_000),
        device=st.one_of(st.none(), st.text(min_size=1, max_size=300)),
        reason=st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True),
        message=st.text(max_size=2_000),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(_rejections, st.one_of(st.none(), st.text(max_size=5_000)))
def test_a_telemetry_ack_is_bounded_whatever_it_answers(rejected, error):
    raw = encode_telemetry_ack(len(rejected) + 5, rejected, error=error)
    assert len(raw) <= protocol.MAX_ACK_BYTES
    assert raw.startswith(b'{"v":1,"type":"telemetry_ack"')  # how the link knows its own
    ack = protocol.TelemetryAck.model_validate_json(raw)
    assert ack.rejected_total == len(rejected)
    assert sum(ack.reasons.values()) == len(rejected)
    assert [r.index for r in ack.rejected] == [r.index for r in rejected[: len(ack.rejected)]]


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst_s=st.floats(1, 30),
    gaps=st.lists(st.floats(0, 5), min_size=1, max_size=200),
)
def test_rate_limit_spares_the_well_behaved_and_caps_the_rest(rate, burst_s, gaps):
    from gridflock.gateways.mqtt.link import BrokerAddress, GatewayLimits, MqttLink

    limits = GatewayLimits(messages_per_s=rate, readings_per_s=1e9, burst_s=burst_s)
    link = MqttLink(BrokerAddress("h", 1, False, None), {}, limits=limits)
    topic = "gf/v1/gw-1/telemetry"
    t, taken = 1e9, 0
    for gap in gaps:  # well-behaved: never faster than the rate
        t += max(gap, 1.0 / rate)
        assert link._take_message(topic, t)
    t0, taken = t + 1_000, 0  # a full bucket, then a flood at arbitrary gaps
    t = t0
    for gap in gaps:
        t += gap / 100
        taken += link._take_message(topic, t)
    assert taken <= max(rate * burst_s, 1) + rate * (t - t0) + 1e-6
    assert link.counts["rejected:rate_limited"] == len(gaps) - taken
