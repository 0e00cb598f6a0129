"""Hostile and broken peers at the S2 CEM endpoint: each gets a ReceptionStatus that says what
was wrong, and none of them holds up the honest resource managers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from s2python.version import S2_VERSION
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gridflock.edge.driver import DriverError
from gridflock.edge.s2 import S2DeviceConfig, S2Driver, build_s2_driver

from ._site import BAT_RM, Site, configs, run


async def _raw(url: str):
    return await connect(url)


async def _recv_status(ws) -> dict:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg["message_type"] == "ReceptionStatus":
            return msg


async def _drain(ws) -> None:
    """Read until the CEM closes the connection (raises ConnectionClosed)."""
    while True:
        await asyncio.wait_for(ws.recv(), 5)


def _handshake(versions: list[str]) -> str:
    return json.dumps(
        {
            "message_type": "Handshake",
            "message_id": str(uuid.uuid4()),
            "role": "RM",
            "supported_protocol_versions": versions,
        }
    )


def test_hostile_rm_gets_errors_and_does_not_block_others() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d, url = site.driver, site.driver.endpoints["bat-1"]
            ws = await _raw(url)
            await ws.send("{not json")
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_DATA"
            assert "JSON" in st["diagnostic_label"]
            await ws.send("[1, 2]")
            assert (await _recv_status(ws))["status"] == "INVALID_DATA"
            mid = str(uuid.uuid4())
            await ws.send(json.dumps({"message_type": "FRBC.Bogus", "message_id": mid}))
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_MESSAGE"
            assert st["subject_message_id"] == mid
            assert "FRBC.Bogus" in st["diagnostic_label"]
            await ws.send(
                f'{{"message_type": "FRBC.StorageStatus", "message_id": "{uuid.uuid4()}",'
                ' "present_fill_level": NaN}'
            )
            assert (await _recv_status(ws))["status"] == "INVALID_DATA"
            mid = str(uuid.uuid4())
            await ws.send(json.dumps({"message_type": "FRBC.StorageStatus", "message_id": mid}))
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_MESSAGE"
            assert "present_fill_level" in st["diagnostic_label"]
            await ws.send(
                json.dumps(
                    {
                        "message_type": "FRBC.StorageStatus",
                        "message_id": mid,
                        "present_fill_level": 3.0,
                    }
                )
            )
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_CONTENT"
            assert "Handshake first" in st["diagnostic_label"]
            # Meanwhile the honest battery is served as before.
            res = await d.apply("bat-1", -2.0, time.time() + 600)
            assert res.accepted
            assert site.bat.power_w() == pytest.approx(2000.0)
            await ws.send(_handshake(["9.9.9"]))
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_CONTENT"
            assert S2_VERSION in st["diagnostic_label"]
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            # A right version but a resource id nobody configured.
            ws = await _raw(url)
            await ws.send(_handshake([S2_VERSION]))
            assert (await _recv_status(ws))["status"] == "OK"
            await ws.send(
                json.dumps(
                    {
                        "message_type": "ResourceManagerDetails",
                        "message_id": str(uuid.uuid4()),
                        "resource_id": str(uuid.uuid4()),
                        "roles": [{"role": "ENERGY_STORAGE", "commodity": "ELECTRICITY"}],
                        "instruction_processing_delay": 0,
                        "available_control_types": ["FILL_RATE_BASED_CONTROL"],
                        "provides_forecast": False,
                        "provides_power_measurement_types": ["ELECTRIC.POWER.L1"],
                    }
                )
            )
            st = await _recv_status(ws)
            assert st["status"] == "INVALID_CONTENT", st
            assert "not configured" in st["diagnostic_label"]
            with pytest.raises(ConnectionClosed):
                await _drain(ws)
            assert d.connected("bat-1")
            assert d.connected("wm-1")

    run(scenario())


def test_a_flood_of_garbage_does_not_hold_up_the_honest_rms() -> None:
    async def scenario() -> None:
        async with Site() as site:
            d = site.driver
            ws = await connect(d.endpoints["bat-1"])

            async def flood() -> None:
                for i in range(300):
                    await ws.send("{bad" if i % 2 else json.dumps({"message_type": "X"}))

            flooding = asyncio.create_task(flood())
            for p in (-1.0, 2.0, -3.0):
                res = await d.apply("bat-1", p, time.time() + 600)
                assert res.accepted
                assert site.bat.power_w() == pytest.approx(-p * 1000)
            await flooding
            statuses = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(300)]
            assert {s["status"] for s in statuses} == {"INVALID_DATA", "INVALID_MESSAGE"}
            await ws.close()

    run(scenario())


def test_an_rm_that_stops_answering_during_the_handshake_is_dropped() -> None:
    async def scenario() -> None:
        driver = build_s2_driver(configs(reception_timeout_s=0.2))
        await driver.start()
        try:
            ws = await connect(driver.endpoints["bat-1"])
            await ws.send(_handshake([S2_VERSION]))
            assert (await _recv_status(ws))["status"] == "OK"
            # The CEM's own Handshake comes; this peer never acknowledges it.
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["message_type"] == "Handshake"
            assert first["role"] == "CEM"
            with pytest.raises(ConnectionClosed):
                await _drain(ws)
            assert ws.close_code == 1011
        finally:
            await driver.close()

    run(scenario())


def test_wrong_path_is_refused_and_a_busy_port_is_a_driver_error() -> None:
    async def scenario() -> None:
        driver = build_s2_driver(configs())
        await driver.start()
        try:
            url = driver.endpoints["bat-1"]
            with pytest.raises(InvalidStatus):
                await connect(url.replace("/s2", "/other"))
            port = int(url.split(":")[2].split("/")[0])
            clash = S2Driver([S2DeviceConfig(device_id="x", resource_id=BAT_RM, listen_port=port)])
            with pytest.raises(DriverError, match="cannot listen"):
                await clash.start()
        finally:
            await driver.close()

    run(scenario())
