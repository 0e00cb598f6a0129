"""A new device kind from its declaration and its physics in the twin, and nothing else.

A variable-speed pool pump, declared here (attributes, state columns, telemetry extras,
power band) with a twin model, goes through validation, fleet files, the fleet state,
flexibility, aggregation, the dispatcher and the twin, none of which is told about it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from gridflock.dispatch import Dispatcher, TrackerConfig
from gridflock.domain import Event, EventSource, Scope, ValidationError, build_spec
from gridflock.domain.attributes import Attr
from gridflock.domain.kinds import (
    DeviceKind,
    KindDecl,
    declare_kind,
    kind_decl,
    telemetry_extras,
    withdraw_kind,
)
from gridflock.domain.messages import FloatArray
from gridflock.fleet import aggregate, flexibility
from gridflock.fleet.files import read_fleet, write_fleet
from gridflock.fleet.state import FleetState
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.models import ModelContext, register_model, unregister_model
from gridflock.sim.twin import Twin

KIND = "pool_pump"
START = pd.Timestamp("2026-07-15 10:00", tz="UTC")
STEP_S = 60.0


def pool_pump_band(
    c: dict[str, FloatArray], duration_h: float, now: float
) -> tuple[FloatArray, FloatArray]:
    """Run at any speed; pause only while the day's filtering still fits before its end."""
    need = np.nan_to_num(c["pump_need_kwh"], nan=0.0)
    t_left = np.nan_to_num(np.maximum(c["pump_deadline_ts"] - now, 0.0) / 3600.0, nan=0.0)
    p_max = c["p_load_max_kw"]
    t_eff = np.maximum(np.minimum(duration_h, t_left), 1e-9)
    after = np.maximum(t_left - duration_h, 0.0)
    p_required = np.clip((need - p_max * after) / t_eff, 0.0, p_max)
    running = t_left > 0
    base = c["baseline_kw"]
    return np.where(running, -p_max, base), np.where(running, -p_required, base)


POOL_PUMP = KindDecl(
    KIND,
    "Variable-speed pool pump: filters a daily energy before the end of its window.",
    (
        Attr("p_max_kw", "float", "kW", "Largest electrical input.", 1.5, 0.0, 10, True),
        Attr("daily_kwh", "float", "kWh", "Energy the daily filtering needs.", 6.0, 0.0, 100),
        Attr("window_h", "float", "h", "Hours from the start the filtering must end.", 8.0, 0, 24),
    ),
    columns={"p_load_max_kw": "p_max_kw"},
    extras=(
        Attr("pump_need_kwh", "float", "kWh", "filtering energy still due today"),
        Attr("pump_deadline_ts", "float", "UTC epoch s", "when today's filtering must end"),
    ),
    band=pool_pump_band,
)


class PoolPumpModel:
    """Runs at full speed from the start until the day's energy is in; obeys commands."""

    def __init__(self, table: pd.DataFrame, ctx: ModelContext) -> None:
        self.p_max = table["p_max_kw"].to_numpy(float)
        self.need = table["daily_kwh"].to_numpy(float).copy()
        self.shadow_need = self.need.copy()
        self.deadline = ctx.times[0].timestamp() + table["window_h"].to_numpy(float) * 3600
        self.dt_h = ctx.step_s / 3600.0

    def _natural(self, need: FloatArray, now: float) -> FloatArray:
        return np.where((need > 0) & (now < self.deadline), self.p_max, 0.0)

    def step(
        self, t: int, now: float, request: Callable[[FloatArray], FloatArray]
    ) -> tuple[FloatArray, FloatArray]:
        natural = self._natural(self.shadow_need, now)
        self.shadow_need = np.maximum(self.shadow_need - natural * self.dt_h, 0.0)
        asked = np.clip(-request(-self._natural(self.need, now)), 0.0, self.p_max)
        self.need = np.maximum(self.need - asked * self.dt_h, 0.0)
        return -natural, -asked

    def extras(self, now: float) -> dict[str, FloatArray]:
        return {"pump_need_kwh": self.need.copy(), "pump_deadline_ts": self.deadline.copy()}

    def soc(self) -> FloatArray | None:
        return None


@pytest.fixture
def pool_pump() -> Iterator[DeviceKind]:
    """The pool pump declared, with its twin model, for one test."""
    kind = declare_kind(POOL_PUMP)
    register_model(KIND, PoolPumpModel)
    try:
        yield kind
    finally:
        unregister_model(KIND)
        withdraw_kind(KIND)


def fleet_records(n_pool: int = 20) -> tuple[list[dict], list[dict], list[dict]]:
    nodes = [{"id": "f-1", "limit_import_kw": 1000, "limit_export_kw": 1000}]
    sites, devices = [], []
    for i in range(n_pool):
        sid = f"s{i}"
        sites.append({"id": sid, "lat": 48.1, "lon": 11.5, "grid_node": "f-1", "program": "pool"})
        devices.append({"id": f"{sid}-load", "site_id": sid, "kind": "load"})
        devices.append({"id": f"{sid}-pool", "site_id": sid, "kind": KIND, "p_max_kw": 1.5})
    sites.append({"id": "b", "lat": 48.1, "lon": 11.5, "grid_node": "f-1", "program": "other"})
    devices.append(
        {
            "id": "b-bat",
            "site_id": "b",
            "kind": "battery",
            "e_kwh": 10,
            "p_charge_max_kw": 5,
            "p_discharge_max_kw": 5,
        }
    )
    return nodes, sites, devices


def test_the_declaration_drives_validation_files_and_state(pool_pump, tmp_path):
    assert KIND in DeviceKind
    assert list(DeviceKind)[-1] == pool_pump
    assert "pump_need_kwh" in telemetry_extras()
    nodes, sites, devices = fleet_records(3)
    with pytest.raises(
        ValidationError, match="device x: p_max_kw: must be > 0 and <= 10 kW, got 0"
    ):
        build_spec(
            nodes, sites, [*devices, {"id": "x", "site_id": "s0", "kind": KIND, "p_max_kw": 0}]
        )
    spec = build_spec(nodes, sites, devices)
    assert spec.counts()[KIND] == 3
    assert spec.devices[pool_pump]["daily_kwh"].tolist() == [6.0] * 3  # declared default
    write_fleet(spec, tmp_path / "fleet.yaml")
    again = read_fleet(tmp_path / "fleet.yaml")
    pd.testing.assert_frame_equal(again.devices[pool_pump], spec.devices[pool_pump])
    state = FleetState.from_spec(spec)
    sl = state.kind_slices[pool_pump]
    assert state.p_load_max_kw[sl].tolist() == [1.5] * 3
    assert set(state.kind_columns[pool_pump]) == {
        "p_max_kw",
        "daily_kwh",
        "window_h",
        "p_load_max_kw",
    }
    assert "pump_need_kwh" in state.extras
    assert state.controllable()[sl].all()
    assert not state.follows_site[sl].any()


def test_rules_of_a_declared_kind_are_checked(pool_pump):
    withdraw_kind(KIND)
    declare_kind(
        KindDecl(**{**POOL_PUMP.__dict__, "rules": (("daily_kwh", "p_max_kw", "too much"),)})
    )
    nodes, sites, devices = fleet_records(1)
    with pytest.raises(ValidationError, match=r"daily_kwh/p_max_kw: too much \(got 6 and 1.5\)"):
        build_spec(nodes, sites, devices)
    assert kind_decl(KIND).rules


def test_a_new_kind_is_dispatched_and_delivers_through_the_twin(pool_pump):
    spec = build_spec(*fleet_records(20))
    twin = Twin(spec, START, 60, STEP_S, 7, Imperfections.ideal())
    state = FleetState.from_spec(spec)
    for _ in range(3):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
    now = twin.now
    f = flexibility(state, 0.5, now)
    sl = state.kind_slices[pool_pump]
    # 6 kWh due within 8 h at 1.5 kW: every pump may pause for half an hour
    assert f.up_kw[sl] == pytest.approx(np.full(20, 1.5))
    by_kind = aggregate(state, "kind", {"up_kw": f.up_kw}).set_index("kind")
    assert by_kind.loc[KIND, "up_kw"] == pytest.approx(30.0)

    event = Event("pool-1", 15.0, now, now + 1800, Scope("program", "pool"), EventSource.OPERATOR)
    dispatcher = Dispatcher(state, TrackerConfig(interval_s=STEP_S, command_ttl_s=3 * STEP_S))
    tracker = dispatcher.add(event)
    delivered = []
    while twin.now < now + 1800:
        for cmd in dispatcher.step(twin.now):
            twin.send(cmd)
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
        delivered.append(float((twin.p_kw[sl] - twin.natural_kw[sl]).sum()))
    assert tracker.dispatched[sl].any()
    assert np.mean(delivered[5:]) == pytest.approx(15.0, rel=0.05)  # up: 15 kW less import
