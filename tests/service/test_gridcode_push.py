"""The service's grid-code settings: pushed at start, on import, by operators, until answered."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from gridflock.config import Settings
from gridflock.domain import InvalidError
from gridflock.domain.auth import Principal, Role
from gridflock.domain.ports import GatewayStatus, SettingsVerdict
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.gridcode import profile, site_codes
from gridflock.service import Runtime
from gridflock.service.gridcode import settings_documents
from gridflock.service.links import MemoryLink
from gridflock.store import Store

T0 = 1_790_000_000.0
OPERATOR = Principal("k-op", "operator-1", Role.OPERATOR)


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return generate_fleet(12, 4)


@pytest.fixture
def store(tmp_path: Path, fleet: FleetSpec) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'gc.db'}")
    s.upgrade()
    s.save_fleet(fleet)
    yield s
    s.close()


def _items(link: MemoryLink) -> dict[str, tuple[str, object]]:
    """The latest item sent per device, with its gateway."""
    return {it.device: (gw, it) for gw, items in link.settings for it in items}


def test_pushed_until_answered_again_when_online_and_on_changes_only(
    store: Store, fleet: FleetSpec
) -> None:
    clock = [T0]
    link = MemoryLink(connected=False)  # the broker is away at start
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    pusher = rt.loop.gridcode
    assert pusher is not None
    docs = settings_documents(fleet)
    assert set(pusher.records) == set(docs)
    assert all(r.status == "pending" and r.sent_at is None for r in pusher.records.values())
    # the settings are the site profile's: oracle, the profile of the site's code
    codes = dict(zip(fleet.sites["id"], site_codes(fleet.sites), strict=True))
    devices = fleet.all_devices().set_index("id")
    for dev, rec in pusher.records.items():
        prof = profile(codes[devices.loc[dev, "site_id"]])
        assert rec.item.profile == prof.code
        assert rec.item.freq_watt is not None
        assert rec.item.freq_watt.droop_over == prof.freq_watt.droop_over
        assert rec.gateway == devices.loc[dev, "gateway_id"]

    link.connected = True
    rt.control_cycle()  # never sent: they go now
    sent = _items(link)
    assert set(sent) == set(docs)
    first_ids = {d: it.id for d, (_, it) in sent.items()}  # type: ignore[attr-defined]

    # one gateway answers for its devices; a verdict from the wrong gateway changes nothing
    dev, (gw, item) = next(iter(sent.items()))
    link.answer_settings(
        SettingsVerdict(gw, item.id, dev, item.seq, "accepted", None, {"freq_watt": "verified"})  # type: ignore[attr-defined]
    )
    other_dev = next(d for d, (g, _) in sent.items() if g != gw)
    o_item = sent[other_dev][1]
    link.answer_settings(
        SettingsVerdict(gw, o_item.id, other_dev, o_item.seq, "accepted")  # type: ignore[attr-defined]
    )
    link.settings.clear()
    clock[0] += 2
    rt.control_cycle()
    assert pusher.records[dev].status == "accepted"
    assert pusher.records[dev].adopted == {"freq_watt": "verified"}
    assert pusher.records[other_dev].status == "pending"
    assert pusher.counts["answers_ignored"] == 1
    assert link.settings == []  # not overdue yet

    # unanswered ones go again after resend_s, with the same id and seq (idempotent)
    clock[0] += pusher.resend_s
    rt.control_cycle()
    again = _items(link)
    assert dev not in again
    assert set(again) == set(docs) - {dev}
    assert all(it.id == first_ids[d] for d, (_, it) in again.items())  # type: ignore[attr-defined]

    # a gateway that comes online gets its devices' latest settings again, answered or not
    link.settings.clear()
    link.announce(GatewayStatus(gw, "online", clock[0]))
    clock[0] += 2
    rt.control_cycle()
    behind = {d for d, r in pusher.records.items() if r.gateway == gw}
    assert set(_items(link)) == behind
    assert pusher.records[dev].status == "accepted"  # its answer stands

    # a fleet import sends only what changed: the devices of the site whose code changed
    link.settings.clear()
    sites = fleet.sites.copy()
    site = str(devices.loc[dev, "site_id"])
    new_code = "AU-B" if codes[site] != "AU-B" else "GB-G99"
    sites.loc[sites["id"] == site, "grid_code"] = new_code
    changed = dataclasses.replace(fleet, sites=sites)
    asyncio.run(rt.import_fleet(changed, OPERATOR))
    moved = {d for d in docs if devices.loc[d, "site_id"] == site}
    assert set(_items(link)) == moved
    assert {it.profile for _, it in _items(link).values()} == {new_code}  # type: ignore[attr-defined]


def test_an_operator_push_with_a_product_goes_to_every_device_with_new_seq(
    store: Store, fleet: FleetSpec
) -> None:
    clock = [T0]
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    before = {d: (r.item.seq, r.item.id) for d, r in rt.loop.gridcode.records.items()}  # type: ignore[union-attr]
    link.settings.clear()
    clock[0] += 10
    out = asyncio.run(rt.push_grid_settings("GB-DC", None, 0.04, OPERATOR))
    n_all = len(settings_documents(fleet, "GB-DC"))
    assert out["pushed"] == out["sent"] == out["devices"] == n_all
    assert n_all > len(before)  # the product reaches non-inverter kinds too
    for d, (_gw, it) in _items(link).items():
        assert it.ffr is not None
        assert it.ffr.product == "GB-DC"
        if d in before:
            assert it.seq > before[d][0]  # type: ignore[attr-defined]
            assert it.id != before[d][1]  # type: ignore[attr-defined]
            assert it.freq_watt.droop_over == it.freq_watt.droop_under == 0.04  # type: ignore[attr-defined]
    status = rt.grid_settings()
    assert status["product"] == "GB-DC"
    assert status["by_status"] == {"pending": n_all}
    assert rt.writer.flush()
    with pytest.raises(InvalidError, match="known"):
        asyncio.run(rt.push_grid_settings("XX", None, None, OPERATOR))
    with pytest.raises(InvalidError, match="droop"):
        asyncio.run(rt.push_grid_settings(None, None, 0.9, OPERATOR))


def test_settings_go_through_the_link_that_owns_each_device(fleet: FleetSpec) -> None:
    from gridflock.domain.ports import SettingsLink
    from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
    from gridflock.service.links import CompositeLink, NoDevices
    from gridflock.sim.realtime import RealtimeTwin

    for link in (
        MemoryLink(fleet),
        RealtimeTwin(fleet, hours=0.1, clock=lambda: T0),
        MqttLink(BrokerAddress.parse("mqtt://127.0.0.1:1"), {}),
    ):
        assert isinstance(link, SettingsLink), type(link).__name__
    assert not isinstance(NoDevices(), SettingsLink)
    mqtt, other = MemoryLink(fleet), NoDevices()
    devices = fleet.all_devices()
    bats = devices[devices["kind"] == "battery"]
    # batteries speak OCPP here (a link without settings); the rest the MQTT gateways
    protocols = {kind: ("ocpp" if kind == "battery" else "mqtt") for kind in fleet.devices}
    spec = dataclasses.replace(
        fleet,
        devices={k: df.assign(protocol=protocols[k]) for k, df in fleet.devices.items()},
    )
    comp = CompositeLink({"mqtt": mqtt, "ocpp": other}, spec)  # type: ignore[dict-item]
    docs = settings_documents(spec)
    from gridflock.gateways.mqtt.codec import settings_item

    items = [settings_item(doc, f"s-{d}", 1, T0) for d, (_, doc) in docs.items()]
    assert not comp.send_settings("gw", items)  # the batteries' link carries none
    sent = {it.device for _, group in mqtt.settings for it in group}
    assert sent == set(docs) - set(bats["id"])


def test_pushes_and_answers_are_in_the_audit_log(store: Store, fleet: FleetSpec) -> None:
    clock = [T0]
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    item = link.settings[0][1][0]
    gw = link.settings[0][0]
    link.answer_settings(SettingsVerdict(gw, item.id, item.device, item.seq, "accepted"))
    clock[0] += 2
    rt.control_cycle()
    asyncio.run(rt.push_grid_settings("GB-DC", None, None, OPERATOR))
    assert rt.writer.flush()
    actions = [(a.actor, a.action) for a in store.audit_log(action="gridcode.*")]
    assert ("service", "gridcode.push") in actions
    assert ("gateways", "gridcode.answers") in actions
    assert ("apikey:operator-1", "gridcode.push") in actions


class _SlowLink(MemoryLink):
    """Each gateway's send takes a few ms, as encoding a large gateway's items does."""

    def send_settings(self, gateway: str, items: Sequence[Any]) -> bool:
        time.sleep(0.005)
        return super().send_settings(gateway, items)


def test_the_control_loop_keeps_cycling_while_a_large_push_goes_out(tmp_path: Path) -> None:
    big = generate_fleet(150, 9)
    store = Store(f"sqlite:///{tmp_path / 'big.db'}")
    store.upgrade()
    store.save_fleet(big)
    link = _SlowLink()
    settings = Settings(database_url="sqlite://", control_interval_s=0.05)
    rt = Runtime(settings, store, big, link, clock=time.time)
    loop, pusher = rt.loop, rt.loop.gridcode
    assert pusher is not None
    pusher.sync_items, pusher.step_s = 10, 0.001  # a "large" push for this fleet
    n_all = len(settings_documents(big, "GB-DC"))
    queued_at_cycle: list[int] = []
    cycle = loop.cycle

    def counted() -> None:
        queued_at_cycle.append(pusher.queued)
        cycle()

    loop.cycle = counted  # type: ignore[method-assign]

    async def scenario() -> dict[str, Any]:
        task = asyncio.create_task(loop.run())
        deadline = time.monotonic() + 20
        while not queued_at_cycle and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        link.settings.clear()
        out = await rt.push_grid_settings("GB-DC", None, None, OPERATOR)
        while pusher.queued and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        loop.stop()
        await task
        return out

    try:
        out = asyncio.run(scenario())
    finally:
        store.close()
    assert out["pushed"] == n_all
    assert out["queued"] > 0  # not sent in one go
    assert pusher.queued == 0, "the push did not finish within 20 s"
    # cycles ran while the push was going out, not only before and after it
    during = [q for q in queued_at_cycle if 0 < q < out["queued"]]
    assert len(during) >= 3, queued_at_cycle
    # every device got the product exactly once, and its record says so
    sent = [it for _, items in link.settings for it in items]
    assert sorted(it.device for it in sent) == sorted(settings_documents(big, "GB-DC"))
    assert all(it.ffr is not None and it.ffr.product == "GB-DC" for it in sent)
    assert all(r.sent_at is not None and r.attempts == 1 for r in pusher.records.values())


def test_a_newer_push_replaces_what_is_still_queued(fleet: FleetSpec) -> None:
    from gridflock.service.gridcode import SettingsPusher

    link = MemoryLink()
    pusher = SettingsPusher(link, lambda: T0, step_s=0.0, sync_items=1)
    first = pusher.push(fleet, force=True)
    assert first["sent"] > 0  # one gateway's items per step
    assert first["queued"] == first["pushed"] - first["sent"]
    sent_before = len(link.settings)
    second = pusher.push(fleet, force=True, product="GB-DC")
    while pusher.queued:
        assert pusher.drain() > 0
    after = [it for _, items in link.settings[sent_before:] for it in items]
    # nothing of the first push went out after the second: each device once, the product's
    assert sorted(it.device for it in after) == sorted(settings_documents(fleet, "GB-DC"))
    assert all(it.ffr is not None for it in after)
    assert {it.id for it in after} == {r.settings_id for r in pusher.records.values()}
    assert second["pushed"] == len(pusher.records)
