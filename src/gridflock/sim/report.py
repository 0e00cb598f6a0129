"""What a scenario leaves behind: ``summary.json``, a plot and the time series."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridflock.sim.scenario import ScenarioResult

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "series",
    "summary",
    "write_plot",
    "write_report",
    "write_series",
]

SUMMARY_SCHEMA_VERSION = 1


def _iso(ts: float) -> str:
    return pd.Timestamp(ts, unit="s", tz="UTC").isoformat()


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def summary(result: ScenarioResult) -> dict[str, Any]:
    """The figures of a scenario as a JSON-ready dict (schema in docs/summary.schema.json)."""
    r = result
    cfg = r.config
    counts = r.spec.counts()
    events = []
    for o in r.events:
        ev, perf, est = o.event, o.performance, o.estimate
        events.append(
            {
                "id": ev.id,
                "start": _iso(ev.start),
                "end": _iso(ev.end),
                "scope": str(ev.scope),
                "status": ev.status.value,
                "target_kw": _round(ev.target_kw),
                "delivered_kw_mean": _round(perf.delivered_kw_mean),
                "delivered_pct": _round(perf.delivered_pct, 2),
                "tracking_rmse_pct": _round(perf.tracking_rmse_pct, 2),
                "time_to_90pct_s": _round(perf.time_to_90pct_s, 1),
                "non_responders": perf.non_responders,
                "energy_delivered_kwh": _round(perf.energy_delivered_kwh),
                "shortfall_kw": _round(o.shortfall_kw),
                "commands_sent": o.commands_sent,
                "estimated_by_tracker": {
                    "delivered_kw_mean": _round(est.delivered_kw_mean),
                    "delivered_pct": _round(est.delivered_pct, 2),
                },
            }
        )
    step_h = cfg.step_s / 3600.0
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "homes": len(r.spec.sites),
        "devices": counts,
        "devices_total": sum(counts.values()),
        "grid_nodes": len(r.spec.grid_nodes),
        "window": {
            "start": r.times[0].isoformat(),
            "end": (r.times[-1] + pd.Timedelta(seconds=cfg.step_s)).isoformat(),
            "step_s": cfg.step_s,
            "timezone": r.tz,
        },
        "seed": cfg.seed,
        "imperfections": asdict(cfg.imperfections),
        "peak_net_load_kw": {
            "with_vpp": _round(r.peak_import_with_kw),
            "without_vpp": _round(r.peak_import_without_kw),
        },
        "peak_reduction_pct": _round(r.peak_reduction_pct, 2),
        "energy_imported_kwh": {
            "with_vpp": _round(float(np.maximum(-r.net_with_kw, 0).sum() * step_h)),
            "without_vpp": _round(float(np.maximum(-r.net_without_kw, 0).sum() * step_h)),
        },
        "events": events,
        "commands": {
            "accepted": r.acks.accepted,
            "expired": r.acks.expired,
            "replayed": r.acks.replayed,
            "unreachable": r.acks.unreachable,
        },
        "runtime_s": _round(r.runtime_s, 2),
    }


def series(result: ScenarioResult) -> pd.DataFrame:
    """The scenario's time series: one row per step, kW with the generator sign."""
    r = result
    df = pd.DataFrame(
        {"ts": r.times, "net_kw_with_vpp": r.net_with_kw, "net_kw_without_vpp": r.net_without_kw}
    )
    for kind in r.by_kind_with_kw.columns:
        df[f"{kind}_kw_with_vpp"] = r.by_kind_with_kw[kind].to_numpy()
        df[f"{kind}_kw_without_vpp"] = r.by_kind_without_kw[kind].to_numpy()
    ts = np.array([t.timestamp() for t in r.times])
    for o in r.events:
        inside = (ts >= o.event.start) & (ts < o.event.end)
        df[f"{o.event.id}_target_kw"] = np.where(inside, o.event.target_kw, np.nan)
        df[f"{o.event.id}_delivered_kw"] = np.where(inside, o.delivered_kw, np.nan)
        df[f"{o.event.id}_estimated_kw"] = np.where(inside, o.estimated_kw, np.nan)
    return df


def write_series(result: ScenarioResult, path: Path) -> Path:
    """Write the time series as Parquet."""
    series(result).to_parquet(path, index=False)
    return path


def write_plot(result: ScenarioResult, path: Path) -> Path:
    """Net load with and without the VPP, and each event's target against delivery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result
    local = r.times.tz_convert(r.tz).tz_localize(None)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(local, -r.net_without_kw / 1000, color="#9aa5b1", lw=1.2, label="without VPP")
    ax1.plot(local, -r.net_with_kw / 1000, color="#1f6feb", lw=1.4, label="with VPP")
    for o in r.events:
        e0 = pd.Timestamp(o.event.start, unit="s", tz="UTC").tz_convert(r.tz).tz_localize(None)
        e1 = pd.Timestamp(o.event.end, unit="s", tz="UTC").tz_convert(r.tz).tz_localize(None)
        ax1.axvspan(e0, e1, color="#f2cc60", alpha=0.25, lw=0)
        ax2.axvspan(e0, e1, color="#f2cc60", alpha=0.25, lw=0)
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_ylabel("fleet net import [MW]\n(negative: export)")
    ax1.set_title(
        f"{len(r.spec.sites):,} homes, {r.times[0].tz_convert(r.tz):%Y-%m-%d}: "
        f"peak import {r.peak_import_without_kw / 1000:.2f} -> "
        f"{r.peak_import_with_kw / 1000:.2f} MW ({r.peak_reduction_pct:+.1f} %)",
        loc="left",
        fontsize=11,
    )
    ax1.legend(loc="upper left", frameon=False)
    ax1.grid(alpha=0.3)
    ts = np.array([t.timestamp() for t in r.times])
    for o in r.events:
        inside = (ts >= o.event.start) & (ts < o.event.end)
        ax2.plot(
            local,
            np.where(inside, o.event.target_kw, np.nan),
            color="#d1242f",
            lw=1.6,
            label=f"{o.event.id} target",
        )
        ax2.plot(
            local,
            np.where(inside, o.delivered_kw, np.nan),
            color="#1a7f37",
            lw=1.2,
            label=f"{o.event.id} delivered ({o.performance.delivered_pct:.1f} %)",
        )
    ax2.axhline(0, color="black", lw=0.6)
    if r.events:  # zoom on the events, an hour either side
        a = min(o.event.start for o in r.events) - 3600
        b = max(o.event.end for o in r.events) + 3600
        ax2.set_xlim(
            *(
                pd.Timestamp(x, unit="s", tz="UTC").tz_convert(r.tz).tz_localize(None)
                for x in (a, b)
            )
        )
    ax2.set_ylabel("event response [kW]\n(+ up, - down)")
    ax2.legend(loc="upper left", frameon=False, fontsize=9)
    ax2.grid(alpha=0.3)
    ax2.set_xlabel(f"local time ({r.tz})")
    ax1.set_xlabel(f"local time ({r.tz})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: ScenarioResult, out: Path) -> dict[str, Path]:
    """Write summary.json, plot.png and timeseries.parquet into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out / "summary.json",
        "plot": out / "plot.png",
        "series": out / "timeseries.parquet",
    }
    paths["summary"].write_text(json.dumps(summary(result), indent=2) + "\n")
    write_plot(result, paths["plot"])
    write_series(result, paths["series"])
    return paths
