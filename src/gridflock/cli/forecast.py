"""``gridflock forecast``: generate twin history to a file, and backtest forecasts on a file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridflock.cli._app import _load_fleet, app, err, fail, out

if TYPE_CHECKING:
    from gridflock.forecast import BacktestReport

forecast_app = typer.Typer(
    help="Forecasts: generate twin history to a file, backtest the models on any file.",
    no_args_is_help=True,
)
app.add_typer(forecast_app, name="forecast")

_SHOWN = (
    ("mae", "MAE", "{:.3f}"),
    ("nmae", "nMAE", "{:.1%}"),
    ("rmse", "RMSE", "{:.3f}"),
    ("crps", "CRPS", "{:.3f}"),
    ("coverage", "P10-P90 cov.", "{:.0%}"),
    ("skill_seasonal_naive", "skill vs week", "{:+.0%}"),
    ("skill_persistence", "skill vs persist.", "{:+.0%}"),
    ("peak_within_30min", "peak ±30 min", "{:.0%}"),
)


def _write_table(frame: object, path: Path) -> None:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, float_format="%.4f")


@forecast_app.command()
def simulate(
    out_file: Annotated[
        Path, typer.Option("--out", help="File to write: .csv or .parquet.")
    ] = Path("twin-history.csv"),
    homes: Annotated[
        int, typer.Option(min=1, max=200_000, help="Homes in a generated fleet.")
    ] = 200,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file to simulate instead.")] = None,
    days: Annotated[float, typer.Option(min=1, max=800, help="Length [days].")] = 56,
    start: Annotated[str, typer.Option(help="First day (UTC date, YYYY-MM-DD).")] = "2026-01-05",
    seed: Annotated[int, typer.Option(help="Random seed of fleet, weather and twin.")] = 1,
    per_site: Annotated[
        bool,
        typer.Option(
            help="Write one row per site and quarter hour (columns: timestamp, site_id, and "
            "each quantity) instead of fleet totals with weather."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run the twin over weeks at 15 minutes and write its history [kW, generator sign].

    By default: one row per quarter hour with the fleet's total per quantity (load, pv,
    wind, heat_pump, water_heater, ev, battery, net; load negative, PV positive) and the
    weather (ghi, temp_air_c, wind_speed_m_s, cloud_factor) -- a file ``forecast backtest``
    reads as is.
    """
    import numpy as np
    import pandas as pd

    from gridflock.sim.history import twin_history

    try:
        first = pd.Timestamp(start, tz="UTC")
    except ValueError:
        fail(f"--start {start!r} is not a date; use YYYY-MM-DD")
    spec = _load_fleet(fleet, homes, seed)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} days"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task("twin", total=math.ceil(days))

        def tick(done: int, _total: int) -> None:
            bar.update(task, completed=done // 96)

        history, weather = twin_history(spec, first, days, seed, progress=tick)
    times = history.times
    if per_site:
        n, t = history.n_sites, len(times)
        frame = pd.DataFrame(
            {
                "timestamp": np.tile(times, n),
                "site_id": np.repeat(history.sites.ids, t),
                **{q: v.ravel() for q, v in history.series.items()},
            }
        )
    else:
        frame = pd.DataFrame({"timestamp": times})
        for q, v in history.series.items():
            frame[q] = v.sum(axis=0)
        for c in ("ghi", "temp_air_c", "wind_speed_m_s", "cloud_factor"):
            frame[c] = getattr(weather, c)
    _write_table(frame, out_file)
    out.print(
        f"wrote {out_file}: {history.n_sites:,} sites, {len(times):,} quarter hours "
        f"({times[0]:%Y-%m-%d} to {times[-1]:%Y-%m-%d %H:%M} UTC)",
        highlight=False,
    )


@forecast_app.command()
def backtest(
    data: Annotated[
        Path,
        typer.Option(
            help="CSV or parquet: a timestamp column, one or more value columns (mean power, "
            "e.g. kW) and optional weather columns (ghi [W/m2], temp_air_c [degC], "
            "wind_speed_m_s [m/s]). See docs/forecast.md."
        ),
    ],
    timestamp: Annotated[
        str | None, typer.Option(help="Name of the time column (default: found by name).")
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(help="Time zone of times without offset and of the local calendar."),
    ] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude [deg], for solar geometry.")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude [deg], for solar geometry.")] = None,
    country: Annotated[
        str, typer.Option(help="ISO country code for public holidays (e.g. DE, NL).")
    ] = "",
    weather_forecasts: Annotated[
        Path | None,
        typer.Option(
            help="Recorded weather forecasts (issued_at, valid_at, columns) to use instead "
            "of the data file's weather actuals."
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(help="Comma-separated value columns to test (default: every one)."),
    ] = None,
    test_days: Annotated[int, typer.Option(min=1, help="Final days held out and tested.")] = 14,
    retrain_every: Annotated[int, typer.Option(min=1, help="Retrain every N test days.")] = 7,
    horizons: Annotated[
        str, typer.Option(help="Comma-separated: day_ahead, intraday.")
    ] = "day_ahead,intraday",
    rounds: Annotated[int, typer.Option(min=5, help="Boosting rounds per model.")] = 80,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Series trained side by side in threads (default: one per core, up to 4)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the scores as JSON here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of the day-ahead quantiles vs actuals.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Rolling-origin backtest (day-ahead and intraday) of every value column of a file.

    Per series and horizon: MAE, nMAE, RMSE, pinball loss / CRPS, P10-P90 coverage, daily
    peak timing, and skill against seasonal naive (same time last week) and persistence.
    """
    from gridflock.forecast import (
        BacktestConfig,
        BadFileError,
        TrainConfig,
        WeatherSource,
        read_series_file,
        read_weather_forecasts,
    )
    from gridflock.forecast import backtest as run_backtest

    chosen = tuple(h.strip() for h in horizons.split(",") if h.strip())
    if not chosen or set(chosen) - {"day_ahead", "intraday"}:
        fail(f"--horizons {horizons!r}: use day_ahead, intraday or both (comma-separated)")
    if (lat is None) != (lon is None):
        fail("give both --lat and --lon, or neither")
    try:
        found = read_series_file(
            data,
            timestamp=timestamp,
            tz=tz,
            lat=lat if lat is not None else float("nan"),
            lon=lon if lon is not None else float("nan"),
            country=country.upper(),
        )
        weather: WeatherSource = found.weather
        if weather_forecasts is not None:
            weather = read_weather_forecasts(weather_forecasts, tz=tz)
    except BadFileError as e:
        err.print(f"[bold red]error:[/] {e.path}: {len(e.problems)} problem(s):", highlight=False)
        for p in e.problems:
            err.print(f"  - {p}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    for note in found.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    picked: tuple[str, ...] | None = None
    if columns is not None:
        picked = tuple(c.strip() for c in columns.split(",") if c.strip())
        unknown = [c for c in picked if c not in found.history.series]
        if unknown or not picked:
            fail(
                f"--columns {columns!r}: no value column {unknown} in {data}; it has "
                f"{list(found.history.quantities)}"
            )
    cfg = BacktestConfig(
        test_days=test_days,
        retrain_every_days=retrain_every,
        horizons=chosen,
        train=TrainConfig(
            quantities=picked,
            num_boost_round=rounds,
            calibration_days=min(7, max(test_days, 2)),
            workers=workers or min(4, os.cpu_count() or 1),
        ),
    )
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} test days"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        task = bar.add_task("training", total=test_days)

        def progress(phase: str, done: int, total: int) -> None:
            desc = "training" if phase == "train" else "forecasting"
            bar.update(task, completed=done, total=total, description=desc)

        try:
            report = run_backtest(found.history, weather, cfg, progress)
        except ValueError as e:
            fail(f"{data}: {e}")
    _print_report(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        doc = report.to_json() | {"file": str(data), "file_notes": found.notes}
        json_out.write_text(json.dumps(doc, indent=2))
        out.print(f"wrote {json_out}", highlight=False)
    if plot is not None:
        plot_report(report, plot)
        out.print(f"wrote {plot}", highlight=False)


def _print_report(report: BacktestReport) -> None:
    table = Table(title="Rolling-origin backtest", title_justify="left")
    table.add_column("series")
    table.add_column("horizon")
    for _, label, _ in _SHOWN:
        table.add_column(label, justify="right")
    for r in report.results:
        cells = []
        for key, _, fmt in _SHOWN:
            v = r.metrics.get(key, float("nan"))
            cells.append("-" if not math.isfinite(v) else fmt.format(v))
        table.add_row(r.series, r.horizon, *cells)
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, markup=False)


def plot_report(report: BacktestReport, path: Path, max_series: int = 6) -> None:
    """PNG of each plotted series: actual against the median and the outer quantile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in report.results if len(r.y)][:max_series]
    n = max(len(shown), 1)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), squeeze=False)
    qs = report.quantiles
    mid = qs.index(0.5)
    for ax, r in zip(axes[:, 0], shown, strict=False):
        ax.fill_between(
            r.times, r.p[:, 0], r.p[:, -1], step="post", alpha=0.3,
            label=f"P{round(qs[0] * 100)}-P{round(qs[-1] * 100)}",
        )  # fmt: skip
        ax.step(r.times, r.p[:, mid], where="post", lw=1.0, label="P50")
        ax.step(r.times, r.y, where="post", lw=0.8, color="black", label="actual")
        skill = r.metrics.get("skill_seasonal_naive", float("nan"))
        ax.set_title(
            f"{r.series}, {r.horizon}: nMAE {r.metrics['nmae']:.1%}, skill vs last week "
            f"{skill:+.0%}, coverage {r.metrics['coverage']:.0%}",
            fontsize=9,
        )
        ax.legend(loc="upper right", fontsize=7)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no day-ahead series to plot", ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
