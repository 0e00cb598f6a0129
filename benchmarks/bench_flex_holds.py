"""Does promised flexibility hold in the twin? Every device commanded to its promise, held.

    python benchmarks/bench_flex_holds.py [--homes 2000] [--hold-h 2] [--start-hour 14]

A generated fleet runs in the digital twin (ideal devices and network) on a hot July day;
at ``--start-hour`` local every battery, EV charger, heat pump and water heater is
commanded to ``baseline + up`` (then, on a fresh twin, ``baseline - down``) for the
promised hold. Reported per kind: the power delivered against the baseline as a share of
the promise (mean over the hold), and the share of devices that left their limits
(comfort or tank band by more than 0.05 K).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import CommandBatch
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.twin import Twin

KINDS = ("battery", "ev_charger", "heat_pump", "water_heater")
STEP_S = 60.0
WARM = 60  # an hour, past the twin's start-up transients (thermostats settling)


def run(spec, start: pd.Timestamp, hold_h: float, up: bool) -> dict[str, tuple[float, float]]:
    """Per kind: (delivered / promised, share of commanded devices that left their band)."""
    steps = WARM + int(hold_h * 3600 / STEP_S)
    twin = Twin(spec, start, steps, STEP_S, 3, Imperfections.ideal())
    state = FleetState.from_spec(spec)
    for _ in range(WARM):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
    now = twin.now
    f = flexibility(state, hold_h, now)
    move = f.up_kw if up else -f.down_kw
    cmd = np.zeros(state.n, bool)
    for k in KINDS:
        cmd[state.kind_slices[DeviceKind(k)]] = True
    cmd &= np.abs(move) > 0.01
    rows = np.flatnonzero(cmd)
    twin.send(
        CommandBatch(
            np.array([f"c{i}" for i in rows], dtype=object),
            state.device_ids[rows],
            (f.baseline_kw + move)[rows],
            np.full(len(rows), now + hold_h * 3600),
            np.ones(len(rows), np.int64),
            now,
        )
    )
    delivered = np.zeros(state.n)
    left = np.zeros(state.n, bool)
    hp, wh = state.kind_slices[DeviceKind.HEAT_PUMP], state.kind_slices[DeviceKind.WATER_HEATER]
    hp_c, wh_c = spec.devices[DeviceKind.HEAT_PUMP], spec.devices[DeviceKind.WATER_HEATER]
    hp_lo, hp_hi = hp_c["t_min_c"].to_numpy(float), hp_c["t_max_c"].to_numpy(float)
    wh_lo, wh_hi = wh_c["t_min_c"].to_numpy(float), wh_c["t_max_c"].to_numpy(float)
    hp_in = (twin.real.t_in >= hp_lo) & (twin.real.t_in <= hp_hi)
    wh_in = (twin.real.t_tank >= wh_lo) & (twin.real.t_tank <= wh_hi)
    while not twin.done:
        twin.step()
        delivered += (twin.p_kw - twin.natural_kw) / (steps - WARM)
        t_in, t_tank = twin.real.t_in, twin.real.t_tank
        left[hp] |= hp_in & ((t_in < hp_c["t_min_c"] - 0.05) | (t_in > hp_c["t_max_c"] + 0.05))
        left[wh] |= wh_in & ((t_tank < wh_c["t_min_c"] - 0.05) | (t_tank > wh_c["t_max_c"] + 0.05))
    out = {}
    for k in KINDS:
        sl = state.kind_slices[DeviceKind(k)]
        c = cmd[sl]
        promised = move[sl][c].sum()
        share = delivered[sl][c].sum() / promised if abs(promised) > 1e-9 else float("nan")
        out[k] = (share, float(left[sl][c].mean()) if c.any() else float("nan"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--homes", type=int, default=2000)
    p.add_argument("--hold-h", type=float, default=2.0)
    p.add_argument("--start-hour", type=float, default=14.0)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    spec = generate_fleet(args.homes, args.seed)
    tz = str(spec.sites["tz"].iloc[0])
    start = (pd.Timestamp("2026-07-15", tz=tz) + pd.Timedelta(hours=args.start_hour)).tz_convert(
        "UTC"
    ) - pd.Timedelta(seconds=WARM * STEP_S)
    print(f"{args.homes} homes, hold {args.hold_h} h from {args.start_hour:g}:00 local, ideal twin")
    print(f"{'kind':<14}{'dir':<6}{'delivered/promised':>20}{'left band':>12}")
    for up in (True, False):
        for k, (share, left) in run(spec, start, args.hold_h, up).items():
            print(f"{k:<14}{'up' if up else 'down':<6}{share:>19.1%}{left:>12.1%}")


if __name__ == "__main__":
    main()
