"""A year of settled events: energy delivered, rewards paid and the fossil peaker avoided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridflock.mv.statement import Statement

__all__ = ["YearValue", "yearly_value"]


@dataclass(frozen=True)
class YearValue:
    """The value of a year's events (those starting in the calendar year, UTC).

    Energies in MWh at the meters (``delivered_mwh``, up events in their direction) and at
    the plant (``avoided_mwh``, grossed up for losses), CO2 in tonnes, capacity in MW:
    ``peak_capacity_mw`` is the mean over up events of what each made unnecessary (the
    capacity the VPP provides when called), ``peak_capacity_mw_max`` the largest.
    ``by_month`` holds the same per month (1..12, months without events absent).
    """

    year: int
    events: int
    up_events: int
    delivered_mwh: float
    avoided_mwh: float
    co2_avoided_t: float
    peak_capacity_mw: float
    peak_capacity_mw_max: float
    rewards: float
    currency: str
    methods: dict[str, int]
    by_month: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        months: list[dict[str, Any]] = [
            {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in self.by_month.to_dict("records")
        ]
        return {
            "year": self.year,
            "events": self.events,
            "up_events": self.up_events,
            "delivered_mwh": self.delivered_mwh,
            "avoided_mwh": self.avoided_mwh,
            "co2_avoided_t": self.co2_avoided_t,
            "peak_capacity_mw": self.peak_capacity_mw,
            "peak_capacity_mw_max": self.peak_capacity_mw_max,
            "rewards": self.rewards,
            "currency": self.currency,
            "methods": dict(self.methods),
            "by_month": months,
        }


_MONTH_COLS = ["month", "events", "delivered_mwh", "avoided_mwh", "co2_avoided_t", "rewards"]


def yearly_value(statements: Sequence[Statement], year: int, currency: str = "EUR") -> YearValue:
    """Sum the statements of events starting in ``year`` (UTC); others are ignored."""
    rows = []
    for st in statements:
        start = pd.Timestamp(st.event.start, unit="s", tz="UTC")
        if start.year != year:
            continue
        up = st.event.target_kw >= 0
        rows.append(
            {
                "month": start.month,
                "up": up,
                "method": st.method,
                "delivered_mwh": max(st.totals["delivered_kwh"], 0.0) / 1000.0 if up else 0.0,
                "avoided_mwh": st.peaker.avoided_mwh,
                "co2_avoided_t": st.peaker.co2_avoided_t,
                "capacity_mw": st.peaker.peak_capacity_mw,
                "rewards": float(st.totals["reward"]),
                "currency": st.rewards.currency,
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "month",
            "up",
            "method",
            "delivered_mwh",
            "avoided_mwh",
            "co2_avoided_t",
            "capacity_mw",
            "rewards",
            "currency",
        ],
    )
    if len(df):
        currency = str(df["currency"].iloc[0])
    ups = df[df["up"].astype(bool)]
    by_month = (
        df.groupby("month", sort=True)
        .agg(
            events=("up", "size"),
            delivered_mwh=("delivered_mwh", "sum"),
            avoided_mwh=("avoided_mwh", "sum"),
            co2_avoided_t=("co2_avoided_t", "sum"),
            rewards=("rewards", "sum"),
        )
        .reset_index()
        if len(df)
        else pd.DataFrame(columns=_MONTH_COLS)
    )
    return YearValue(
        year=year,
        events=len(df),
        up_events=len(ups),
        delivered_mwh=float(df["delivered_mwh"].sum()),
        avoided_mwh=float(df["avoided_mwh"].sum()),
        co2_avoided_t=float(df["co2_avoided_t"].sum()),
        peak_capacity_mw=float(ups["capacity_mw"].mean()) if len(ups) else 0.0,
        peak_capacity_mw_max=float(ups["capacity_mw"].max()) if len(ups) else 0.0,
        rewards=float(df["rewards"].sum()),
        currency=currency,
        methods={str(k): int(v) for k, v in df["method"].value_counts().items()},
        by_month=by_month,
    )
