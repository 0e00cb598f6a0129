"""``gridflock simulate``: the digital twin over a day, with and without the VPP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gridflock.cli._app import (
    DEFAULT_DATE,
    Dropout,
    Ideal,
    Ignore,
    Latency,
    Noise,
    Offline,
    _load_fleet,
    app,
    err,
    fail,
    imperfections,
    out,
)

if TYPE_CHECKING:
    from gridflock.sim.scenario import ScenarioResult
    from gridflock.store import Store


def _parse_step(text: str) -> float:
    from gridflock.sim.events import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        fail(f"--step: {e}")


@app.command()
def simulate(
    homes: Annotated[
        int,
        typer.Option(
            min=1, max=2_000_000, help="Homes in a generated fleet (ignored with --fleet)."
        ),
    ] = 1000,
    fleet: Annotated[Path | None, typer.Option(help="Fleet file to simulate instead.")] = None,
    date: Annotated[
        str, typer.Option(help="Local date of the day to simulate (YYYY-MM-DD).")
    ] = DEFAULT_DATE.isoformat(),
    hours: Annotated[
        float, typer.Option(min=0.1, max=24 * 14, help="Length of the window [h].")
    ] = 24.0,
    start_hour: Annotated[
        float, typer.Option(min=0, max=23.99, help="Local hour the window starts at.")
    ] = 0.0,
    step: Annotated[str, typer.Option(help="Time step: 1m, 30s, 5m, or seconds.")] = "1m",
    seed: Annotated[int, typer.Option(help="Random seed of fleet, weather and faults.")] = 7,
    event: Annotated[
        list[str] | None,
        typer.Option(
            help="START,DURATION,KW[,SCOPE], repeatable. START local HH:MM or ISO 8601; "
            "DURATION 2h/90m/seconds; KW relative to baseline, negative to absorb; SCOPE "
            "fleet, grid_node:ID, program:TAG or region:TAG. Default: one event on the "
            "evening peak."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Database URL to store fleet, events, commands and sampled telemetry "
            "(sqlite:///file.db or postgresql://...)."
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Folder for summary.json, plot.png and timeseries.parquet."),
    ] = Path("out/simulate"),
    latency: Latency = 3.0,
    dropout: Dropout = 0.02,
    offline: Offline = 0.01,
    ignore: Ignore = 0.02,
    noise: Noise = 0.02,
    ideal: Ideal = False,
    merit_order: Annotated[
        bool,
        typer.Option(
            help="Dispatch the cheapest devices first (cost_per_kwh) instead "
            "of an equal share of every device's headroom."
        ),
    ] = False,
    settle_days: Annotated[
        int,
        typer.Option(
            min=0,
            max=120,
            help="Also settle each event as a utility would, from meter data alone: simulate "
            "this many days before --date without events (15-min steps) as the meter "
            "history the baselines need (35 gives every method its placebo days; 0: no "
            "statement). Statements go to --out as statement-<event>.json/.csv.",
        ),
    ] = 0,
    method: Annotated[
        str | None,
        typer.Option(help="Baseline method of the statements (default: the recommended one)."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    autopilot: Annotated[
        bool,
        typer.Option(
            help="Compare three ways over --days from --date: no VPP, the default evening "
            "event each day (manual), and the autopilot (plans from forecasts issued before "
            "the fact). Writes summary.json, plot.png and timeseries.parquet to --out."
        ),
    ] = False,
    days: Annotated[int, typer.Option(min=1, max=31, help="Days to compare with --autopilot.")] = 7,
    tariff: Annotated[
        str,
        typer.Option(
            help="Tariff the costs are counted in (--autopilot): tou (0.18/0.28/0.42 EUR/kWh "
            "at 0-7/7-16 and 21-24/16-21 h local), flat (0.30 EUR/kWh) or dynamic (--prices)."
        ),
    ] = "tou",
    prices: Annotated[
        Path | None,
        typer.Option(
            help="CSV of dynamic prices for --tariff dynamic: columns ts (ISO 8601 with "
            "offset) and eur_per_kwh, each held until the next row."
        ),
    ] = None,
    peak_limit: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Peak-shaving limit on the fleet's net import [kW] for the autopilot; "
            "default: as low as the storage allows.",
        ),
    ] = None,
    frequency_event: Annotated[
        str | None,
        typer.Option(
            help="Instead of a day: the fleet's local fast frequency response to a grid "
            "frequency event, a step to a frequency in Hz (e.g. 49.5) or loss-of-infeed / "
            "loss-of-demand; start and full-response times against UK Dynamic Containment "
            "(0.5 s / 1 s) and Very Fast FCAS (1 s). Writes ffr-summary.json and ffr-plot.png."
        ),
    ] = None,
) -> None:
    """Run the digital twin over a day with and without the VPP; report what it delivered."""
    if frequency_event is not None:
        _frequency_event(homes, fleet, date, seed, frequency_event, out_dir)
        return
    from gridflock.service._malloc import keep_freed_memory

    if autopilot:
        _compare(
            homes,
            fleet,
            date,
            days,
            step,
            seed,
            tariff,
            prices,
            peak_limit,
            out_dir,
            imperfections(latency, dropout, offline, ignore, noise, ideal),
            quiet,
        )
        return
    from gridflock.sim.events import parse_event
    from gridflock.sim.report import write_report
    from gridflock.sim.scenario import ScenarioConfig, run_scenario, scenario_tracker_config

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail(f"--date: {date!r} is not a date; use YYYY-MM-DD, e.g. 2026-07-15")
    step_s = _parse_step(step)
    if not 1 <= step_s <= 3600:
        fail(f"--step: {step!r} must be between 1 second and 1 hour")
    if hours * 3600 / step_s > 1_000_000:
        fail("--hours/--step: more than a million steps; use a longer --step")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out: {out_dir} exists and is not a folder")
    spec = _load_fleet(fleet, homes, seed)
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    requests = None
    if event:
        try:
            requests = tuple(parse_event(e, day, tz) for e in event)
        except ValueError as e:
            fail(f"--event: {e}")
    imperfect = imperfections(latency, dropout, offline, ignore, noise, ideal)
    if method is not None:
        from gridflock.mv.baselines import METHODS

        if method not in METHODS:
            fail(f"--method: {method!r} is not a baseline method; use one of {', '.join(METHODS)}")
        if not settle_days:
            fail("--method: settling needs meter history; give --settle-days too (e.g. 35)")
    sample_all = 10**9 if settle_days else 0
    store = None
    if db:
        store = _open_store(db)
    try:
        cfg = ScenarioConfig(
            date=day,
            hours=hours,
            step_s=step_s,
            seed=seed,
            start_hour=start_hour,
            events=requests,
            imperfections=imperfect,
            telemetry_sample_devices=sample_all or (1000 if store else 0),
            telemetry_sample_every_s=max(step_s, 300.0) if settle_days else 900.0,
            tracker=scenario_tracker_config(step_s, merit_order),
        )
    except ValueError as e:
        fail(str(e))

    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=False,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            if done % 20 == 0 or done == total:
                bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        keep_freed_memory()  # each time step reuses its temporaries
        history = None
        try:
            if settle_days:
                history = run_scenario(
                    spec,
                    ScenarioConfig(
                        date=day - dt.timedelta(days=settle_days),
                        hours=24.0 * settle_days,
                        step_s=900.0,
                        seed=seed,
                        start_hour=start_hour,
                        events=(),
                        imperfections=imperfect,
                        telemetry_sample_devices=sample_all,
                        telemetry_sample_every_s=900.0,
                    ),
                    partial(progress_history, progress),
                )
            result = run_scenario(spec, cfg, progress)
        except ValueError as e:
            fail(str(e))

    paths = write_report(result, out_dir)
    if store is not None:
        _store_result(store, result)
        store.close()
    _print_summary(result, paths)
    if history is not None:
        _settle(history, result, out_dir, method)


def progress_history(
    progress: Callable[[str, int, int], None], _: str, done: int, total: int
) -> None:
    """Report the history pass under its own name."""
    progress("history", done, total)


def _settle(
    history: ScenarioResult, result: ScenarioResult, out_dir: Path, method: str | None
) -> None:
    """Settle each event from the twin's meter readings, as the service does from its store."""
    import numpy as np
    import pandas as pd

    from gridflock.api._convert import jsonable
    from gridflock.config import load_settings
    from gridflock.domain import GridflockError
    from gridflock.domain.events import EventStatus
    from gridflock.mv.meter import Calendar
    from gridflock.mv.settlement import (
        DeviceSites,
        bucket_means,
        event_days,
        settle_meter,
        site_flex_load,
        site_generation,
        site_power,
    )
    from gridflock.service.settlement import settlement_terms

    try:
        settings = load_settings()
        terms = settlement_terms(settings)
    except (ValueError, GridflockError) as e:
        fail(f"settlement settings: {e}")
    fleet = DeviceSites(result.spec)
    step = 900
    t0 = float(np.floor(history.times[0].timestamp() / step) * step)
    t1 = float(result.times[-1].timestamp()) + result.config.step_s
    n = int(np.ceil((t1 - t0) / step))
    times = pd.date_range(pd.Timestamp(t0, unit="s", tz="UTC"), periods=n, freq=f"{step}s")
    pos = pd.Index(fleet.device_ids)
    ids, ts, p = [], [], []
    for run in (history, result):
        # the twin stamps a reading at the end of the step it describes: its middle is
        # where a meter's interval puts it
        half = run.config.step_s / 2
        for b in run.telemetry:
            ids.append(np.asarray(b.device_ids, dtype=object))
            ts.append(np.asarray(b.ts, dtype=np.float64) - half)
            p.append(np.asarray(b.p_kw, dtype=np.float64))
    rows = pos.get_indexer(pd.Index(np.concatenate(ids))) if ids else np.zeros(0, np.int64)
    dev_kw = bucket_means(
        rows,
        np.concatenate(ts) if ts else np.zeros(0),
        np.concatenate(p) if p else np.zeros(0),
        len(pos),
        t0,
        step,
        n,
    )
    net, bat = site_power(fleet, dev_kw)
    gen = site_generation(fleet, dev_kw)
    load = site_flex_load(fleet, dev_kw)
    events = [o.event for o in result.events]
    say = partial(out.print, highlight=False, soft_wrap=True)
    for o in result.events:
        ev = o.event
        ev.status = EventStatus.COMPLETED
        cal = Calendar.of((), event_days(events, result.tz, skip=ev.id))
        try:
            st = settle_meter(
                ev,
                result.spec,
                times,
                net,
                battery_kw=bat,
                gen_kw=gen,
                load_kw=load,
                calendar=cal,
                method=method,
                terms=terms,
                placebo_days=settings.settlement_placebo_days,
            )
        except GridflockError as e:
            say(f"[bold]{ev.id}[/] cannot be settled: {e}")
            continue
        truth = o.performance.energy_delivered_kwh
        say(f"[bold]{ev.id} statement[/]: {st.plain()}")
        say(
            f"    the twin's true delivery (its shadow run): {truth:,.1f} kWh; the statement "
            f"says {st.totals['delivered_kwh']:,.1f} ± {st.totals['uncertainty_kwh']:,.1f} kWh"
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        jpath = out_dir / f"statement-{ev.id}.json"
        jpath.write_text(json.dumps(jsonable(st.as_dict()), indent=1))
        cpath = out_dir / f"statement-{ev.id}.csv"
        cpath.write_text(st.to_csv())
        say(f"    statement: {jpath}, {cpath}")


def _open_store(url: str) -> Store:
    from gridflock.config import mask_url, redact
    from gridflock.domain import GridflockError
    from gridflock.store import Store, StoreError

    try:
        store = Store(url)
        store.upgrade()
    except (StoreError, GridflockError) as e:
        fail(redact(f"--db: {e}", url))
    except Exception as e:  # driver errors: say what failed and how to fix it
        fail(
            redact(
                f"--db: cannot open {mask_url(url)!r}: {e.__class__.__name__}: {e}. Check the "
                "URL and that the server is running.",
                url,
            )
        )
    return store


def _store_result(store: object, result: object) -> None:
    from gridflock.sim.scenario import ScenarioResult
    from gridflock.store import Store

    assert isinstance(store, Store)
    assert isinstance(result, ScenarioResult)
    import numpy as np

    store.save_fleet(result.spec)
    ts = np.array([t.timestamp() for t in result.times])
    for o in result.events:
        store.save_event(o.event)
        store.save_event_performance(o.event.id, o.performance.as_dict())
        inside = (ts >= o.event.start) & (ts < o.event.end)
        store.save_event_samples(
            o.event.id, ts[inside], np.full(inside.sum(), o.event.target_kw), o.delivered_kw[inside]
        )
    for commands in result.commands:
        store.save_commands(commands)
    for readings in result.telemetry:
        store.write_telemetry(readings)


def peak_text(without_kw: float, with_kw: float, reduction_pct: float) -> str:
    """The peak-import line: both peaks, and whether the VPP made the peak lower or higher."""
    if abs(reduction_pct) < 0.05:
        change = "unchanged"
    elif reduction_pct > 0:
        change = f"{reduction_pct:.1f} % lower with the VPP"
    else:
        change = f"{-reduction_pct:.1f} % higher with the VPP"
    return (
        f"peak net import: {without_kw:,.0f} kW without the VPP, {with_kw:,.0f} kW with it "
        f"({change})"
    )


def duration_text(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 30 min``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    h, m = divmod(minutes, 60)
    return f"{h} h {m} min" if m else f"{h} h"


def t90_text(time_to_90pct_s: float | None, step_s: float) -> str:
    """When 90 % of the target was reached, in words the step resolution can support.

    The twin moves in steps of ``step_s``: a response measured at the first step after
    the start reads "within the first step", not "after 0 s".
    """
    if time_to_90pct_s is None:
        return "90 % never reached"
    if time_to_90pct_s < step_s:
        return f"90 % reached within the first step ({duration_text(step_s)})"
    return f"90 % reached after {duration_text(time_to_90pct_s)}"


def _print_summary(result: ScenarioResult, paths: dict[str, Path]) -> None:
    r = result
    say = partial(out.print, highlight=False, soft_wrap=True)  # lines wrap, never mid-phrase
    say(
        f"[bold]{len(r.spec.sites):,} homes[/], {r.spec.n_devices:,} devices "
        f"({', '.join(f'{n:,} {k}' for k, n in r.spec.counts().items() if n)})"
    )
    say(peak_text(r.peak_import_without_kw, r.peak_import_with_kw, r.peak_reduction_pct))
    import pandas as pd

    for o in r.events:
        p = o.performance
        a = pd.Timestamp(o.event.start, unit="s", tz="UTC").tz_convert(r.tz)
        b = pd.Timestamp(o.event.end, unit="s", tz="UTC").tz_convert(r.tz)
        say(
            f"[bold]{o.event.id}[/] {a:%H:%M}-{b:%H:%M} {r.tz}, {o.event.scope}: target "
            f"{o.event.target_kw:,.0f} kW, delivered {p.delivered_kw_mean:,.0f} kW "
            f"([bold]{p.delivered_pct:.1f} %[/]), {p.energy_delivered_kwh:,.0f} kWh"
        )
        say(
            f"    tracking error {p.tracking_rmse_pct:.1f} % rms, "
            f"{t90_text(p.time_to_90pct_s, r.config.step_s)}, "
            f"{p.non_responders:,} non-responders, {o.commands_sent:,} commands"
        )
    for name, path in paths.items():
        say(f"{name:>8}: {path}")
    say(f"ran in {r.runtime_s:.1f} s")


def _read_tariff(kind: str, prices: Path | None) -> object:
    import pandas as pd

    from gridflock.optimize.autopilot import PlanError, Tariff

    if kind not in ("tou", "flat", "dynamic"):
        fail(f"--tariff: {kind!r} is not a tariff; use tou, flat or dynamic")
    if kind != "dynamic":
        if prices is not None:
            fail("--prices: only with --tariff dynamic")
        return Tariff(kind)  # type: ignore[arg-type]
    if prices is None:
        fail("--tariff dynamic needs --prices FILE.csv (columns ts, eur_per_kwh)")
    try:
        df = pd.read_csv(prices)
        series = pd.Series(
            df["eur_per_kwh"].astype(float).to_numpy(),
            index=pd.DatetimeIndex(pd.to_datetime(df["ts"], utc=True)),
        )
        return Tariff("dynamic", dynamic=series)
    except (OSError, KeyError, ValueError, PlanError) as e:
        fail(f"--prices: cannot read {prices}: {e}. Give a CSV with columns ts, eur_per_kwh")


def _compare(
    homes: int,
    fleet: Path | None,
    date: str,
    days: int,
    step: str,
    seed: int,
    tariff_kind: str,
    prices: Path | None,
    peak_limit: float | None,
    out_dir: Path,
    imperfect: object,
    quiet: bool,
) -> None:
    """``simulate --autopilot``: no VPP, manual events and the autopilot over the same days."""
    from dataclasses import replace

    from gridflock.optimize.autopilot import PeakShavingPolicy, Policies, Tariff
    from gridflock.service._malloc import keep_freed_memory
    from gridflock.sim.autopilot import ComparisonConfig, run_comparison, summary
    from gridflock.sim.autopilot import write_comparison as write
    from gridflock.sim.imperfections import Imperfections

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail(f"--date: {date!r} is not a date; use YYYY-MM-DD, e.g. 2026-07-15")
    step_s = _parse_step(step)
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out: {out_dir} exists and is not a folder")
    tariff = _read_tariff(tariff_kind, prices)
    assert isinstance(tariff, Tariff)
    assert isinstance(imperfect, Imperfections)
    policies = Policies()
    if peak_limit is not None:
        policies = replace(policies, peak_shaving=PeakShavingPolicy(limit_kw=peak_limit))
    try:
        cfg = ComparisonConfig(day, days, step_s, seed, imperfect, tariff, policies)
    except ValueError as e:
        fail(f"--step/--days: {e}")
    spec = _load_fleet(fleet, homes, seed)
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            if done % 20 == 0 or done == total:
                bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        keep_freed_memory()
        try:
            result = run_comparison(spec, cfg, progress)
        except ValueError as e:
            fail(str(e))
    paths = write(result, out_dir)
    s = summary(result)
    from rich.table import Table

    table = Table(title=f"{s['homes']:,} homes, {days} days from {day}", title_justify="left")
    table.add_column("")
    for name in ("no VPP", "manual events", "autopilot"):
        table.add_column(name, justify="right")
    ways = [s["ways"][k] for k in ("no_vpp", "manual", "autopilot")]
    rows = (
        ("peak net import \\[kW]", "peak_import_kw", "{:,.0f}"),
        ("energy cost \\[EUR]", "energy_cost_eur", "{:,.0f}"),
        ("energy imported \\[kWh]", "energy_imported_kwh", "{:,.0f}"),
        ("energy shifted \\[kWh]", "energy_shifted_kwh", "{:,.0f}"),
        ("comfort violations", "comfort_violations", "{:,.0f}"),
        ("EV departures met \\[%]", "ev_departures_met_pct", "{:.1f}"),
        ("battery cycles", "battery_cycles", "{:.2f}"),
    )
    for label, key, fmt in rows:
        table.add_row(label, *(fmt.format(w[key]) for w in ways))
    out.print(table)
    say = partial(out.print, highlight=False, soft_wrap=True)
    pr, cs = s["peak_reduction_pct"], s["cost_saving_pct"]
    say(
        f"peak reduction: manual {pr['manual']:.1f} %, autopilot {pr['autopilot']:.1f} %; "
        f"cost saving: manual {cs['manual']:.1f} %, autopilot {cs['autopilot']:.1f} % "
        f"({tariff_kind} tariff)"
    )
    say(f"forecast: {s['forecast']} (error {s['forecast_mape_pct']} % MAPE)")
    for name, path in paths.items():
        say(f"{name:>8}: {path}")
    say(f"ran in {s['runtime_s']:.1f} s")


def _frequency_event(
    homes: int, fleet: Path | None, date: str, seed: int, text: str, out_dir: Path
) -> None:
    """The fleet's fast frequency response to one event, judged against the products."""
    import pandas as pd

    from gridflock.sim.ffr_report import parse_frequency_event, run_frequency_event
    from gridflock.sim.ffr_report import write_ffr_report as write

    try:
        ev = parse_frequency_event(text)
    except ValueError as e:
        fail(f"--frequency-event: {e}")
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail(f"--date: {date!r} is not a date; use YYYY-MM-DD, e.g. 2026-07-15")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out: {out_dir} exists and is not a folder")
    spec = _load_fleet(fleet, homes, seed)
    tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
    start = pd.Timestamp(f"{day.isoformat()} 18:00", tz=tz).tz_convert("UTC")
    try:
        report = run_frequency_event(spec, ev, start, seed)
    except ValueError as e:
        fail(str(e))
    paths = write(report, out_dir)
    say = partial(out.print, highlight=False, soft_wrap=True)
    say(
        f"{ev.name} ({ev.description}): {report.n_devices:,} devices, "
        f"{report.n_eligible:,} respond within 1 s: up {report.capacity_up_kw:,.1f} kW, "
        f"down {report.capacity_down_kw:,.1f} kW"
    )
    for c in report.cases:
        p = c.product
        target = f"start <= {p.start_s:g} s, " if p.start_s is not None else ""
        verdict = {True: "met", False: "MISSED", None: f"lag {c.full_s - c.f_full_s:.2f} s"}
        say(
            f"  {p.code:<10} required {c.required_kw:,.1f} kW: start {c.start_s:.2f} s, "
            f"full {c.full_s:.2f} s ({target}full <= {p.full_s:g} s): {verdict[c.met]}"
        )
    say(f"wrote {paths['summary']} and {paths['plot']}")
