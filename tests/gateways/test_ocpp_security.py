"""Security profiles 1/2 at the handshake, TLS with a test CA, hostile and silent chargers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from gridflock.gateways.mqtt import hash_password
from gridflock.gateways.ocpp import OcppLink, OcppSettings, iso, parse_basic, verify_password
from gridflock.sim.ocpp import SimulatedChargePoint

from ._ocpp import charger, commands, link_for, ocpp_fleet, secret, shut_down, until
from .test_mqtt_tls import pki  # noqa: F401  (the test CA fixture)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_passwords_are_checked_against_the_gateways_hash_format() -> None:
    stored = hash_password("s3cret-s3cret")
    assert verify_password("s3cret-s3cret", stored)
    assert not verify_password("s3cret-s3creT", stored)
    assert not verify_password("s3cret-s3cret", "plain-text")
    assert not verify_password("x", "$7$notanumber$AAAA$AAAA")
    assert parse_basic(_basic("CP1", "a:b")) == ("CP1", "a:b")
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Bearer abc") is None
    assert parse_basic(_basic("CP1", "x" * 500)) is None


def test_plain_websockets_need_explicit_consent() -> None:
    with pytest.raises(ValueError, match="TLS"):
        OcppLink(None, lambda cp: None, OcppSettings())  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("path", "auth", "status", "logged"),
    [
        ("/ocpp/CP0", _basic("CP0", "wrong-password"), 401, "wrong password"),
        ("/ocpp/CP9", _basic("CP9", secret("CP9")), 401, "unknown charge point"),
        ("/ocpp/CP0", None, 401, "no HTTP Basic credentials"),
        ("/ocpp/CP0", _basic("CP1", secret("CP1")), 401, "is not the charge point id"),
        ("/elsewhere/CP0", _basic("CP0", secret("CP0")), 404, "connect to /ocpp/"),
    ],
)
def test_bad_credentials_are_refused_at_the_handshake_with_a_logged_reason(
    path: str, auth: str | None, status: int, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        link = link_for(ocpp_fleet(2))
        await link.start()
        headers = {"Authorization": auth} if auth else {}
        try:
            with pytest.raises(InvalidStatus) as e:
                async with connect(
                    f"ws://127.0.0.1:{link.port}{path}",
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers=headers,
                ):
                    pass
            assert e.value.response.status_code == status
            assert not link.sessions
        finally:
            link.stop()
            await link.run()

    with caplog.at_level(logging.WARNING, "gridflock.ocpp"):
        asyncio.run(main())
    assert any(logged in r.getMessage() for r in caplog.records), caplog.text


def test_a_charger_without_an_ocpp_subprotocol_is_refused() -> None:
    async def main() -> None:
        link = link_for(ocpp_fleet(1))
        await link.start()
        try:
            with pytest.raises(InvalidHandshake):
                async with connect(
                    f"ws://127.0.0.1:{link.port}/ocpp/CP0",
                    subprotocols=["ocpp1.5"],  # type: ignore[list-item]
                    additional_headers={"Authorization": _basic("CP0", secret("CP0"))},
                ):
                    pass
        finally:
            link.stop()
            await link.run()

    asyncio.run(main())


def test_security_profile_2_over_tls_with_a_test_ca(pki: dict[str, str]) -> None:  # noqa: F811
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
    client_ctx = ssl.create_default_context(cafile=pki["ca"])
    untrusting = ssl.create_default_context(cafile=pki["other_ca"])

    async def main() -> None:
        spec = ocpp_fleet(1)
        link = link_for(spec, ssl=server_ctx)
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        assert link.url.startswith("wss://")
        cp = SimulatedChargePoint(charger(0, "ocpp2.0.1"))
        task = asyncio.create_task(cp.run(link.url, ssl_context=client_ctx, interval_s=0.2))
        try:
            await until(lambda: link.receive(), "a reading over TLS")
            with pytest.raises(ssl.SSLCertVerificationError):  # a CSMS it cannot trust
                await SimulatedChargePoint(charger(0, "ocpp1.6")).run(
                    link.url, ssl_context=untrusting
                )
            with pytest.raises((InvalidHandshake, OSError, EOFError)):  # no TLS at all
                async with connect(
                    f"ws://127.0.0.1:{link.port}/ocpp/CP0",
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers={"Authorization": _basic("CP0", secret("CP0"))},
                    open_timeout=2,
                ):
                    pass
        finally:
            await shut_down(link, runner, task)

    asyncio.run(main())


def _call(uid: str, action: str, payload: object) -> str:
    return json.dumps([2, uid, action, payload])


def test_a_hostile_charger_does_not_disturb_the_others() -> None:
    """Garbage, wrong actions, absurd values and an oversized frame from CP1; CP0 carries on."""

    async def main() -> None:
        spec = ocpp_fleet(2)
        link = link_for(spec, response_timeout_s=0.5)
        runner = asyncio.create_task(link.run())
        await until(lambda: link.connected, "the CSMS to listen")
        good = SimulatedChargePoint(charger(0, "ocpp1.6"))
        task = asyncio.create_task(good.run(link.url, interval_s=0.2))
        answers: list[object] = []
        try:
            await until(lambda: "CP0" in link.sessions and link.sessions["CP0"].tx, "CP0")
            await until(lambda: good.ev.tx_id, "CP0 to take its transaction id")
            async with connect(
                link.url + "CP1",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": _basic("CP1", secret("CP1"))},
            ) as ws:
                now = iso(time.time())
                huge = {"value": "1e300", "measurand": "Power.Active.Import", "unit": "W"}
                nan = {"value": "NaN", "measurand": "Power.Active.Import", "unit": "W"}
                soc = {"value": "250", "measurand": "SoC", "unit": "Percent"}
                mv = [{"timestamp": now, "sampledValue": [x]} for x in (huge, nan, soc)]
                future = [{"timestamp": "2999-01-01T00:00:00Z", "sampledValue": [huge]}]
                for frame in (
                    "hello",
                    "[2,",
                    json.dumps({"not": "a list"}),
                    _call("1", "BootNotification", {}),  # schema violation
                    _call("2", "SetChargingProfile", {"connectorId": 1}),  # the CSMS's action
                    _call("3", "NoSuchAction", {}),
                    _call("4", "MeterValues", {"connectorId": 1, "meterValue": mv}),
                    _call("5", "MeterValues", {"connectorId": 1, "meterValue": future}),
                    _call("6", "MeterValues", {"connectorId": 7, "meterValue": mv}),
                ):
                    await ws.send(frame)
                for _ in range(6):  # the calls among them are answered, errors included
                    answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
                link.send(commands(["s0-ev", "s1-ev"], [-5.0, -5.0]))
                # CP1 never answers the profile: its command expires; CP0's is applied
                reports = []
                await until(
                    lambda: reports.append(link.take_report()) or any(r.expired for r in reports),
                    "CP1's command to expire",
                )
                acks = [a for r in reports for a in r.acks]
                assert [(a.command_id, a.status) for a in acks] == [("c-s0-ev", "accepted")]
                assert [e for r in reports for e in r.expired] == ["c-s1-ev"]
                rejected: dict[str, int] = {}
                for r in reports:
                    for k, v in r.rejected.items():
                        rejected[k] = rejected.get(k, 0) + v
                assert rejected["out_of_range"] == 2  # 1e300 W and SoC 250 %
                assert rejected["bad_value"] == 1  # NaN
                assert rejected["bad_ts"] == 1
                assert rejected["unknown_device"] == 3  # connector 7 is nobody's
                await ws.send("x" * 70_000)  # larger than a frame may be: only CP1 drops
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.recv(), 2)
            await until(lambda: "CP1" not in link.sessions, "CP1 to be dropped")
            kinds = sorted(a[0] for a in answers)  # type: ignore[index]
            assert kinds == [3, 3, 3, 4, 4, 4]  # three CallErrors, three empty results
            p_ok = await until(
                lambda: [p for b in link.receive() for p in b.p_kw if abs(p + 4.97) < 0.05],
                "CP0 to charge at the event's 5 kW",
            )
            assert p_ok
            assert "CP0" in link.sessions
        finally:
            await shut_down(link, runner, task)

    asyncio.run(main())


def test_a_flooding_charger_is_throttled_and_a_reconnect_replaces_its_connection() -> None:
    async def main() -> None:
        link = link_for(ocpp_fleet(1), max_messages_per_s=1.0, burst_messages=5.0)
        await link.start()
        headers = {"Authorization": _basic("CP0", secret("CP0"))}
        try:
            async with connect(
                link.url + "CP0",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers=headers,
            ) as first:
                for i in range(30):
                    await first.send(_call(str(i), "Heartbeat", {}))
                answered = 0
                with contextlib.suppress(TimeoutError):
                    while True:
                        await asyncio.wait_for(first.recv(), 0.5)
                        answered += 1
                assert 5 <= answered <= 10  # the burst, and what refilled meanwhile
                assert link.take_report().rejected["rate_limited"] == 30 - answered
                async with connect(
                    link.url + "CP0",
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    additional_headers=headers,
                ) as second:
                    await until(lambda: link.sessions["CP0"].version == "ocpp2.0.1", "the new one")
                    with pytest.raises(ConnectionClosed):  # the old connection is closed
                        await asyncio.wait_for(first.recv(), 5)
                    await second.send(_call("b", "Heartbeat", {}))
                    reply = json.loads(await asyncio.wait_for(second.recv(), 5))
                    assert reply[:2] == [3, "b"]
                    assert link.sessions["CP0"].ws is not None
        finally:
            link.stop()
            await link.run()

    asyncio.run(main())
