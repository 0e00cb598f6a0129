"""Protocol v1 ``settings``: built from every profile, round-tripped, decoded item by item."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.gateways.mqtt.codec import (
    ProtocolError,
    SettingsSeen,
    decode_ack,
    decode_cmd,
    decode_settings,
    encode_settings,
    encode_settings_ack,
    screen_settings,
    settings_item,
)
from gridflock.gateways.mqtt.protocol import (
    DeviceSettings,
    SettingsAck,
    SettingsAcks,
)
from gridflock.gridcode import device_settings, products, profile, profiles

T = 1_790_000_000.0


@pytest.mark.parametrize("code", sorted(profiles()))
def test_every_profile_makes_a_valid_item_with_its_numbers(code: str) -> None:
    prof = profile(code)
    prod = next((p for p in products().values() if p.f_nom_hz == prof.f_nom_hz), None)
    doc = device_settings(prof, "dev-1", "pv", 5.0, prod, 2.0, 1.0)
    item = settings_item(doc, "s-1", 7, T)
    assert (item.profile, item.f_nom_hz, item.device, item.seq) == (code, prof.f_nom_hz, "dev-1", 7)
    assert item.volt_var is not None
    assert item.volt_watt is not None
    assert tuple(item.volt_var.v_pu) == prof.volt_var.x
    assert tuple(item.volt_var.y_pu) == prof.volt_var.y
    assert item.volt_var.enabled == prof.volt_var.enabled
    assert tuple(item.volt_watt.y_pu) == prof.volt_watt.y
    fw = item.freq_watt
    assert fw is not None
    assert (fw.db_over_hz, fw.droop_over) == (prof.freq_watt.db_over_hz, prof.freq_watt.droop_over)
    assert (fw.db_under_hz, fw.droop_under) == (
        prof.freq_watt.db_under_hz,
        prof.freq_watt.droop_under,
    )
    assert fw.clause == prof.freq_watt.clause
    if prod is not None:
        assert item.ffr is not None
        assert (item.ffr.product, item.ffr.deadband_hz, item.ffr.up_kw) == (
            prod.code,
            prod.deadband_hz,
            2.0,
        )
    (payload,) = encode_settings([item], T)
    msg = decode_cmd(payload)
    assert not isinstance(msg, (bytes, str))
    assert msg.settings == [item]  # type: ignore[union-attr]


finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def items(draw: st.DrawFn) -> DeviceSettings:
    n = draw(st.integers(2, 10))
    v = sorted(draw(st.sets(st.floats(0.5, 1.5), min_size=n, max_size=n)))
    y = draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))
    under = draw(st.booleans())
    db = draw(st.floats(0, 1))
    obj = {
        "id": draw(st.text("abcdef0123456789-", min_size=1, max_size=128)),
        "device": draw(st.text(min_size=1, max_size=256)),
        "seq": draw(st.integers(0, 2**53)),
        "profile": draw(st.sampled_from(sorted(profiles()))),
        "f_nom_hz": draw(st.sampled_from([50, 60])),
        "volt_var": draw(
            st.none()
            | st.just({"enabled": True, "v_pu": v, "y_pu": y, "response_s": 5.0, "clause": "c"})
        ),
        "freq_watt": {
            "enabled": draw(st.booleans()),
            "db_over_hz": draw(st.floats(0, 2)),
            "droop_over": draw(st.floats(1e-4, 0.2)),
            "db_under_hz": draw(st.floats(0, 2)) if under else None,
            "droop_under": draw(st.floats(1e-4, 0.2)) if under else None,
            "response_s": draw(st.floats(0.01, 90)),
            "clause": draw(st.text(min_size=1, max_size=256)),
        },
        "ffr": draw(
            st.none()
            | st.just(
                {
                    "product": "GB-DC",
                    "deadband_hz": db,
                    "knee_hz": db + 0.1,
                    "knee_pu": 0.05,
                    "full_hz": db + 0.5,
                    "up_kw": draw(st.floats(0, 1e5)),
                    "down_kw": draw(st.floats(0, 1e5)),
                    "full_s": 1.0,
                    "clause": "dc",
                }
            )
        ),
        "effective_from": draw(finite),
        "valid_until": draw(st.none() | finite),
    }
    return DeviceSettings.model_validate(obj)


@given(st.lists(items(), max_size=5), finite)
@settings(max_examples=60, deadline=None)
def test_encode_decode_round_trip(xs: list[DeviceSettings], issued: float) -> None:
    (payload,) = encode_settings(xs, issued)
    back = decode_settings(payload)
    assert back.settings == xs
    assert back.refused == []
    assert back.issued_at == issued
    acks = [
        SettingsAck(id=x.id, device=x.device, seq=x.seq, status="accepted", adopted={"ffr": "held"})
        for x in xs
    ]
    got = decode_ack(encode_settings_ack(acks))
    assert isinstance(got, SettingsAcks)
    assert got.acks == acks


def _good(device: str = "pv-1", seq: int = 5, **kw: object) -> dict[str, object]:
    doc = device_settings(profile("GB-G99"), device, "pv", 5.0)
    return {**json.loads(settings_item(doc, f"id-{device}-{seq}", seq, T).model_dump_json()), **kw}


def test_one_bad_item_is_refused_with_its_reason_and_the_others_kept() -> None:
    fw = _good()["freq_watt"]
    assert isinstance(fw, dict)
    raw = {
        "v": 1,
        "type": "settings",
        "issued_at": T,
        "settings": [
            _good("a"),
            _good("b", freq_watt={**fw, "droop_over": 0.5}),  # beyond 20 %
            _good("c", f_nom_hz=55),
            _good("d", surprise=1),  # an unknown field
            {"id": "e", "device": "e"},  # no seq: nobody to answer
            "not an object",
            _good(
                "f",
                volt_var={
                    "enabled": True,
                    "v_pu": [1.0, 0.9],
                    "y_pu": [0, 0],
                    "response_s": 5,
                    "clause": "x",
                },
            ),
        ],
    }
    out = decode_settings(json.dumps(raw).encode())
    assert [s.device for s in out.settings] == ["a"]
    why = {a.device: (a.status, a.reason) for a in out.refused}
    assert why == {
        "b": ("rejected", "out_of_range"),
        "c": ("rejected", "out_of_range"),
        "d": ("rejected", "invalid"),
        "f": ("rejected", "out_of_range"),
    }
    b = next(a for a in out.refused if a.device == "b")
    assert "droop_over" in (b.detail or "")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"v": 2, "type": "settings", "issued_at": T, "settings": []}, "version"),
        ({"v": 1, "type": "settings", "issued_at": "x", "settings": []}, "issued_at"),
        ({"v": 1, "type": "settings", "issued_at": T, "settings": {}}, "list"),
        ({"v": 1, "type": "settings", "issued_at": T, "settings": [], "x": 1}, "unknown"),
        ({"v": 1, "type": "settings", "issued_at": T, "settings": [{}] * 1001}, "1000"),
    ],
)
def test_a_bad_envelope_is_refused_whole(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_settings(json.dumps(raw).encode())


def test_screen_refuses_unknown_stale_and_expired_and_repeats_answers() -> None:
    old = DeviceSettings.model_validate(_good("pv-1", 5))
    ack = SettingsAck(id=old.id, device="pv-1", seq=5, status="accepted")
    seen = {"pv-1": SettingsSeen(old.id, 5, ack)}
    xs = [
        DeviceSettings.model_validate(_good("pv-1", 5)),  # the same again: same answer
        DeviceSettings.model_validate(_good("pv-1", 4)),  # older
        DeviceSettings.model_validate({**_good("pv-1", 5), "id": "other"}),  # same seq, other id
        DeviceSettings.model_validate(_good("ghost", 9)),
        DeviceSettings.model_validate({**_good("pv-2", 1), "valid_until": T - 1}),
        DeviceSettings.model_validate(_good("pv-2", 2)),
    ]
    got = screen_settings(xs, seen, T, lambda d: d != "ghost")
    answers = [None if a is None else (a.status, a.reason) for _, a in got]
    assert answers == [
        ("accepted", None),
        ("rejected", "stale"),
        ("rejected", "stale"),
        ("rejected", "unknown_device"),
        ("rejected", "expired"),
        None,
    ]
    assert got[0][1] is ack


def test_no_nan_or_infinity_gets_through() -> None:
    raw = _good()
    raw["effective_from"] = math.inf
    out = decode_settings(
        json.dumps({"v": 1, "type": "settings", "issued_at": T, "settings": [raw]})
    )
    assert out.settings == []
    assert out.refused[0].status == "rejected"
