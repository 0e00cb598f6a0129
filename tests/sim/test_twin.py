"""The digital twin: device behaviour under commands, imperfections, and its shadow."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import CommandBatch, DeviceKind
from gridflock.fleet.generate import generate_fleet
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.scenario import ScenarioConfig, undispatched_net_kw
from gridflock.sim.twin import Twin

START = pd.Timestamp("2026-07-15 16:00", tz="Europe/Berlin").tz_convert("UTC")


@pytest.fixture(scope="module")
def spec():
    return generate_fleet(150, 11)


def commands(twin, ids, setpoint, until, seq=1):
    n = len(ids)
    return CommandBatch(
        np.array([f"c{seq}-{i}" for i in range(n)], dtype=object),
        np.asarray(ids, dtype=object),
        np.full(n, float(setpoint)),
        np.full(n, float(until)),
        np.full(n, seq, dtype=np.int64),
        twin.now,
    )


def test_readings_come_in_one_batch_per_kind_with_every_device(spec):
    twin = Twin(spec, START, 10, 60, 1, Imperfections.ideal())
    twin.step()
    batches = twin.receive()
    assert sum(len(b) for b in batches) == spec.n_devices
    assert twin.receive() == []
    for b in batches:
        assert np.isfinite(b.p_kw).all()  # ideal: no dropouts
        assert (b.ts == twin.now).all()


def test_batteries_follow_commands_until_they_expire(spec):
    twin = Twin(spec, START, 30, 60, 1, Imperfections.ideal())
    twin.step()
    s = twin.cap.kind_slices[DeviceKind.BATTERY]
    ids = twin.cap.device_ids[s]
    twin.send(commands(twin, ids, 1.5, twin.now + 300))
    for _ in range(3):
        twin.step()
    soc = twin.real.soc
    holding = soc > twin.bat_floor + 0.05
    assert np.allclose(twin.p_kw[s][holding], 1.5)
    for _ in range(5):  # past valid_until: back to self-consumption, the shadow's choice
        twin.step()
    assert not np.isfinite(twin.cur_sp[s]).any()


def test_replayed_and_expired_commands_are_refused(spec):
    twin = Twin(spec, START, 10, 60, 1, Imperfections.ideal())
    twin.step()
    s = twin.cap.kind_slices[DeviceKind.BATTERY]
    ids = twin.cap.device_ids[s][:3]
    twin.send(commands(twin, ids, 1.0, twin.now + 300, seq=5))
    twin.send(commands(twin, ids, 2.0, twin.now + 300, seq=4))  # older sequence: a replay
    twin.send(commands(twin, ids, 2.0, twin.now - 1, seq=6))  # already expired
    assert twin.acks.accepted == 3
    assert twin.acks.replayed == 3
    assert twin.acks.expired == 3
    assert np.allclose(twin.pend_sp[twin.cap.indices(ids)], 1.0)


def test_imperfections_drop_readings_and_silence_devices(spec):
    imp = Imperfections(
        latency_median_s=0,
        latency_sigma=0,
        dropout_rate=0.2,
        offline_rate=0.5,
        ignore_rate=0,
        noise_kw=0,
    )
    twin = Twin(spec, START, 120, 60, 2, imp)
    lost = []
    for _ in range(120):
        twin.step()
        lost.append(np.isnan(np.concatenate([b.p_kw for b in twin.receive()])).mean())
    assert 0.15 < lost[0] < 0.3
    assert lost[-1] > 0.35  # by now a good part of the devices went offline


def test_shadow_is_the_undispatched_fleet(spec):
    """The counterfactual the M&V uses equals a separate run of the twin left alone."""
    cfg = ScenarioConfig(date=dt.date(2026, 7, 15), hours=3, start_hour=17, seed=4)
    alone = undispatched_net_kw(spec, cfg)
    twin = Twin(
        spec,
        pd.Timestamp("2026-07-15 17:00", tz="Europe/Berlin").tz_convert("UTC"),
        len(alone),
        60,
        4,
        cfg.imperfections,
    )
    s = twin.cap.kind_slices[DeviceKind.BATTERY]
    shadow = []
    for t in range(len(alone)):
        twin.step()
        twin.receive()
        if t == 5:  # dispatch all batteries hard; the shadow must not notice
            twin.send(commands(twin, twin.cap.device_ids[s], 4.0, twin.now + 3600))
        shadow.append(twin.natural_kw.sum())
    assert np.allclose(shadow, alone, rtol=1e-9, atol=1e-6)
    assert not np.allclose(twin.p_kw.sum(), shadow[-1])


def test_pv_follows_the_sun_and_heat_pumps_cool_on_a_hot_day(spec):
    twin = Twin(
        spec,
        pd.Timestamp("2026-07-15 00:00", tz="Europe/Berlin").tz_convert("UTC"),
        24 * 4,
        900,
        3,
        Imperfections.ideal(),
    )
    pv, hp = (twin.cap.kind_slices[k] for k in (DeviceKind.PV, DeviceKind.HEAT_PUMP))
    out, hp_p = [], []
    for _ in range(24 * 4):
        twin.step()
        out.append(twin.p_kw[pv].sum())
        hp_p.append(-twin.p_kw[hp].sum())
    out = np.array(out)
    assert out[:12].max() == 0  # 00:00-03:00 local: dark
    assert np.argmax(out) in range(40, 60)  # around solar noon (13:30 local)
    assert max(hp_p[56:72]) > max(hp_p[16:28])  # afternoon cooling beats early morning
    t_in = twin.real.t_in
    cols = twin.cap.kind_columns[DeviceKind.HEAT_PUMP]
    cools = cols["can_cool"] > 0.5  # reversible heat pumps keep the house inside the band
    assert (t_in[cools] < cols["t_max_c"][cools] + 0.5).all()
