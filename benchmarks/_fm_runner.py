"""Run FlexMeasures' device_scheduler on batteries given in an .npz (in FlexMeasures' venv).

    /work/venv-fm/bin/python benchmarks/_fm_runner.py IN.npz OUT.npz SOLVER

Not a project module: it runs in a separate virtual environment with ``flexmeasures``
installed and imports nothing of Gridflock. One battery with a fixed net load (load - PV)
behind a site limit per call, prices as one flow commitment (consumption at the import
price, production at the export price), 15-minute steps; stock in kW-steps.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from flask import Flask
from flexmeasures.data.models.planning.linear_optimization import device_scheduler


def main() -> None:
    src, dst, solver = sys.argv[1], sys.argv[2], sys.argv[3]
    d = np.load(src)
    n, t = d["net_load"].shape
    dt = float(d["dt"])
    idx = pd.date_range("2026-06-15 10:00", periods=t, freq="15min", tz="UTC")
    app = Flask("bench")
    app.config["FLEXMEASURES_LP_SOLVER"] = solver
    app.config["LOGGING_LEVEL"] = "INFO"  # FlexMeasures then silences the HiGHS log
    powers = np.zeros((n, t))
    costs = np.zeros(n)
    times = np.zeros(n)
    with app.app_context():
        for i in range(n):
            e_steps = d["e_kwh"][i] / dt  # stock in kW-steps: a flow of 1 kW for one step
            soc0 = d["soc0"][i]
            bat = pd.DataFrame(
                {
                    "min": (d["soc_floor"][i] - soc0) * e_steps,
                    "max": (d["soc_max"][i] - soc0) * e_steps,
                    "equals": np.nan,
                    "derivative min": -d["p_dis"][i],
                    "derivative max": d["p_ch"][i],
                    "derivative equals": np.nan,
                    "derivative down efficiency": d["eta_d"][i],
                    "derivative up efficiency": d["eta_c"][i],
                    "efficiency": 1.0,
                    "stock delta": 0.0,
                },
                index=idx,
            )
            inflex = pd.DataFrame(
                {
                    "min": np.nan,
                    "max": np.nan,
                    "equals": np.nan,
                    "derivative min": np.nan,
                    "derivative max": np.nan,
                    "derivative equals": d["net_load"][i],
                    "derivative down efficiency": 1.0,
                    "derivative up efficiency": 1.0,
                    "efficiency": 1.0,
                    "stock delta": 0.0,
                },
                index=idx,
            )
            ems = pd.DataFrame(
                {"derivative max": d["imp_lim"][i], "derivative min": -d["exp_lim"][i]},
                index=idx,
            )
            t0 = time.perf_counter()
            planned, cost, _, _ = device_scheduler(
                [bat, inflex],
                ems,
                commitment_quantities=[pd.Series(0.0, index=idx)],
                commitment_downwards_deviation_price=[pd.Series(d["pe"] * dt, index=idx)],
                commitment_upwards_deviation_price=[pd.Series(d["pi"] * dt, index=idx)],
                initial_stock=[soc0 * e_steps, 0.0],
            )
            times[i] = time.perf_counter() - t0
            powers[i] = planned[0].to_numpy(dtype=float)
            costs[i] = cost
    np.savez(dst, powers=powers, costs=costs, times=times)


if __name__ == "__main__":
    main()
