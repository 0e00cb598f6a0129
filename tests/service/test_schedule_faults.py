"""A plan survives the service: the service vanishes mid-plan over a real Mosquitto.

The devices (simulated gateways, protocol v1) get a plan as schedules from the service
in process (SQLite store, MQTT link, control loop); a replayed schedule and one whose plan
is over are refused by every gateway with their reason and change nothing; then the service
goes away without a word. The devices keep to their schedules slot by slot until the plan's
end, then fall back to their own control (their safe default: a battery balances its home).
The service comes back mid-plan, takes the schedules up from the store (the dispatcher's
baselines again) and sends nothing again for an unchanged plan; a new plan after the end
reaches every device within seconds.

What is lost while the service is away: the telemetry of that time (QoS 0, nobody
subscribed: the store has no readings of it), and any event that would have been
dispatched. The plan itself is not lost. How fast it recovers: the service is connected
and has its schedules back within the time it takes to start (asserted < 5 s here), and a
new plan is acknowledged by every device within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain import DeviceKind
from gridflock.domain.schedules import PlanSeries, ScheduleBatch
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.service import Runtime
from gridflock.service.plans import PlanExecutor
from gridflock.sim.gateways import SimulatedGateways
from gridflock.sim.imperfections import Imperfections
from gridflock.store import Store

SLOT_S = 3.0
SLOTS = 5
VALUES = np.array([1.0, -1.0, 0.5, -0.5, 1.0])


async def until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        await asyncio.sleep(every)


@dataclass
class Service:
    runtime: Runtime
    link: MqttLink
    store: Store

    @property
    def plans(self) -> PlanExecutor:
        assert self.runtime.loop.plans is not None
        return self.runtime.loop.plans


@contextlib.asynccontextmanager
async def serving(db: Path, broker_url: str, spec: FleetSpec, share: str) -> AsyncIterator[Service]:
    """The service in process; leaving the block is the service vanishing (no goodbye)."""
    url = f"sqlite:///{db}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(spec)
    cfg = Settings(database_url=url, mqtt_url=broker_url, control_interval_s=0.5,
                   telemetry_flush_s=0.2)  # fmt: skip
    devices = spec.all_devices()
    link = MqttLink(
        BrokerAddress.parse(broker_url),
        dict(zip(devices["id"], devices["gateway_id"], strict=True)),
        share=share,
    )
    runtime = Runtime(cfg, store, spec, link)
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(runtime.run())]
    try:
        await until(lambda: link.connected, 10, "the service to connect to the broker")
        yield Service(runtime, link, store)
    finally:
        runtime.stop()
        link.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*tasks, return_exceptions=True)
        for t in tasks:
            t.cancel()
        store.close()


@pytest.mark.slow
def test_devices_keep_their_plan_while_the_service_is_away_then_fall_back(
    tmp_path: Path, broker: Any, kit: SimpleNamespace
) -> None:
    tag = kit.run_tag()
    spec = kit.prefixed(generate_fleet(10, 1), tag)
    db = tmp_path / "service.db"
    samples: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []

    async def scenario() -> None:
        gateways = SimulatedGateways(
            spec, broker.url, seed=1, step_s=0.5, connections=2,
            imperfections=Imperfections.ideal(),
        )  # fmt: skip
        sim = asyncio.create_task(gateways.run())
        twin = None
        stop_sampling = asyncio.Event()

        async def sample() -> None:  # what the batteries do, step by step, on the wall clock
            seen = -1.0
            while not stop_sampling.is_set():
                if twin is not None and twin.now != seen:
                    seen = twin.now
                    step_start = twin.now - twin.step_s + gateways.rt.offset_s
                    soc = twin.real.soc.copy()
                    samples.append((step_start, twin.p_kw.copy(), twin.planned.copy(), soc))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        try:
            async with serving(db, broker.url, spec, f"s{tag[:-1]}") as svc:
                rt = svc.runtime
                await until(lambda: rt.health()["devices_online"] == spec.n_devices, 15, "online")
                twin = gateways.rt.twin
                s = rt.state.kind_slices[DeviceKind.BATTERY]
                rows = np.arange(s.start, s.stop)[rt.state.controllable()[s]]
                ids = rt.state.device_ids[rows]
                start = time.time()
                plan = PlanSeries("p1", ids, np.tile(VALUES, (len(ids), 1)), start, SLOT_S)
                svc.link.schedule_chunk = 2  # published a few at a time, between cycles
                res = svc.plans.apply(plan)
                assert (res.sent, res.refused) == (len(ids), {})
                await until(lambda: svc.plans.pending() == 0, 5, "every schedule acknowledged")
                n = len(ids)
                stale = [  # an old seq (a replay), and a plan that ended before it arrived
                    ScheduleBatch(
                        np.array([f"old:{i}" for i in range(n)], dtype=object), ids,
                        np.ones(n, np.int64), np.full((n, 2), -3.0), start, SLOT_S,
                        start + 2 * SLOT_S, time.time(), "old",
                    ),
                    ScheduleBatch(
                        np.array([f"gone:{i}" for i in range(n)], dtype=object), ids,
                        np.full(n, 2**62, np.int64), np.full((n, 2), -3.0), start - 60.0,
                        SLOT_S, start - 60.0 + 2 * SLOT_S, time.time(), "gone",
                    ),
                ]  # fmt: skip
                for batch in stale:
                    svc.link.send_schedules(batch)
                reasons = gateways.stats.reasons
                await until(
                    lambda: (reasons.get("replayed"), reasons.get("expired")) == (n, n),
                    5,
                    "the replayed and expired schedules refused with their reason",
                )
                await asyncio.sleep(start + 4.0 - time.time())
            gone = time.time()  # the service vanished in the second slot
            await asyncio.sleep(start + 8.0 - time.time())
            back = time.monotonic()
            async with serving(db, broker.url, spec, f"s{tag[:-1]}") as svc:
                await until(
                    lambda: np.isfinite(svc.plans.planned_kw(time.time())[rows]).all(),
                    5,
                    "the schedules taken up from the store",
                )
                recovered = time.monotonic() - back
                now = time.time()
                slot = int((now - start) // SLOT_S)
                planned = svc.plans.planned_kw(now)[rows]
                if (now - start) % SLOT_S < SLOT_S - 0.2:  # not at a slot's edge
                    np.testing.assert_allclose(planned, VALUES[slot])
                again = svc.plans.apply(plan)
                assert (again.sent, again.unchanged) == (0, len(ids))
                returned = time.time()
                await asyncio.sleep(plan.end + 2.0 - time.time())  # past the plan's end

                new = PlanSeries("p2", ids, np.full((len(ids), 2), 0.3), time.time(), SLOT_S)
                t_apply = time.monotonic()
                assert svc.plans.apply(new).sent == len(ids)
                await until(lambda: svc.plans.pending() == 0, 5, "the new plan acknowledged")
                acked_s = time.monotonic() - t_apply
                await asyncio.sleep(1.5)
            assert recovered < 5.0
            assert acked_s < 5.0
            # the readings of the outage were lost: nobody received them
            store = Store(f"sqlite:///{db}")
            lost = store.query_telemetry(
                str(ids[0]),
                datetime.fromtimestamp(gone + 1.0, UTC),
                datetime.fromtimestamp(returned - 2.0, UTC),
            )
            kept = store.query_telemetry(
                str(ids[0]),
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(gone, UTC),
            )
            store.close()
            assert len(lost) == 0
            assert len(kept) > 0

            _check_samples(samples, twin, rows, plan, gone, returned)
        finally:
            stop_sampling.set()
            gateways.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(sim, sampler, return_exceptions=True)
            sim.cancel()

    async def bounded() -> None:
        async with asyncio.timeout(60):
            await scenario()

    asyncio.run(bounded())


def _check_samples(samples, twin, rows, plan, gone, returned) -> None:
    """Each battery step inside a slot holds the slot's setpoint; after the plan, its own."""
    step = twin.step_s
    c = twin.col[DeviceKind.BATTERY]
    b0 = twin.ks[DeviceKind.BATTERY].start
    bat = rows - b0
    site = twin.cap.site_idx
    in_plan = after = away = 0
    for t0, p, planned, soc in samples:
        k0 = np.floor((t0 - plan.start) / plan.step_s)
        k1 = np.floor((t0 + step - 1e-6 - plan.start) / plan.step_s)
        room = (soc[bat] > twin.bat_floor[bat] + 0.01) & (soc[bat] < c["soc_max"][bat] - 0.01)
        if 0 <= k0 == k1 < SLOTS and t0 + step <= plan.end:
            got = p[rows][room]
            np.testing.assert_allclose(got, VALUES[int(k0)], atol=1e-6)
            in_plan += 1
            away += int(gone < t0 < returned)
        elif t0 >= plan.end + step and t0 + step <= plan.end + 2.0:
            assert np.isnan(planned[rows]).all()  # no schedule holds any more
            net = np.bincount(site, weights=p, minlength=twin.cap.grid.n_sites)[site[rows]]
            pinned = (
                ~room
                | np.isclose(p[rows], -c["p_charge_max_kw"][bat])
                | np.isclose(p[rows], c["p_discharge_max_kw"][bat])
            )
            assert ((np.abs(net) < 1e-6) | pinned).all(), "not back on its own control"
            after += 1
    assert away >= 4  # steps checked while the service was gone
    assert in_plan >= 15
    assert after >= 2
