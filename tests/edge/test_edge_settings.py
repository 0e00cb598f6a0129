"""Grid-code settings pushed by the service reach the SunSpec registers through the edge gateway.

Real parts end to end: a private Mosquitto, the service's ``MqttLink`` and
``SettingsPusher`` building each device's settings from its site's profile, the edge
gateway with its SunSpec driver against the SunSpec simulator (models 705/706/711), and an
S2 driver that cannot take them. The oracle is the profile itself (IEEE 1547-2018
category B, whose curves the grid-code tests check against EPRI's OpenDER): the device's
registers must hold its numbers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._net import HOST, Broker, free_port

from gridflock.domain.ports import SettingsVerdict
from gridflock.edge.config import parse_config
from gridflock.edge.gateway import EdgeGateway
from gridflock.edge.s2.config import S2DeviceConfig
from gridflock.edge.s2.driver import S2Driver
from gridflock.edge.sunspec import SunSpecDriver
from gridflock.fleet.files import read_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.gateways.mqtt.protocol import DeviceSettings, DroopSetting
from gridflock.gridcode import curve_value, profile
from gridflock.service.gridcode import SettingsPusher
from gridflock.sim.sunspec_server import BatteryUnit, MeterUnit, PvInverterUnit, SunSpecServer

GW = "gw-set"
V_SWEEP = np.linspace(0.85, 1.15, 301)

FLEET = f"""
version: 1
grid_nodes:
  - {{id: set-tx, kind: transformer, limit_import_kw: 50, limit_export_kw: 50}}
sites:
  - id: us-site
    lat: 39.7
    lon: -105.0
    tz: America/Denver
    grid_node: set-tx
    grid_code: IEEE1547-B
    devices:
      - {{id: s-pv, kind: pv, kwp: 5, gateway_id: {GW}, protocol: edge}}
      - {{id: s-ghost, kind: pv, kwp: 3, gateway_id: {GW}, protocol: edge}}
  - id: au-site
    lat: -33.9
    lon: 151.2
    tz: Australia/Sydney
    grid_node: set-tx
    devices:
      - {{id: s-bat, kind: battery, e_kwh: 10, p_charge_max_kw: 5, p_discharge_max_kw: 5,
          gateway_id: {GW}, protocol: edge}}
      - {{id: s-hp, kind: water_heater, gateway_id: {GW}, protocol: edge}}
"""


def active(unit: Any, mid: int) -> Any:
    return unit.model(mid).groups["Ctl" if mid == 711 else "Crv"][0]


def device_curve(unit: Any, mid: int) -> tuple[np.ndarray, np.ndarray]:
    c = active(unit, mid)
    y = "Var" if mid == 705 else "W"
    n = c.ActPt.value
    v = np.array([c.Pt[k].V.cvalue for k in range(n)]) / 100.0
    q = np.array([c.Pt[k].points[y].cvalue for k in range(n)]) / 100.0
    return v, q


async def until(cond: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def test_pushed_settings_reach_the_registers_and_bad_items_are_refused(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    spec = read_fleet(fleet)
    broker = Broker(tmp_path)
    broker.start()
    pv = PvInverterUnit(5.0, irradiance=lambda t: 800.0, flavour="7xx", der_models=(705, 706, 711))
    bat = BatteryUnit(10.0, 5.0, soc=0.5, flavour="7xx", der_models=(711,))
    meter = MeterUnit([pv, bat], load_kw=lambda t: 0.5)
    modbus = free_port()
    base = {"protocol": "sunspec", "host": HOST, "port": modbus, "poll_interval_s": 1.0}
    cfg = parse_config(
        {
            "gateway": {"id": GW, "broker": f"mqtt://{HOST}:{broker.port}"},
            "devices": [
                {**base, "id": "s-pv", "kind": "pv", "unit": 1},
                {**base, "id": "s-bat", "kind": "battery", "unit": 2},
                {**base, "id": "s-meter", "kind": "meter", "unit": 3},
            ],
        }
    )
    prof = profile("IEEE1547-B")  # s-pv's site: explicit
    au = profile("AU-A")  # s-bat's: from its position (New South Wales: region A)
    verdicts: dict[str, SettingsVerdict] = {}

    async def main() -> None:
        server = SunSpecServer({1: pv, 2: bat, 3: meter}, port=modbus)
        await server.start()
        s2 = S2Driver(
            [
                S2DeviceConfig(
                    device_id="s-hp", kind="water_heater", resource_id=uuid.uuid4(), listen_port=0
                )
            ]
        )
        sunspec = SunSpecDriver([d for d in cfg.devices if d.protocol == "sunspec"])  # type: ignore[misc]
        gw = EdgeGateway(cfg, drivers=[sunspec, s2])
        devices = spec.all_devices()
        link = MqttLink(
            BrokerAddress.parse(f"mqtt://{HOST}:{broker.port}"),
            dict(zip(devices["id"], devices["gateway_id"], strict=True)),
        )
        pusher = SettingsPusher(link, time.time, resend_s=1.0)
        tasks = [asyncio.create_task(link.run()), asyncio.create_task(gw.run())]

        def answered(*devs: str) -> bool:
            report = link.take_report()
            pusher.take_report(report, time.time())
            for v in report.settings:
                verdicts[v.device_id] = v
            return all(pusher.records[d].status != "pending" for d in devs)

        try:
            await until(lambda: link.connected and gw.connected, 15, "both ends connected")
            summary = pusher.push(spec)
            # the ghost is in the fleet but not behind this gateway's drivers; the water
            # heater gets nothing without a frequency product (no inverter curves)
            assert summary["devices"] == 3
            await until(lambda: answered("s-pv", "s-bat", "s-ghost"), 20, "three answers")
            st = {d: (r.status, r.reason) for d, r in pusher.records.items()}
            assert st == {
                "s-pv": ("accepted", None),
                "s-bat": ("accepted", None),
                "s-ghost": ("rejected", "unknown_device"),
            }
            assert pusher.records["s-pv"].adopted == {
                "volt_var": "verified",
                "volt_watt": "verified",
                "freq_watt": "verified",
            }
            assert pusher.records["s-bat"].adopted == {
                "volt_var": "absent",
                "volt_watt": "absent",
                "freq_watt": "verified",
            }
            # the registers hold the profile's numbers
            for mid, curve in ((705, prof.volt_var), (706, prof.volt_watt)):
                v, y = device_curve(pv, mid)
                np.testing.assert_allclose(np.interp(V_SWEEP, v, y), curve_value(curve, V_SWEEP))
                assert pv.model(mid).Ena.value == int(curve.enabled)
            for unit, p in ((pv, prof), (bat, au)):
                c, fw = active(unit, 711), p.freq_watt
                assert c.DbOf.cvalue == pytest.approx(fw.db_over_hz)
                assert c.KOf.cvalue == pytest.approx(fw.droop_over)
                assert c.DbUf.cvalue == pytest.approx(fw.db_under_hz)
                assert c.KUf.cvalue == pytest.approx(fw.droop_under)
                assert c.RspTms.cvalue == pytest.approx(fw.response_s)

            # the operator pushes Very Fast FCAS with a tighter deadband and droop: new seq,
            # new registers; the Australian water heater now gets the product's droop, which
            # S2 cannot carry; the US inverter (60 Hz) gets no 50 Hz product
            first_seq = pusher.records["s-pv"].item.seq
            summary = pusher.push(
                spec,
                force=True,
                product="AU-VFFCAS",
                deadband_hz=0.015,
                droop=0.04,
                capacity={"s-bat": (4.0, 3.0), "s-hp": (1.0, 0.0)},
            )
            assert summary["devices"] == 4
            await until(lambda: answered("s-pv", "s-bat", "s-hp"), 20, "answers to the product")
            assert pusher.records["s-pv"].item.seq > first_seq
            assert pusher.records["s-hp"].status == "unsupported"
            assert pusher.records["s-hp"].reason == "local_protocol"
            assert pusher.records["s-bat"].adopted["ffr"] == "held"
            assert pusher.records["s-pv"].item.ffr is None
            for unit in (pv, bat):
                c = active(unit, 711)
                assert c.DbOf.cvalue == pytest.approx(0.015)
                assert c.DbUf.cvalue == pytest.approx(0.015)
                assert c.KOf.cvalue == pytest.approx(0.04)
                assert c.KUf.cvalue == pytest.approx(0.04)
            ffr = gw.settings_in_force["s-bat"].ffr
            assert ffr is not None
            assert (ffr.product, ffr.up_kw, ffr.down_kw) == ("AU-VFFCAS", 4.0, 3.0)

            # hostile items: a stale seq, an out-of-range droop, an unknown device; one good
            pv_item = pusher.records["s-pv"].item
            bat_item = pusher.records["s-bat"].item
            stale = pv_item.model_copy(
                update={"id": "stale-1", "seq": pv_item.seq - 1, "freq_watt": None}
            )
            assert bat_item.freq_watt is not None
            bad = DeviceSettings.model_construct(
                **{
                    **dict(bat_item),
                    "id": "bad-1",
                    "seq": bat_item.seq + 1,
                    "freq_watt": DroopSetting.model_construct(
                        **{**dict(bat_item.freq_watt), "droop_over": 0.5}
                    ),
                }
            )
            unknown = pv_item.model_copy(update={"id": "who-1", "device": "nobody"})
            good = bat_item.model_copy(
                update={
                    "id": "good-1",
                    "seq": bat_item.seq + 2,
                    "freq_watt": bat_item.freq_watt.model_copy(update={"droop_over": 0.06}),
                }
            )
            got: dict[str, SettingsVerdict] = {}

            def hostile_answered() -> bool:
                for v in link.take_report().settings:
                    got[v.settings_id] = v
                return len(got) >= 4

            assert link.send_settings(GW, [stale, bad, unknown, good])
            await until(hostile_answered, 20, "answers to the hostile items")
            assert (got["stale-1"].status, got["stale-1"].reason) == ("rejected", "stale")
            assert (got["bad-1"].status, got["bad-1"].reason) == ("rejected", "out_of_range")
            assert "droop_over" in (got["bad-1"].detail or "")
            assert got["who-1"].reason == "unknown_device"
            assert got["good-1"].status == "accepted"
            assert active(bat, 711).KOf.cvalue == pytest.approx(0.06)
            assert active(pv, 711).KOf.cvalue == pytest.approx(
                0.04
            )  # the stale one changed nothing

            # a re-send of what a device already took is answered as before, not re-written
            writes = gw.stats.settings
            assert link.send_settings(GW, [good])
            again: list[SettingsVerdict] = []

            def reanswered() -> bool:
                again.extend(link.take_report().settings)
                return bool(again)

            await until(reanswered, 20, "the answer to a re-send")
            assert (again[0].settings_id, again[0].status) == ("good-1", "accepted")
            assert gw.stats.settings == writes + 1
        finally:
            gw.stop()
            link.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
            await server.stop()

    try:
        asyncio.run(main())
    finally:
        broker.kill()


def test_settings_ahead_are_held_until_effective_and_a_meter_or_missing_models_say_so() -> None:
    """No broker: the gateway's own rules, on a fake clock, against the SunSpec simulator."""
    from gridflock.gateways.mqtt.codec import DecodedSettings, settings_item
    from gridflock.gridcode import device_settings

    pv = PvInverterUnit(5.0, irradiance=lambda t: 800.0, flavour="7xx", der_models=(711,))
    bare = BatteryUnit(10.0, 5.0, soc=0.5, flavour="7xx")  # no DER models at all
    meter = MeterUnit([pv, bare], load_kw=lambda t: 0.5)
    modbus = free_port()
    base = {"protocol": "sunspec", "host": HOST, "port": modbus, "poll_interval_s": 1.0}
    cfg = parse_config(
        {
            "gateway": {"id": GW, "broker": f"mqtt://{HOST}:1"},
            "devices": [
                {**base, "id": "pv", "kind": "pv", "unit": 1},
                {**base, "id": "bat", "kind": "battery", "unit": 2},
                {**base, "id": "meter", "kind": "meter", "unit": 3},
            ],
        }
    )
    now = [1_790_000_000.0]
    prof = profile("GB-G99")

    def item(dev: str, seq: int, eff: float) -> DeviceSettings:
        return settings_item(device_settings(prof, dev, "pv", 5.0), f"{dev}-{seq}", seq, eff)

    async def main() -> None:
        server = SunSpecServer({1: pv, 2: bare, 3: meter}, port=modbus)
        await server.start()
        gw = EdgeGateway(cfg, clock=lambda: now[0])
        for d in gw.drivers:
            await d.start()
        try:
            before = active(pv, 711).DbOf.cvalue
            msg = DecodedSettings(
                now[0],
                [item("pv", 1, now[0] + 60), item("bat", 1, now[0]), item("meter", 1, now[0])],
            )
            acks = {a.device: a for a in await gw.handle_settings(msg)}
            assert set(acks) == {"bat", "meter"}  # the PV's is held, answered when applied
            assert (acks["bat"].status, acks["bat"].reason) == ("unsupported", "no_der_functions")
            assert acks["bat"].adopted == {
                "volt_var": "absent",
                "volt_watt": "absent",
                "freq_watt": "absent",
            }
            assert (acks["meter"].status, acks["meter"].reason) == (
                "unsupported",
                "no_der_functions",
            )
            assert "pv" in gw.settings_due
            await gw.control_step()
            assert active(pv, 711).DbOf.cvalue == before  # not yet
            now[0] += 61
            await gw.control_step()
            assert "pv" not in gw.settings_due
            assert gw.settings_seen["pv"].ack.status == "accepted"
            assert active(pv, 711).DbOf.cvalue == pytest.approx(prof.freq_watt.db_over_hz)
            assert active(pv, 711).KOf.cvalue == pytest.approx(prof.freq_watt.droop_over)
        finally:
            for d in gw.drivers:
                await d.close()
            await server.stop()

    asyncio.run(main())
