"""Settlement statements: what each site and the fleet delivered in an event, and its value.

A statement settles one event on the sites' metered net power against a baseline (the
counterfactual a settlement method estimates), per 15- or 30-minute interval:
``delivered = actual - baseline`` in the generator sign, so an "up" event (less import,
more export) delivers a positive figure. It says which method was used, why, and how
accurate that method is; gives every method's total for comparison; pays each site
(customer) for what it delivered in the event's direction; and counts the fossil peaker
the delivery spared (:mod:`gridflock.mv.peaker`). Format and fields: docs/settlement.md.

Intervals that only partly overlap the event count for the overlapping share; intervals
without a reading or a baseline count as nothing delivered (a site's ``coverage`` says how
much of the window its data covered). All arithmetic is vectorised over sites.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from gridflock.domain.errors import InvalidError
from gridflock.domain.events import Event, EventSource, EventStatus, Scope
from gridflock.domain.messages import FloatArray
from gridflock.mv.measure import Delivery, EventMV
from gridflock.mv.peaker import EmissionFactors

__all__ = [
    "FORMAT",
    "METHOD_LABELS",
    "Accuracy",
    "MethodBaseline",
    "PeakerAvoided",
    "RewardTerms",
    "SettlementTerms",
    "Statement",
    "UnknownMethodError",
    "WindowMeter",
    "settle",
    "settle_event",
    "statement_inputs",
]

#: Version tag of the statement format (JSON ``format``, CSV first line).
FORMAT = "gridflock-settlement/1"

SiteStatus = Literal["responder", "non_responder", "no_data"]

#: How a statement names each baseline method (``gridflock.mv.Method`` values).
METHOD_LABELS: dict[str, str] = {
    "caiso_10in10": "CAISO 10-in-10 with the day-of adjustment (capped at ±20 %)",
    "caiso_10in10_unadjusted": "CAISO 10-in-10, unadjusted",
    "caiso_10in10_additive": "CAISO 10-in-10 with an additive day-of adjustment",
    "pjm_high4of5": "PJM High 4 of 5 with the symmetric additive adjustment",
    "pjm_high4of5_wsa": "PJM High 4 of 5 with the weather-sensitive adjustment",
    "uk_dfs": "UK Demand Flexibility Service baseline (10 working days, in-day adjusted)",
    "regression": "Regression on temperature and time of week (CalTRACK hourly, eemeter)",
    "control_group": "Randomised control group matched on kind and size",
    "battery_device": "Device-level battery baseline (power held before the event)",
    "battery_device_days": "Device-level battery baseline (same hours of recent days)",
    "battery_device_trend": "Device-level battery baseline (recent days, season and sun adjusted)",
    "battery_device_replay": "Device-level battery baseline (its law replayed from its SOC)",
    "weather_matched": "Weather-matched days (the 5 days closest in irradiance and temperature)",
    "caiso_10in10_mgo": "CAISO 10-in-10 (±20 % adjusted) on gross load, metered PV, battery (MGO)",
    "pjm_high4of5_mgo": "PJM High 4 of 5 (SAA) on gross load, metered PV and battery (MGO)",
    "uk_dfs_mgo": "UK DFS baseline (in-day adjusted) on gross load, metered PV and battery (MGO)",
    "regression_mgo": "CalTRACK regression on gross load, metered PV and battery (MGO)",
}


class UnknownMethodError(InvalidError):
    """A baseline method that does not exist or was not computed for this event."""


@dataclass(frozen=True)
class Accuracy:
    """How accurate a baseline method is, measured where the truth is known.

    ``bias_pct`` is the mean error of the delivered figure on days without an event
    (placebo days: the true effect is zero), ``rmse_pct`` its root mean square, both in %
    of the baseline energy over the window; ``basis`` says where and on what they were
    measured. ``None`` where not measured.
    """

    bias_pct: float | None = None
    rmse_pct: float | None = None
    basis: str = "not measured"

    def sentence(self) -> str:
        """The accuracy in plain words."""
        if self.bias_pct is None and self.rmse_pct is None:
            return f"Accuracy: {self.basis}."
        parts = []
        if self.bias_pct is not None:
            parts.append(f"bias {self.bias_pct:+.1f} %")
        if self.rmse_pct is not None:
            parts.append(f"RMSE {self.rmse_pct:.1f} %")
        figures = ", ".join(parts)
        return f"Accuracy on days without an event: {figures} of the baseline ({self.basis})."


@dataclass(frozen=True)
class WindowMeter:
    """Metered net power of the sites over (at least) an event window.

    ``actual_kw`` is ``(n_sites, n_steps)``, generator sign (+ export), NaN where no
    reading; interval ``t`` covers ``[start_ts + t * step_s, start_ts + (t + 1) * step_s)``.
    """

    site_ids: Sequence[str]
    grid_nodes: Sequence[str]
    start_ts: float
    step_s: float
    actual_kw: FloatArray

    def __post_init__(self) -> None:
        a = np.asarray(self.actual_kw, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != len(self.site_ids):
            raise ValueError(
                f"actual_kw must be (n_sites, n_steps) = ({len(self.site_ids)}, n), got {a.shape}"
            )
        if len(self.grid_nodes) != len(self.site_ids):
            raise ValueError("grid_nodes must name one node per site")
        if not self.step_s > 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s}")

    @property
    def n_steps(self) -> int:
        """Intervals held."""
        return int(np.shape(self.actual_kw)[1])

    def interval_starts(self) -> FloatArray:
        """Start of each interval [UTC epoch s]."""
        return self.start_ts + self.step_s * np.arange(self.n_steps, dtype=np.float64)


@dataclass(frozen=True)
class MethodBaseline:
    """One method's baseline for the sites of a :class:`WindowMeter`, interval by interval.

    ``baseline_kw`` has the shape of ``actual_kw`` (NaN where the method has none);
    ``sigma_kw`` the 1-sigma error of each site's mean baseline over an event window [kW]
    (``None``: not known per site, shown as NaN) and ``sigma_total_kw`` that of the fleet's
    total (sites' errors are correlated, so the method's own figure is better than adding
    the sites'; ``None``: the sites' added in quadrature).
    """

    method: str
    label: str
    baseline_kw: FloatArray
    accuracy: Accuracy = field(default_factory=Accuracy)
    sigma_kw: FloatArray | None = None
    sigma_total_kw: float | None = None
    aggregate: tuple[float, float] | None = None
    """``(delivered_kw, delivered_kwh)`` of a method computed per grid node, not per site
    (its ``baseline_kw`` is then NaN): it is compared in ``methods`` but settles no site."""


@dataclass(frozen=True)
class RewardTerms:
    """What a customer is paid: ``rate`` per kWh delivered or per kW delivered per event.

    Only delivery in the event's direction is paid (a site that moved the other way gets
    nothing, not a charge).
    """

    basis: Literal["kwh", "kw_event"] = "kwh"
    rate: float = 0.30
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.basis not in ("kwh", "kw_event"):
            raise InvalidError(f"reward basis {self.basis!r}: use 'kwh' or 'kw_event'")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise InvalidError(f"reward rate {self.rate} must be a finite number >= 0")

    @property
    def unit(self) -> str:
        """The rate's unit, e.g. ``EUR/kWh``."""
        return f"{self.currency}/kWh" if self.basis == "kwh" else f"{self.currency}/kW-event"


@dataclass(frozen=True)
class SettlementTerms:
    """Rewards, emission factors, the non-responder threshold and the confidence level."""

    rewards: RewardTerms = field(default_factory=RewardTerms)
    emissions: EmissionFactors = field(default_factory=EmissionFactors)
    non_responder_kw: float = 0.1
    confidence: float = 0.90

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise InvalidError(f"confidence {self.confidence} must be in [0.5, 1), e.g. 0.9")
        if not self.non_responder_kw >= 0:
            raise InvalidError(f"non_responder_kw {self.non_responder_kw} must be >= 0")

    @property
    def z(self) -> float:
        """Two-sided normal quantile of the confidence level (1.645 at 90 %)."""
        return NormalDist().inv_cdf(0.5 + self.confidence / 2)


@dataclass(frozen=True)
class PeakerAvoided:
    """The fossil peaker an event spared (zero for a "down" event, which displaces none).

    ``avoided_mwh`` generated (delivered energy grossed up by network losses),
    ``co2_avoided_t`` at the marginal factor of each interval, ``peak_capacity_mw`` the
    event's mean delivered power grossed up the same way: the peaking capacity it made
    unnecessary while it ran.
    """

    avoided_mwh: float
    co2_avoided_t: float
    peak_capacity_mw: float
    kg_co2_per_mwh: float
    factor_source: str
    loss_fraction: float
    hours_from_series: int
    hours_default: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "avoided_mwh": self.avoided_mwh,
            "co2_avoided_t": self.co2_avoided_t,
            "peak_capacity_mw": self.peak_capacity_mw,
            "kg_co2_per_mwh": self.kg_co2_per_mwh,
            "factor_source": self.factor_source,
            "loss_fraction": self.loss_fraction,
            "hours_from_series": self.hours_from_series,
            "hours_default": self.hours_default,
        }


SITE_COLUMNS = (
    "rank",
    "site_id",
    "grid_node",
    "status",
    "coverage",
    "baseline_kw",
    "actual_kw",
    "delivered_kw",
    "delivered_kwh",
    "uncertainty_kw",
    "uncertainty_kwh",
    "share_pct",
    "reward",
)


@dataclass(frozen=True)
class Statement:
    """One event settled: the figures of docs/settlement.md.

    ``sites`` (one row per site, :data:`SITE_COLUMNS`, best delivery first),
    ``grid_nodes`` (the same summed per node), ``intervals`` (fleet totals per interval:
    ``ts``, ``baseline_kw``, ``actual_kw``, ``delivered_kw``) and ``methods`` (every
    method's totals) are DataFrames; ``totals`` a dict.
    """

    event: Event
    method: str
    method_label: str
    chosen_by: Literal["recommended", "requested"]
    reason: str
    accuracy: Accuracy
    confidence: float
    interval_s: float
    totals: dict[str, Any]
    sites: pd.DataFrame
    grid_nodes: pd.DataFrame
    intervals: pd.DataFrame
    methods: pd.DataFrame
    peaker: PeakerAvoided
    rewards: RewardTerms
    notes: tuple[str, ...] = ()
    issued_at: str | None = None
    """When the statement was issued (kept), ISO 8601 UTC; None while provisional."""

    @property
    def direction(self) -> Literal["up", "down"]:
        """The event's direction."""
        return "up" if self.event.target_kw >= 0 else "down"

    def plain(self) -> str:
        """What the statement says, in a few sentences: method, accuracy, delivery, value."""
        t = self.totals
        conf = f"{100 * self.confidence:.0f} %"
        return (
            f"Baseline: {self.method_label} ({self.chosen_by}: {self.reason}). "
            f"{self.accuracy.sentence()} "
            f"Delivered {t['delivered_kw']:.1f} kW ± {t['uncertainty_kw']:.1f} kW ({conf}) on "
            f"average over the event, {t['delivered_kwh']:.1f} kWh ± {t['uncertainty_kwh']:.1f} "
            f"kWh, {t['delivered_pct']:.0f} % of the {self.event.target_kw:g} kW asked; "
            f"{t['responders']} of {t['sites']} sites responded. "
            f"Peaker avoided: {self.peaker.avoided_mwh:.3f} MWh, "
            f"{self.peaker.co2_avoided_t:.3f} t CO2, {self.peaker.peak_capacity_mw:.3f} MW."
        )

    def as_dict(self, *, sites: bool = True, intervals: bool = True) -> dict[str, Any]:
        """The statement as JSON-ready data (times as ISO 8601 UTC text)."""
        ev = self.event
        out: dict[str, Any] = {
            "format": FORMAT,
            "issued_at": self.issued_at,
            "event": {
                "id": ev.id,
                "start": _iso(ev.start),
                "end": _iso(ev.end),
                "target_kw": ev.target_kw,
                "direction": self.direction,
                "scope": str(ev.scope),
                "status": ev.status.value,
                "source": ev.source.value,
                "created_by": ev.created_by,
            },
            "baseline": {
                "method": self.method,
                "label": self.method_label,
                "chosen_by": self.chosen_by,
                "reason": self.reason,
                "accuracy": {
                    "bias_pct": self.accuracy.bias_pct,
                    "rmse_pct": self.accuracy.rmse_pct,
                    "basis": self.accuracy.basis,
                },
            },
            "statement": self.plain(),
            "confidence": self.confidence,
            "interval_s": self.interval_s,
            "totals": dict(self.totals),
            "rewards": {
                "basis": self.rewards.basis,
                "rate": self.rewards.rate,
                "unit": self.rewards.unit,
                "currency": self.rewards.currency,
                "total": self.totals["reward"],
            },
            "peaker": self.peaker.as_dict(),
            "methods": _records(self.methods),
            "grid_nodes": _records(self.grid_nodes),
            "notes": list(self.notes),
        }
        if sites:
            out["sites"] = _records(self.sites)
        if intervals:
            iv = self.intervals.copy()
            iv["ts"] = [_iso(x) for x in iv["ts"]]
            out["intervals"] = _records(iv)
        clean: dict[str, Any] = _clean(out)
        return clean

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Statement:
        """A statement back from :meth:`as_dict` (e.g. as kept in the store)."""
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} statement: format {d.get('format')!r}")
        ev = d["event"]
        event = Event(
            str(ev["id"]),
            float(ev["target_kw"]),
            _epoch(ev["start"]),
            _epoch(ev["end"]),
            Scope.parse(str(ev["scope"])),
            EventSource(ev.get("source", EventSource.OPERATOR.value)),
            EventStatus(ev["status"]),
            str(ev.get("created_by", "system")),
        )
        b, acc, r, pk = d["baseline"], d["baseline"]["accuracy"], d["rewards"], d["peaker"]
        iv = _frame(d.get("intervals", []), list(_INTERVAL_COLUMNS))
        iv["ts"] = [_epoch(x) for x in iv["ts"]]
        return cls(
            event=event,
            method=str(b["method"]),
            method_label=str(b["label"]),
            chosen_by=b["chosen_by"],
            reason=str(b["reason"]),
            accuracy=Accuracy(acc["bias_pct"], acc["rmse_pct"], str(acc["basis"])),
            confidence=float(d["confidence"]),
            interval_s=float(d["interval_s"]),
            totals=dict(d["totals"]),
            sites=_frame(d.get("sites", []), list(SITE_COLUMNS)),
            grid_nodes=_frame(d.get("grid_nodes", []), list(_NODE_COLUMNS)),
            intervals=iv,
            methods=_frame(d.get("methods", []), list(_METHOD_COLUMNS)),
            peaker=PeakerAvoided(**pk),
            rewards=RewardTerms(r["basis"], float(r["rate"]), str(r["currency"])),
            notes=tuple(d.get("notes", ())),
            issued_at=d.get("issued_at"),
        )

    def to_csv(self) -> str:
        """The per-site statement as CSV: ``#`` lines saying what it is, then one row per site.

        The last row, ``TOTAL``, sums the sites; every row names the method.
        """
        buf = io.StringIO()
        ev = self.event
        head = [
            FORMAT,
            f"event: {ev.id}, {_iso(ev.start)} to {_iso(ev.end)}, target {ev.target_kw:g} kW "
            f"({self.direction}), scope {ev.scope}",
            f"baseline: {self.method_label} [{self.method}], {self.chosen_by}: {self.reason}",
            self.accuracy.sentence(),
            f"sign: delivered = actual - baseline, generator sign (> 0 = less import / more "
            f"export); uncertainty at {100 * self.confidence:.0f} % confidence",
            f"rewards: {self.rewards.rate:g} {self.rewards.unit}, delivery in the event's "
            "direction only",
            f"peaker avoided: {self.peaker.avoided_mwh:.4f} MWh, {self.peaker.co2_avoided_t:.4f} "
            f"t CO2, {self.peaker.peak_capacity_mw:.4f} MW ({self.peaker.factor_source})",
            *self.notes,
        ]
        for line in head:
            buf.write("# " + line.replace("\n", " ") + "\n")
        table = self.sites.copy()
        t = self.totals
        total = {
            "rank": "",
            "site_id": "TOTAL",
            "grid_node": "",
            "status": f"{t['responders']} responders",
            "coverage": t["coverage"],
            "baseline_kw": t["baseline_kw"],
            "actual_kw": t["actual_kw"],
            "delivered_kw": t["delivered_kw"],
            "delivered_kwh": t["delivered_kwh"],
            "uncertainty_kw": t["uncertainty_kw"],
            "uncertainty_kwh": t["uncertainty_kwh"],
            "share_pct": 100.0 if len(table) else 0.0,
            "reward": t["reward"],
        }
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
        table["currency"] = self.rewards.currency
        table["method"] = self.method
        table.to_csv(buf, index=False, float_format="%.6g", lineterminator="\n")
        return buf.getvalue()


_INTERVAL_COLUMNS = ("ts", "baseline_kw", "actual_kw", "delivered_kw", "covered_sites")
_NODE_COLUMNS = ("grid_node", "sites", "responders", "delivered_kw", "delivered_kwh", "reward")
_METHOD_COLUMNS = (
    "method",
    "label",
    "chosen",
    "delivered_kw",
    "delivered_kwh",
    "uncertainty_kw",
    "uncertainty_kwh",
    "delivered_pct",
    "bias_pct",
    "rmse_pct",
)
_TEXT_COLUMNS = {"site_id", "grid_node", "status", "method", "label", "ts"}


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Records back into a frame: numbers as floats (None as NaN), text as text."""
    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c == "chosen":
            df[c] = df[c].astype(bool)
        elif c in ("rank", "sites", "responders", "covered_sites"):
            df[c] = pd.to_numeric(df[c]).astype(np.int64)
        elif c not in _TEXT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(np.float64)
    return df


def _epoch(text: str) -> float:
    return float(pd.Timestamp(text).tz_convert("UTC").value / 1e9)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, NumPy scalars as plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(ts: float) -> str:
    return pd.Timestamp(ts, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    raw = df.astype(object).where(df.notna(), None).to_dict("records")
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in raw]
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
            elif isinstance(v, np.generic):
                r[k] = v.item()
    return rows


def _weights(meter: WindowMeter, start: float, end: float) -> FloatArray:
    """Share of each interval inside ``[start, end)`` (0..1)."""
    t0 = meter.interval_starts()
    overlap = np.minimum(t0 + meter.step_s, end) - np.maximum(t0, start)
    w: FloatArray = np.clip(overlap / meter.step_s, 0.0, 1.0)
    return w


@dataclass(frozen=True)
class _Sums:
    """A method's arithmetic over the window, per site."""

    ok: np.ndarray
    delivered_kw: FloatArray  # (n_sites,) mean over the event window
    delivered_kwh: FloatArray
    baseline_kw: FloatArray  # mean over covered intervals, NaN without any
    actual_kw: FloatArray
    coverage: FloatArray
    sigma_kw: FloatArray
    sigma_total_kw: float
    per_interval: FloatArray  # (n_sites, n_steps) delivered, 0 where not covered


def _sums(meter: WindowMeter, mb: MethodBaseline, w: FloatArray, hours: float) -> _Sums:
    actual = np.asarray(meter.actual_kw, dtype=np.float64)
    base = np.asarray(mb.baseline_kw, dtype=np.float64)
    if base.shape != actual.shape:
        raise ValueError(
            f"baseline of {mb.method} is {base.shape}, meter data {actual.shape}: they must match"
        )
    inside = w > 0
    ok = np.isfinite(actual) & np.isfinite(base) & inside[None, :]
    d = np.where(ok, actual - base, 0.0)
    step_h = meter.step_s / 3600.0
    kwh = (d * w).sum(axis=1) * step_h
    kw = kwh / hours
    wsum = float(w.sum())
    cw = (ok * w).sum(axis=1)
    coverage = cw / wsum if wsum > 0 else np.zeros(len(kwh))
    with np.errstate(invalid="ignore", divide="ignore"):
        b_mean = np.where(cw > 0, (np.where(ok, base, 0.0) * w).sum(axis=1) / cw, np.nan)
        a_mean = np.where(cw > 0, (np.where(ok, actual, 0.0) * w).sum(axis=1) / cw, np.nan)
    n = len(kwh)
    # NaN: the method gives no per-site figure (its uncertainty is the fleet's)
    sigma = (
        np.full(n, np.nan)
        if mb.sigma_kw is None
        else np.broadcast_to(np.asarray(mb.sigma_kw, dtype=np.float64), (n,)).copy()
    )
    sigma = np.where(coverage > 0, sigma, 0.0)
    total = (
        float(mb.sigma_total_kw)
        if mb.sigma_total_kw is not None and math.isfinite(mb.sigma_total_kw)
        else float(np.sqrt(np.nansum(sigma**2)))
    )
    return _Sums(ok, kw, kwh, b_mean, a_mean, coverage, sigma, total, d)


def settle_event(
    event: Event,
    meter: WindowMeter,
    baselines: Sequence[MethodBaseline],
    method: str,
    reason: str,
    *,
    chosen_by: Literal["recommended", "requested"] = "recommended",
    terms: SettlementTerms | None = None,
    notes: Sequence[str] = (),
) -> Statement:
    """Settle ``event`` on ``meter`` with the baseline of ``method`` (one of ``baselines``).

    Every method in ``baselines`` is totalled in ``Statement.methods`` for comparison;
    sites, grid nodes, rewards and the peaker avoided follow ``method``. ``reason`` says
    why that method (shown in the statement).
    """
    terms = terms or SettlementTerms()
    by_name = {b.method: b for b in baselines}
    if method not in by_name:
        raise UnknownMethodError(
            f"no baseline {method!r} for event {event.id} (its data does not allow it): "
            "choose one of "
            f"{', '.join(by_name) or '(none computed)'}"
        )
    if not event.end > event.start:
        raise InvalidError(f"event {event.id} has an empty window")
    w = _weights(meter, event.start, event.end)
    hours = (event.end - event.start) / 3600.0
    z = terms.z
    sign = 1.0 if event.target_kw >= 0 else -1.0
    chosen = by_name[method]
    if chosen.aggregate is not None:
        raise UnknownMethodError(
            f"baseline {method!r} is computed per grid node for event {event.id} (too many "
            "sites to fit one by one): it settles no site; its total is listed with the "
            "other methods' in the statement of the recommended method"
        )
    s = _sums(meter, chosen, w, hours)

    # per site
    ids = np.asarray(list(meter.site_ids), dtype=object)
    nodes = np.asarray(list(meter.grid_nodes), dtype=object)
    along = sign * s.delivered_kw
    status = np.where(
        s.coverage <= 0,
        "no_data",
        np.where(along < terms.non_responder_kw, "non_responder", "responder"),
    )
    credited_kw = np.maximum(along, 0.0)
    credited_kwh = np.maximum(sign * s.delivered_kwh, 0.0)
    rw = terms.rewards
    reward = rw.rate * (credited_kwh if rw.basis == "kwh" else credited_kw)
    total_kw = float(s.delivered_kw.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total_kw != 0, 100.0 * s.delivered_kw / total_kw, 0.0)
    sites = pd.DataFrame(
        {
            "site_id": ids,
            "grid_node": nodes,
            "status": status,
            "coverage": s.coverage,
            "baseline_kw": s.baseline_kw,
            "actual_kw": s.actual_kw,
            "delivered_kw": s.delivered_kw,
            "delivered_kwh": s.delivered_kwh,
            "uncertainty_kw": z * s.sigma_kw,
            "uncertainty_kwh": z * s.sigma_kw * hours,
            "share_pct": share,
            "reward": reward,
        }
    )
    order = np.lexsort((ids.astype(str), -along))
    sites = sites.iloc[order].reset_index(drop=True)
    sites.insert(0, "rank", np.arange(1, len(sites) + 1))

    # per grid node
    if len(sites):
        gn = sites.groupby("grid_node", sort=True).agg(
            sites=("site_id", "size"),
            responders=("status", lambda x: int((x == "responder").sum())),
            delivered_kw=("delivered_kw", "sum"),
            delivered_kwh=("delivered_kwh", "sum"),
            reward=("reward", "sum"),
        )
        gn = gn.reset_index()
    else:
        gn = pd.DataFrame(
            columns=["grid_node", "sites", "responders", "delivered_kw", "delivered_kwh", "reward"]
        )

    # per interval (fleet totals over the covered site-intervals)
    actual = np.asarray(meter.actual_kw, dtype=np.float64)
    base = np.asarray(chosen.baseline_kw, dtype=np.float64)
    inside = w > 0
    intervals = pd.DataFrame(
        {
            "ts": meter.interval_starts()[inside],
            "baseline_kw": np.where(s.ok, base, 0.0).sum(axis=0)[inside],
            "actual_kw": np.where(s.ok, actual, 0.0).sum(axis=0)[inside],
            "delivered_kw": s.per_interval.sum(axis=0)[inside],
            "covered_sites": s.ok.sum(axis=0)[inside],
        }
    )

    # every method, totals only
    rows = []
    for b in baselines:
        sb = s if b is chosen else _sums(meter, b, w, hours)
        kw, kwh = (
            b.aggregate
            if b.aggregate is not None
            else (float(sb.delivered_kw.sum()), float(sb.delivered_kwh.sum()))
        )
        rows.append(
            {
                "method": b.method,
                "label": b.label,
                "chosen": b is chosen,
                "delivered_kw": kw,
                "delivered_kwh": kwh,
                "uncertainty_kw": z * sb.sigma_total_kw,
                "uncertainty_kwh": z * sb.sigma_total_kw * hours,
                "delivered_pct": 100.0 * kw / event.target_kw if event.target_kw else None,
                "bias_pct": b.accuracy.bias_pct,
                "rmse_pct": b.accuracy.rmse_pct,
            }
        )
    methods = pd.DataFrame(rows)

    covered = s.coverage > 0
    totals: dict[str, Any] = {
        "target_kw": float(event.target_kw),
        "baseline_kw": float(np.nansum(np.where(covered, s.baseline_kw, 0.0))),
        "actual_kw": float(np.nansum(np.where(covered, s.actual_kw, 0.0))),
        "delivered_kw": total_kw,
        "delivered_kwh": float(s.delivered_kwh.sum()),
        "uncertainty_kw": z * s.sigma_total_kw,
        "uncertainty_kwh": z * s.sigma_total_kw * hours,
        "delivered_pct": 100.0 * total_kw / event.target_kw if event.target_kw else 0.0,
        "hours": hours,
        "coverage": float(s.coverage.mean()) if len(s.coverage) else 0.0,
        "sites": len(ids),
        "responders": int((status == "responder").sum()),
        "non_responders": int((status == "non_responder").sum()),
        "sites_without_data": int((status == "no_data").sum()),
        "reward": float(reward.sum()),
    }
    peaker = _peaker(meter, s.per_interval.sum(axis=0), w, sign, total_kw, terms.emissions)
    all_notes = list(notes)
    if totals["sites_without_data"]:
        all_notes.append(
            f"{totals['sites_without_data']} site(s) had no meter data in the window and are "
            "settled at zero"
        )
    if peaker.hours_default and terms.emissions.hourly is not None:
        all_notes.append(
            f"the marginal-emissions series does not cover {peaker.hours_default} hour(s) of "
            "the event; the default factor was used there"
        )
    return Statement(
        event=event,
        method=method,
        method_label=chosen.label,
        chosen_by=chosen_by,
        reason=reason,
        accuracy=chosen.accuracy,
        confidence=terms.confidence,
        interval_s=meter.step_s,
        totals=totals,
        sites=sites,
        grid_nodes=gn,
        intervals=intervals,
        methods=methods,
        peaker=peaker,
        rewards=rw,
        notes=tuple(all_notes),
    )


def _peaker(
    meter: WindowMeter,
    delivered_t: FloatArray,
    w: FloatArray,
    sign: float,
    total_kw: float,
    ef: EmissionFactors,
) -> PeakerAvoided:
    inside = w > 0
    t0 = meter.interval_starts()
    factors, hit = ef.at(t0)
    hours_in = np.unique(np.floor(t0[inside] / 3600.0))
    hours_hit = np.unique(np.floor(t0[inside & hit] / 3600.0))
    n_series = len(hours_hit)
    n_default = len(hours_in) - n_series
    gross = 1.0 / (1.0 - ef.loss_fraction)
    if sign < 0:
        return PeakerAvoided(
            0.0, 0.0, 0.0, 0.0, ef.describe(), ef.loss_fraction, n_series, n_default
        )
    kwh_t = delivered_t * w * meter.step_s / 3600.0
    mwh = max(float(kwh_t.sum()), 0.0) * gross / 1000.0
    co2_t = max(float((kwh_t * factors).sum()), 0.0) * gross / 1e6
    if mwh > 0:
        mean_factor = 1000.0 * co2_t / mwh
    else:
        mean_factor = float(np.mean(factors[inside])) if inside.any() else ef.default_kg_per_mwh
    return PeakerAvoided(
        avoided_mwh=mwh,
        co2_avoided_t=co2_t,
        peak_capacity_mw=max(total_kw, 0.0) * gross / 1000.0,
        kg_co2_per_mwh=mean_factor,
        factor_source=ef.describe(),
        loss_fraction=ef.loss_fraction,
        hours_from_series=n_series,
        hours_default=n_default,
    )


def _accuracy(d: Delivery) -> Accuracy:
    """A method's accuracy at this fleet, from its placebo days before the event."""
    base = abs(d.baseline_kw)
    if d.placebo_days <= 0 or not math.isfinite(d.placebo_bias_kw) or base <= 0:
        return Accuracy(None, None, "no placebo day could be computed for this fleet")
    unc = d.uncertainty_kw if math.isfinite(d.uncertainty_kw) else 0.0
    return Accuracy(
        bias_pct=100.0 * d.placebo_bias_kw / base,
        rmse_pct=100.0 * math.hypot(d.placebo_bias_kw, unc) / base,
        basis=(
            f"{d.placebo_days} recent days of this fleet without an event, same window; "
            "the true effect there is zero"
        ),
    )


def statement_inputs(
    mv: EventMV,
    grid_node_of: Mapping[str, str],
    sites: Sequence[str] | None = None,
    site_sigma: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[WindowMeter, list[MethodBaseline]]:
    """The metered window and every method's baseline of a measured event, for :func:`settle_event`.

    Rows are ``sites`` (the event's participants; default: the sites of the method with
    the most rows); a
    method that left a site out (or marked it invalid) gives it a NaN baseline there, so
    that method settles it at zero. ``site_sigma`` gives methods' per-site 1-sigma
    placebo errors [kW] by method and site id (others: none per site).
    """
    if not mv.deliveries:
        raise InvalidError(
            f"event {mv.event.event_id} could not be measured by any baseline method: "
            "the meter history before it is too short or missing"
        )
    # rows: the participants, else the method with the most rows (one per site, not node)
    first = max((d.baseline for d in mv.deliveries.values()), key=lambda b: len(b.site_ids))
    ids = [str(x) for x in (first.site_ids if sites is None else sites)]
    pos = {s: i for i, s in enumerate(ids)}
    times = first.times
    step = float((times[1] - times[0]).total_seconds()) if len(times) > 1 else 900.0
    actual = np.full((len(ids), len(times)), np.nan)
    out: list[MethodBaseline] = []
    for name, d in mv.deliveries.items():
        b = d.baseline
        if len(b.times) != len(times) or (len(times) and b.times[0] != times[0]):
            raise ValueError(f"baseline {name} covers other intervals than {first.method}")
        rows = np.array([pos.get(str(x), -1) for x in b.site_ids], dtype=np.int64)
        keep = rows >= 0
        aggregate = None
        if len(ids) and not keep.any() and len(b.site_ids):  # fitted per grid node
            aggregate = (float(d.delivered_kw), float(d.delivered_kwh))
        kw = np.full_like(actual, np.nan)
        valid = np.asarray(b.valid, dtype=bool)[keep]
        kw[rows[keep]] = np.where(valid[:, None], np.asarray(b.kw, dtype=np.float64)[keep], np.nan)
        # the meter is the same whatever the method: take it wherever a method has it
        got = np.asarray(b.actual_kw, dtype=np.float64)[keep]
        actual[rows[keep]] = np.where(np.isfinite(got), got, actual[rows[keep]])
        unc = d.uncertainty_kw if math.isfinite(d.uncertainty_kw) else None
        per_site = (site_sigma or {}).get(name)
        sig = (
            None
            if not per_site
            else np.array([per_site.get(s, np.nan) for s in ids], dtype=np.float64)
        )
        out.append(
            MethodBaseline(
                method=name,
                label=METHOD_LABELS.get(name, name),
                baseline_kw=kw,
                accuracy=_accuracy(d),
                sigma_kw=sig,
                sigma_total_kw=unc,
                aggregate=aggregate,
            )
        )
    start = float(times[0].timestamp()) if len(times) else mv.event.start.timestamp()
    nodes = [grid_node_of.get(s, "") for s in ids]
    return WindowMeter(ids, nodes, start, step, actual), out


def settle(
    event: Event,
    mv: EventMV,
    grid_node_of: Mapping[str, str],
    method: str | None = None,
    terms: SettlementTerms | None = None,
    notes: Sequence[str] = (),
    sites: Sequence[str] | None = None,
    site_sigma: Mapping[str, Mapping[str, float]] | None = None,
) -> Statement:
    """The statement of a measured event: the recommended method unless ``method`` is given.

    ``sites`` are the rows to settle (the participants; default: every site measured).
    """
    meter, baselines = statement_inputs(mv, grid_node_of, sites, site_sigma)
    notes = [*notes, *(f"{m} not computed: {why}" for m, why in mv.errors.items())]
    if method is None:
        chosen, reason = mv.recommended, mv.reason
        by_name = {b.method: b for b in baselines}
        rec = by_name.get(chosen)
        if rec is not None and rec.aggregate is not None:
            chosen, reason = _per_site_fallback(baselines, chosen, reason)
        return settle_event(event, meter, baselines, chosen, reason, terms=terms, notes=notes)
    reason = (
        "asked for"
        if method == mv.recommended
        else f"asked for; the recommended method is {mv.recommended} ({mv.reason})"
    )
    return settle_event(
        event, meter, baselines, method, reason, chosen_by="requested", terms=terms, notes=notes
    )


def _per_site_fallback(
    baselines: Sequence[MethodBaseline], recommended: str, why: str
) -> tuple[str, str]:
    """The per-site method with the lowest placebo RMSE, when the recommended one has none."""
    per_site = [b for b in baselines if b.aggregate is None and b.accuracy.rmse_pct is not None]
    if not per_site:
        raise InvalidError(
            f"the recommended method {recommended} is computed per grid node only and no "
            "other method has a per-site baseline: this event cannot be settled per site"
        )
    best = min(per_site, key=lambda b: float(b.accuracy.rmse_pct or 0.0))
    return best.method, (
        f"the recommended method {recommended} ({why}) is fitted per grid node at this fleet "
        f"size and gives no per-site figure; settled on {best.method}, the per-site method "
        "with the lowest placebo RMSE here"
    )
