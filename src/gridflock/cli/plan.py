"""``gridflock plan``: an optimal plan of a fleet for a day, with a tariff.

The forecasts are the twin's own models for the day (its seeded weather, PV through
pvlib, the BDEW H25 household load shape, hot-water draw shape, the twin's heat gains and
COP): what the twin expects, not what it will draw at random. Prints a summary and writes
``plan.parquet`` (one row per device and step), ``summary.json`` and ``plot.png``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gridflock.cli._app import DEFAULT_DATE, _load_fleet, _problems, app, err, fail, out

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gridflock.domain import FleetSpec
    from gridflock.optimize import Plan, SiteForecasts, Tariff


def model_forecasts(spec: FleetSpec, times: pd.DatetimeIndex, seed: int) -> SiteForecasts:
    """Per-site forecasts over ``times`` from the twin's models (expected values)."""
    import numpy as np
    import pandas as pd

    from gridflock.domain.kinds import DeviceKind
    from gridflock.optimize import SiteForecasts
    from gridflock.sim import physics
    from gridflock.sim.profiles import household_load_shape
    from gridflock.sim.weather import make_weather

    sites = spec.sites
    n, t = len(sites), len(times)
    pos = pd.Index(sites["id"])
    lat = float(sites["lat"].mean()) if n else 0.0
    lon = float(sites["lon"].mean()) if n else 0.0
    tz = str(sites["tz"].iloc[0]) if n else "UTC"
    weather = make_weather(times, lat, lon, seed)

    def per_site(df: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        out_ = np.zeros((n, t))
        if len(df):
            np.add.at(out_, pos.get_indexer(df["site_id"]), values)
        return out_

    load_df = spec.devices.get(DeviceKind.LOAD, pd.DataFrame())
    shape = household_load_shape(times, tz=tz)
    load = per_site(load_df, load_df["annual_kwh"].to_numpy(float)[:, None] * shape[None, :])
    pv_df = spec.devices.get(DeviceKind.PV, pd.DataFrame())
    pv = np.zeros((n, t))
    if len(pv_df):
        profiles, bins = physics.pv_profiles(
            weather,
            pv_df["tilt_deg"].to_numpy(float),
            pv_df["azimuth_deg"].to_numpy(float),
            lat,
            lon,
        )
        scale = (pv_df["kwp"] * (1 - pv_df["loss_fraction"])).to_numpy(float)
        pv = per_site(pv_df, scale[:, None] * profiles[:, bins].T)
    wh_df = spec.devices.get(DeviceKind.WATER_HEATER, pd.DataFrame())
    draw = physics.water_draw_profile(times, tz)
    hot = (
        per_site(wh_df, wh_df["daily_draw_kwh"].to_numpy(float)[:, None] * draw[None, :])
        if len(wh_df)
        else np.zeros((n, t))
    )
    t_out = np.asarray(weather.temp_air_c, dtype=float)
    gain = 0.3 + 1.2 * np.asarray(weather.ghi, dtype=float) / 1000.0  # the twin's house gains
    hp_df = spec.devices.get(DeviceKind.HEAT_PUMP, pd.DataFrame())
    nominal = np.full(n, 3.5)
    if len(hp_df):
        nominal[pos.get_indexer(hp_df["site_id"])] = hp_df["cop_nominal"].to_numpy(float)
    heating = t_out < 18.0
    cop = physics.cop(t_out[None, :], nominal[:, None], np.broadcast_to(heating, (n, t)))
    return SiteForecasts(
        load_kw=load,
        pv_kw=pv,
        wind_kw=np.zeros((n, t)),
        t_out_c=t_out,
        gain_kw=np.broadcast_to(gain, (n, t)).copy(),
        hot_water_kw=hot,
        cop=cop,
    )


def _tariff(
    kind: str,
    n_sites: int,
    local_h: np.ndarray,
    price: float,
    export: float,
    peak: float,
    prices: Path | None,
) -> Tariff:
    import numpy as np
    import pandas as pd

    from gridflock.optimize import Tariff

    if prices is not None:
        try:
            table = pd.read_csv(prices)
            imp = table["import_price"].to_numpy(float)
            exp = (
                table["export_price"].to_numpy(float)
                if "export_price" in table
                else (np.full(len(imp), export))
            )
        except (OSError, KeyError, ValueError) as e:
            fail(f"--prices {prices}: {e}; give a CSV with an import_price column [EUR/kWh]")
        if len(imp) != len(local_h):
            fail(f"--prices {prices}: {len(imp)} prices for {len(local_h)} steps")
        return Tariff.dynamic(imp, exp, n_sites, peak_price_per_kw=peak)
    if kind == "flat":
        return Tariff.flat(n_sites, len(local_h), price, export, peak_price_per_kw=peak)
    return Tariff.time_of_use(
        n_sites,
        local_h,
        [(17, 21, price * 1.6), (0, 6, price * 0.6)],
        price,
        export,
        peak_price_per_kw=peak,
    )


def _plot(plan: Plan, prices: np.ndarray, path: Path) -> None:
    import matplotlib
    import numpy as np
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = pd.to_datetime(plan.step_ts, unit="s", utc=True)
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for kind, series in plan.kind_totals_kw().items():
        axes[0].step(ts, series, where="post", label=kind)
    axes[0].step(ts, plan.site_net_kw.sum(axis=0), where="post", color="k", lw=2, label="net")
    axes[0].set_ylabel("fleet power [kW]\n(> 0 to the grid)")
    axes[0].legend(ncol=4, fontsize=8)
    if len(plan.soc):
        axes[1].plot(
            pd.to_datetime(
                plan.start_ts + np.arange(plan.n_steps + 1) * plan.step_h * 3600, unit="s", utc=True
            ),
            plan.soc.mean(axis=0),
        )
    axes[1].set_ylabel("mean battery SoC [1]")
    axes[2].step(ts, prices, where="post")
    axes[2].set_ylabel("import price [EUR/kWh]")
    axes[2].set_xlabel("UTC")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@app.command()
def plan(
    homes: Annotated[
        int,
        typer.Option(min=1, max=200_000, help="Homes in a generated fleet (ignored with --fleet)."),
    ] = 200,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file to plan instead.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated fleet and the weather.")] = 7,
    date: Annotated[
        str, typer.Option(help="Local date the plan starts (YYYY-MM-DD).")
    ] = DEFAULT_DATE.isoformat(),
    start_hour: Annotated[
        float, typer.Option(min=0, max=23.75, help="Local hour the plan starts [h].")
    ] = 12.0,
    steps: Annotated[int, typer.Option(min=1, max=7 * 96, help="Steps of 15 minutes.")] = 96,
    tariff: Annotated[
        str, typer.Option(help="flat, or tou (x1.6 from 17 to 21 h, x0.6 from 0 to 6 h).")
    ] = "tou",
    price: Annotated[float, typer.Option(help="Import price [EUR/kWh].")] = 0.30,
    export_price: Annotated[float, typer.Option(help="Export price [EUR/kWh].")] = 0.08,
    prices: Annotated[
        Path | None,
        typer.Option(help="CSV of 15-minute prices (import_price[, export_price]) [EUR/kWh]."),
    ] = None,
    peak_price: Annotated[
        float, typer.Option(min=0, help="Peak charge per site [EUR per kW of highest import].")
    ] = 0.0,
    wear: Annotated[float, typer.Option(min=0, help="Battery wear [EUR/kWh throughput].")] = 0.02,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/plan"),
) -> None:
    """Plan every device of a fleet for a day at the least cost (exact LP, HiGHS)."""
    import numpy as np
    import pandas as pd

    from gridflock.domain import ValidationError
    from gridflock.optimize import PlanInfeasibleError, build_problem, solve

    if tariff not in ("flat", "tou"):
        fail(f"--tariff must be flat or tou, got {tariff!r}")
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail(f"--date must be YYYY-MM-DD, got {date!r}")
    spec = _load_fleet(fleet, homes, seed)
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    start = pd.Timestamp(day, tz=tz) + pd.Timedelta(hours=start_hour)
    times = pd.date_range(start.tz_convert("UTC"), periods=steps, freq="15min")
    local_h = (times.tz_convert(tz).hour + times.tz_convert(tz).minute / 60.0).to_numpy(float)
    with out.status("forecasting from the twin's models..."):
        fc = model_forecasts(spec, times, seed)
    tar = _tariff(tariff, len(spec.sites), local_h, price, export_price, peak_price, prices)
    try:
        pb = build_problem(
            spec,
            start.timestamp(),
            fc,
            tar,
            n_steps=steps,
            wear_per_kwh=wear,
            thermal_best_effort=True,
        )
        with out.status(f"planning {len(spec.sites):,} sites with HiGHS..."):
            result = solve(pb)
    except PlanInfeasibleError as e:
        err.print("[bold red]error:[/] " + escape(str(e)), highlight=False)
        raise typer.Exit(2) from e
    except ValidationError as e:
        _problems(e, wrote="")
    o = result.objective
    table = Table(title="Plan", title_justify="left", show_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in (
        ("sites", f"{pb.n_sites:,}"),
        ("devices", f"{pb.n_devices:,}"),
        ("steps", f"{steps} x 15 min from {start.isoformat()}"),
        ("status", result.status),
        ("energy cost [EUR]", f"{o.energy_cost:,.2f}"),
        ("peak charge [EUR]", f"{o.peak_charge:,.2f}"),
        ("battery wear [EUR]", f"{o.wear_cost:,.2f}"),
        ("curtailment [EUR]", f"{o.curtailment_cost:,.4f}"),
        ("objective [EUR]", f"{o.total:,.2f}"),
        ("fleet peak import [kW]", f"{max(0.0, float(-result.site_net_kw.sum(0).min())):,.1f}"),
        ("solve [s]", f"{result.timings_s.get('total_s', 0.0):.2f}"),
    ):
        table.add_row(escape(label), value)
    out.print(table)
    for w in result.warnings[:10]:
        err.print(f"warning: {w}", highlight=False, markup=False)
    if len(result.warnings) > 10:
        err.print(f"warning: ... and {len(result.warnings) - 10} more", highlight=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.to_frame().to_parquet(out_dir / "plan.parquet", index=False)
    summary = {
        "start": start.isoformat(),
        "steps": steps,
        "sites": pb.n_sites,
        "devices": pb.n_devices,
        "status": result.status,
        "objective_eur": o.total,
        "energy_cost_eur": o.energy_cost,
        "peak_charge_eur": o.peak_charge,
        "wear_cost_eur": o.wear_cost,
        "curtailment_cost_eur": o.curtailment_cost,
        "timings_s": result.timings_s,
        "stats": result.stats,
        "warnings": [str(w) for w in result.warnings],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(
        result,
        tar.import_price.mean(axis=0) if pb.n_sites else np.zeros(steps),
        out_dir / "plot.png",
    )
    out.print(
        f"wrote {out_dir / 'plan.parquet'}, {out_dir / 'summary.json'}, {out_dir / 'plot.png'}"
    )
