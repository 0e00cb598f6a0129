"""Global LightGBM quantile models: training, the model bundle, prediction.

One model per quantity and quantile serves every site (site attributes and the site's own
recent history, divided by its scale, are features), so 100,000 sites cost one model. Training
rows are sampled (site, target step, issue time) triples of both horizons, each row's features
as known at its issue time. The final ``calibration_days`` of the training range are first
held out: models fit on the rest forecast them, and two figures are learned from those honest
errors: per quantile, how much to stretch the band about the median so that site quantiles are
calibrated (split-conformal scaling), and how strongly the sites' level errors move
together (a correlation per horizon and per three-hour block of the local day, so that group
totals get bands of the right width in :func:`gridflock.forecast.aggregate`: the midday's
common PV error and the evening's independent EV spikes need different ones). Then the
models are refit on everything (on histories up to ``refit_max_days`` long; on longer ones
the calibration fit is kept).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.forecast._features import (
    DAY,
    FEATURES,
    SCALE_DAYS,
    STEP_S,
    Rows,
    build_features,
)
from gridflock.forecast._types import (
    STEP,
    FloatArray,
    Forecast,
    History,
    HorizonName,
    SiteAttributes,
    WeatherSource,
)

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["ModelBundle", "TrainConfig", "predict", "train"]

FORMAT = "gridflock-forecast-bundle/1"
_MAX_ROWS_PER_CHUNK = 600_000


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the defaults suit a fleet of hundreds to thousands of sites.

    Attributes
    ----------
    quantiles : tuple of float
        Probability levels to forecast; must include 0.5 (at least 0.1, 0.5, 0.9).
    quantities : tuple of str or None
        Series to model (None: every series of the history).
    max_rows : int
        Training rows sampled per quantity (site x target step x issue time); bounds the
        training time whatever the fleet size.
    num_boost_round : int
        Boosting rounds per quantile model.
    learning_rate, num_leaves, min_data_in_leaf : LightGBM parameters
    intraday_hours : float [h]
        Length of the intraday horizon.
    issue_hour_local : float [h]
        Local hour at which day-ahead forecasts are issued (before noon) on D-1.
    calibration_days : int
        Final days of the training range held out to learn how the sites' errors correlate
        (for group quantiles) and how wide the bands must be; then the models are refit on
        everything (see ``refit_max_days``). 0 skips calibration (correlation 0, no
        stretching).
    refit_max_days : float [d]
        Refit on the whole history after calibration only when it is at most this long. On
        a longer history the held-out days are a small share of the rows (a week is 2 % of
        a year), the refit would cost a second fit of every model for little, and the
        calibration then describes exactly the models kept (split conformal).
    calibration_sites : int
        At most this many sites (a seeded sample) are forecast for calibration: forecasting
        the held-out week was about half the training time. Below 1,000 the learned error
        correlation drifts (on a 1,000-home fleet: 0.45 from 500 sites, 0.31-0.35 from all).
    calibration_intraday_every_h : float [h]
        Spacing of the intraday origins forecast on the calibration days (12 h: 14 origins
        of a week).
    max_bin : int
        LightGBM histogram bins per feature (63: the fits cost about a third less than
        with 255, and the features are smooth or few-valued).
    level_quantities : tuple of str
        Quantities learned relative to each site's level of the last 7 days (the target is
        the deviation from that mean, divided by the site's scale), for series whose level
        drifts with the season. None by default: on the twin's down flexibility it made the
        fleet's day-ahead forecast worse (skill +15.9 % against +22.6 % without; BENCHMARKS).
    seed : int
        Row sampling and LightGBM seed.
    num_threads : int
        LightGBM threads. 1 by default: on a machine shared with other work, OpenMP's
        waiting threads make 2 threads many times slower than 1 (measured: 15x on a busy
        2-core host); raise it on a dedicated machine.
    workers : int
        Quantities trained side by side in threads (each with ``num_threads`` LightGBM
        threads). 1 by default, for the same reason; on a dedicated machine, one per core
        trains the 8 quantities of a 1,000-site year about twice as fast (BENCHMARKS.md).
        The models do not depend on it.

    """

    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    quantities: tuple[str, ...] | None = None
    max_rows: int = 150_000
    num_boost_round: int = 80
    learning_rate: float = 0.12
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    intraday_hours: float = 8.0
    issue_hour_local: float = 10.0
    calibration_days: int = 7
    refit_max_days: float = 120.0
    calibration_sites: int = 1000
    calibration_intraday_every_h: float = 12.0
    max_bin: int = 63
    level_quantities: tuple[str, ...] = ()
    seed: int = 0
    num_threads: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        qs = tuple(float(q) for q in self.quantiles)
        if not qs or list(qs) != sorted(set(qs)) or not all(0.0 < q < 1.0 for q in qs):
            raise ValueError(f"quantiles must be distinct, ascending, in (0, 1): {qs}")
        if 0.5 not in qs:
            raise ValueError("quantiles must include 0.5 (the median)")
        object.__setattr__(self, "quantiles", qs)
        if self.quantities is not None:
            object.__setattr__(self, "quantities", tuple(self.quantities))
        object.__setattr__(self, "level_quantities", tuple(self.level_quantities))
        if self.workers < 1 or self.num_threads < 1:
            raise ValueError("workers and num_threads must be >= 1")
        if self.max_rows < 100 or self.num_boost_round < 1:
            raise ValueError("max_rows must be >= 100 and num_boost_round >= 1")
        if not 0.0 <= self.issue_hour_local < 24.0 or self.intraday_hours <= 0:
            raise ValueError("issue_hour_local must be in [0, 24) and intraday_hours > 0")

    def lgb_params(self, alpha: float) -> dict[str, Any]:
        """LightGBM parameters of the model of quantile ``alpha``."""
        return {
            "objective": "quantile",
            "alpha": alpha,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "max_bin": self.max_bin,
            "force_col_wise": True,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


@dataclass(eq=False)
class ModelBundle:
    """Trained models of every quantity, with what is needed to use and judge them.

    ``models[quantity][i]`` is the LightGBM model text of ``quantiles[i]``; one more, the
    last, forecasts the mean. ``meta`` holds
    the trained range, rows, calibration figures (``stretch``, ``corr``, ``scale``) per
    quantity, and, once set by the caller, backtest figures (``meta["backtest"]``).
    :meth:`to_bytes`/:meth:`from_bytes` round-trip it.
    """

    models: dict[str, list[str]]
    quantiles: tuple[float, ...]
    features: tuple[str, ...]
    config: TrainConfig
    meta: dict[str, Any] = field(default_factory=dict)
    _boosters: dict[str, list[lgb.Booster]] = field(default_factory=dict, repr=False)

    @property
    def version(self) -> str:
        """Content hash of the models (stable across serialisation)."""
        h = hashlib.sha256()
        for q in sorted(self.models):
            h.update(q.encode())
            for text in self.models[q]:
                h.update(text.encode())
        return h.hexdigest()[:16]

    @property
    def quantities(self) -> tuple[str, ...]:
        """Quantities this bundle forecasts."""
        return tuple(self.models)

    def boosters(self, quantity: str) -> list[lgb.Booster]:
        """The loaded LightGBM models of ``quantity`` (cached)."""
        if quantity not in self._boosters:
            self._boosters[quantity] = [
                _lgb().Booster(model_str=text) for text in self.models[quantity]
            ]
        return self._boosters[quantity]

    def to_bytes(self) -> bytes:
        """Serialise (zlib-compressed JSON of metadata and model texts)."""
        doc = {
            "format": FORMAT,
            "version": self.version,
            "quantiles": list(self.quantiles),
            "features": list(self.features),
            "config": asdict(self.config),
            "meta": self.meta,
            "models": self.models,
        }
        return zlib.compress(json.dumps(doc, default=_json_default).encode(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBundle:
        """Inverse of :meth:`to_bytes`; refuses data of another format."""
        try:
            doc = json.loads(zlib.decompress(data))
        except (zlib.error, ValueError) as e:
            raise ValueError(f"not a forecast model bundle ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a forecast model bundle of format {FORMAT}")
        cfg = dict(doc["config"])
        cfg["quantiles"] = tuple(cfg["quantiles"])
        if cfg.get("quantities") is not None:
            cfg["quantities"] = tuple(cfg["quantities"])
        if "level_quantities" in cfg:
            cfg["level_quantities"] = tuple(cfg["level_quantities"])
        return cls(
            models={k: list(v) for k, v in doc["models"].items()},
            quantiles=tuple(doc["quantiles"]),
            features=tuple(doc["features"]),
            config=TrainConfig(**cfg),
            meta=dict(doc["meta"]),
        )


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    raise TypeError(f"cannot serialise {type(o).__name__}")


# ---------------------------------------------------------------------------- time helpers
def _market_tz(sites: SiteAttributes) -> str:
    """The most common site time zone (the day-ahead day's calendar)."""
    if sites.n == 0:
        return "UTC"
    tz, _ = Counter(str(z) or "UTC" for z in sites.tz.tolist()).most_common(1)[0]
    return tz or "UTC"


def _index(t0: pd.Timestamp, when: pd.Timestamp) -> int:
    """Steps from ``t0`` to ``when`` (floor)."""
    return int(np.floor((when - t0) / STEP))


def horizon_window(
    issued_at: pd.Timestamp,
    horizon: HorizonName | pd.Timedelta,
    tz: str,
    intraday_hours: float,
) -> tuple[pd.DatetimeIndex, str]:
    """The target steps of a forecast issued at ``issued_at`` and the horizon's name."""
    issued_at = _utc(issued_at)
    nxt = issued_at.ceil("15min")
    if isinstance(horizon, pd.Timedelta):
        if not pd.Timedelta(0) < horizon <= pd.Timedelta(hours=48):
            raise ValueError(f"a custom horizon must be in (0, 48 h], got {horizon}")
        return pd.date_range(nxt, nxt + horizon, freq="15min", inclusive="left"), "custom"
    if horizon == "intraday":
        end = nxt + pd.Timedelta(hours=intraday_hours)
        return pd.date_range(nxt, end, freq="15min", inclusive="left"), "intraday"
    if horizon == "day_ahead":
        local_day = issued_at.tz_convert(tz).normalize().tz_localize(None) + pd.Timedelta(days=1)
        start = local_day.tz_localize(tz).tz_convert("UTC")
        end = (local_day + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
        return pd.date_range(start, end, freq="15min", inclusive="left"), "day_ahead"
    raise ValueError(f"horizon must be 'intraday', 'day_ahead' or a Timedelta, got {horizon!r}")


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {ts}")
    return ts.tz_convert("UTC")


def _day_ahead_origins(
    times: pd.DatetimeIndex, tz: str, issue_hour: float, lo: int, hi: int
) -> list[tuple[int, int, int]]:
    """(issue index, first target, end target) of every whole local day in [lo, hi)."""
    if hi <= lo:
        return []
    t0 = times[0]
    first = times[lo].tz_convert(tz).normalize().tz_localize(None)
    last = (t0 + hi * STEP).tz_convert(tz).normalize().tz_localize(None)
    out = []
    for day in pd.date_range(first, last, freq="D"):
        start = day.tz_localize(tz).tz_convert("UTC")
        end = (day + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
        issue = (day - pd.Timedelta(days=1) + pd.Timedelta(hours=issue_hour)).tz_localize(tz)
        a, j0, j1 = _index(t0, issue), _index(t0, start), _index(t0, end)
        if j0 >= lo and j1 <= hi and a >= DAY:
            out.append((a, j0, j1))
    return out


# ---------------------------------------------------------------------------- training
def _sample_rows(
    y: Any, times: pd.DatetimeIndex, tz: str, cfg: TrainConfig, hi: int, n_rows: int, seed: int
) -> Rows:
    """Training rows of both horizons with a known target, targets before step ``hi``."""
    rng = np.random.default_rng(seed)
    n_sites = y.shape[0]
    origins = _day_ahead_origins(times, tz, cfg.issue_hour_local, DAY, hi)
    h_steps = max(1, round(cfg.intraday_hours * 4))
    want = int(n_rows * 1.25) + 10
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_da = want // 2 if origins else 0
    if n_da:
        o = np.array(origins)
        pick = o[rng.integers(0, len(o), n_da)]
        target = pick[:, 1] + (rng.random(n_da) * (pick[:, 2] - pick[:, 1])).astype(np.int64)
        parts.append((rng.integers(0, n_sites, n_da), target, pick[:, 0]))
    n_id = want - n_da
    if hi > DAY + 1:
        target = rng.integers(DAY + 1, hi, n_id)
        lead = rng.integers(0, h_steps, n_id)
        issue = np.maximum(target - lead, DAY)
        parts.append((rng.integers(0, n_sites, n_id), target, issue))
    if not parts:
        raise ValueError("the history is too short to train: it needs at least 2 days")
    site = np.concatenate([p[0] for p in parts]).astype(np.int64)
    target = np.concatenate([p[1] for p in parts]).astype(np.int64)
    issue = np.concatenate([p[2] for p in parts]).astype(np.int64)
    ok = ~np.isnan(y[site, target])
    site, target, issue = site[ok][:n_rows], target[ok][:n_rows], issue[ok][:n_rows]
    return Rows(site, target, issue)


@dataclass
class _Design:
    """One quantity's training rows and their features, built once for both fits."""

    rows: Rows
    x: Any
    z: Any
    fallback: float
    level: bool


def _design(
    history: History, quantity: str, weather: WeatherSource, cfg: TrainConfig, seed: int
) -> _Design:
    """Sample the training rows of one quantity over the whole history, with features.

    Features of a row use only what was known at its issue time, so the rows whose target
    lies before the calibration cut are valid rows of the calibration fit as they are: one
    feature matrix serves both fits.
    """
    y = history.series[quantity]
    hi = y.shape[1]
    tz = _market_tz(history.sites)
    t0_s = history.times[0].timestamp()
    fallback = _fallback_scale(y)
    # small histories: a few rows per known value are plenty (more only repeats them)
    n_rows = min(cfg.max_rows, 6 * int(np.sum(~np.isnan(y))))
    rows = _sample_rows(y, history.times, tz, cfg, hi, n_rows, seed)
    if len(rows) < 50:
        raise ValueError(
            f"series {quantity!r} has only {len(rows)} known values to learn from; "
            "it needs at least 50 (and 2 days of history)"
        )
    x, scale = build_features(y, t0_s, history.sites, rows, weather, fallback)
    level = quantity in cfg.level_quantities
    z = y[rows.site, rows.target] / scale - (_level(x) if level else 0.0)
    return _Design(rows, x, z, fallback, level)


_MEAN_7D = FEATURES.index("mean_7d")


def _level(x: Any) -> FloatArray:
    """Each row's level: the site's mean of the 7 days before issue / its scale (0 if unknown)."""
    return np.nan_to_num(np.asarray(x[:, _MEAN_7D], dtype=np.float64), nan=0.0)


def _fit(d: _Design, cfg: TrainConfig, hi: int | None = None) -> list[str]:
    """Fit the quantile models (and the mean model) on the design's rows with target < hi."""
    x, z = d.x, d.z
    if hi is not None:
        keep = d.rows.target < hi
        x, z = x[keep], z[keep]
    lgb = _lgb()
    data = lgb.Dataset(x, label=z, feature_name=list(FEATURES), free_raw_data=True)
    texts = []
    for q in cfg.quantiles:
        booster = lgb.train(cfg.lgb_params(q), data, num_boost_round=cfg.num_boost_round)
        texts.append(booster.model_to_string())
    mean_params = cfg.lgb_params(0.5) | {"objective": "regression"}
    mean_params.pop("alpha")
    booster = lgb.train(mean_params, data, num_boost_round=cfg.num_boost_round)
    texts.append(booster.model_to_string())  # the last model forecasts the mean
    return texts


def _fallback_scale(y: Any) -> float:
    """Typical site scale, for sites with no history yet [kW].

    The median over sites of each site's scale as the features define it (mean absolute
    value of the last ``SCALE_DAYS``), here over the history's last ``SCALE_DAYS``: over a
    whole year it cost 2.6 s per quantity at 1,000 sites.
    """
    y = y[:, -SCALE_DAYS * DAY :]
    with np.errstate(all="ignore"):
        per_site = np.nanmean(np.abs(y), axis=1) if y.size else np.zeros(0)
    per_site = per_site[np.isfinite(per_site)]
    return float(np.median(per_site)) if len(per_site) else 1.0


def train(
    history: History, weather: WeatherSource, config: TrainConfig | None = None
) -> ModelBundle:
    """Train one global quantile model per quantity and quantile over all sites.

    Parameters
    ----------
    history : History
        Measured series (at least 2 days; a few weeks for weekly lags; NaN gaps are
        skipped as targets).
    weather : WeatherSource
        Weather forecasts as they were known at each training issue time (the twin's or a
        file's); a :class:`WeatherSeries` of actuals works too (perfect forecasts).
    config : TrainConfig
        Defaults if None.

    """
    cfg = config or TrainConfig()
    quantities = cfg.quantities or history.quantities
    missing = [q for q in quantities if q not in history.series]
    if missing:
        raise ValueError(f"the history has no series {missing}; it has {history.quantities}")
    n_t = len(history.times)
    if n_t < 2 * DAY + 1:
        raise ValueError(
            f"the history covers {n_t} steps of 15 min; training needs at least 2 days"
        )
    cal_steps = cfg.calibration_days * DAY
    calibrate = cfg.calibration_days > 0 and n_t - cal_steps >= 3 * DAY
    models: dict[str, list[str]] = {}
    meta: dict[str, Any] = {
        "trained_from": history.times[0].isoformat(),
        "trained_to": (history.times[-1] + STEP).isoformat(),
        "n_sites": history.n_sites,
        "params": cfg.lgb_params(0.5) | {"num_boost_round": cfg.num_boost_round},
        "rows": {},
        "scale": {},
        "stretch": {},
        "corr": {},
        "calibration": {},
        "level": {},
        "error_ar": {},
        "refit": {},
    }
    jobs = [(k, q) for k, q in enumerate(quantities)]

    def run(job: tuple[int, str]) -> _Trained:
        k, quantity = job
        return _train_quantity(history, weather, cfg, quantity, cfg.seed * 1000 + k, calibrate)

    workers = max(1, min(cfg.workers, len(jobs)))
    if workers > 1:
        # LightGBM and NumPy's large-array kernels release the GIL: quantities train side
        # by side, and each has its own seed, so the models do not depend on ``workers``.
        with ThreadPoolExecutor(workers, thread_name_prefix="gridflock-train") as pool:
            done = list(pool.map(run, jobs))
    else:
        done = [run(job) for job in jobs]
    for (_, quantity), t in zip(jobs, done, strict=True):
        models[quantity] = t.texts
        meta["rows"][quantity] = t.rows
        meta["scale"][quantity] = t.fallback
        meta["stretch"][quantity] = t.stretch
        meta["corr"][quantity] = t.corr
        meta["level"][quantity] = t.level
        meta["refit"][quantity] = t.refit
        if t.calibration is not None:
            meta["error_ar"][quantity] = {h: c["error_ar"] for h, c in t.calibration.items()}
            meta["calibration"][quantity] = t.calibration
    return ModelBundle(models, cfg.quantiles, FEATURES, cfg, meta)


@dataclass
class _Trained:
    """One quantity's models and what its calibration learned."""

    texts: list[str]
    rows: int
    fallback: float
    stretch: dict[str, list[float]]
    corr: dict[str, float]
    level: bool
    calibration: dict[str, dict[str, Any]] | None
    refit: bool


def _train_quantity(
    history: History,
    weather: WeatherSource,
    cfg: TrainConfig,
    quantity: str,
    seed: int,
    calibrate: bool,
) -> _Trained:
    """Fit one quantity: held-out calibration first (if asked), then the models on all."""
    n_t = len(history.times)
    stretch = {h: [1.0] * len(cfg.quantiles) for h in ("day_ahead", "intraday")}
    corr = {"day_ahead": 0.0, "intraday": 0.0}
    design = _design(history, quantity, weather, cfg, seed)
    cal = None
    texts: list[str] | None = None
    if calibrate:
        hi = n_t - cfg.calibration_days * DAY
        texts = _fit(design, cfg, hi)
        fallback = _fallback_scale(history.series[quantity][:, :hi])
        probe = ModelBundle(
            {quantity: texts},
            cfg.quantiles,
            FEATURES,
            cfg,
            {"scale": {quantity: fallback}, "level": {quantity: design.level}},
        )
        cal = _calibrate(probe, quantity, history, weather, hi)
        stretch = {h: cal[h]["stretch"] for h in ("day_ahead", "intraday") if h in cal}
        corr = {h: cal[h]["corr"] for h in ("day_ahead", "intraday") if h in cal}
    refit = texts is None or n_t / DAY <= cfg.refit_max_days
    if refit:
        texts = _fit(design, cfg)
    assert texts is not None
    return _Trained(
        texts, len(design.rows), design.fallback, stretch, corr, design.level, cal, refit
    )


def _calibrate(
    probe: ModelBundle, quantity: str, history: History, weather: WeatherSource, hi: int
) -> dict[str, dict[str, Any]]:
    """Stretch factors and error correlation from forecasts of steps [hi, end) (held out)."""
    from gridflock.forecast._aggregate import combine, group_masks

    cfg = probe.config
    n_t = len(history.times)
    y = history.series[quantity]
    sites = history.sites
    rng = np.random.default_rng(cfg.seed + 7)
    chosen = np.sort(rng.permutation(sites.n)[: cfg.calibration_sites])
    sub = sites.take(chosen)
    y_sub = y[chosen]
    tz = _market_tz(sites)
    t0_s = history.times[0].timestamp()
    out: dict[str, dict[str, Any]] = {}
    h_steps = max(1, round(cfg.intraday_hours * 4))
    plans = {
        "day_ahead": [
            (a, np.arange(j0, j1))
            for a, j0, j1 in _day_ahead_origins(history.times, tz, cfg.issue_hour_local, hi, n_t)
        ],
        "intraday": [
            (a, np.arange(a, min(a + h_steps, n_t)))
            for a in range(hi, n_t - 4, max(1, round(cfg.calibration_intraday_every_h * 4)))
        ],
    }
    qs = cfg.quantiles
    for horizon, origins in plans.items():
        if not origins:
            continue
        preds, means, actual = [], [], []
        for a, targets in origins:
            p, mu = _predict_block(probe, quantity, y_sub, t0_s, sub, weather, a, targets)
            preds.append(p)
            means.append(mu)
            actual.append(y_sub[:, targets])
        p_all = np.concatenate(preds, axis=1)  # (n, m, nq)
        mu_all = np.concatenate(means, axis=1)
        y_all = np.concatenate(actual, axis=1)
        stretch = _stretch_factors(y_all, p_all, qs)
        p_cal = _apply_stretch(p_all, qs, stretch)
        masks = group_masks(sub, ("fleet", "grid_node"))
        corr, cov = _fit_corr(y_all, p_cal, mu_all, qs, masks, combine)
        block = hour_blocks(history.times[np.concatenate([t for _, t in origins])], tz)
        by_block = _fit_corr_by_block(y_all, p_cal, mu_all, qs, masks, block, corr)
        rho_steps = np.asarray(by_block)[block]
        error_ar = _fit_error_ar(
            y_all, p_cal, mu_all, qs, masks, rho_steps, [len(t) for _, t in origins]
        )
        known = ~np.isnan(y_all)
        lo, hi_q = p_cal[..., 0], p_cal[..., -1]
        site_cov = float(np.mean((y_all[known] >= lo[known]) & (y_all[known] <= hi_q[known])))
        out[horizon] = {
            "stretch": stretch,
            "corr": corr,
            "site_coverage": site_cov,
            "group_coverage": cov,
            "corr_by_block": by_block,
            "error_ar": error_ar,
            "origins": len(origins),
        }
    return out


#: The local day is cut into this many blocks, each with its own error correlation (3 h).
HOUR_BLOCKS = 8
#: A block's correlation needs this many group values; fewer keep the all-day one.
CORR_BLOCK_MIN_POINTS = 40


def hour_blocks(times: pd.DatetimeIndex, tz: str) -> npt.NDArray[np.int64]:
    """Three-hour block of the local day (0: 00:00-03:00, ... 7: 21:00-24:00) of each time."""
    local = pd.DatetimeIndex(times).tz_convert(tz)
    return np.asarray(local.hour // (24 // HOUR_BLOCKS), dtype=np.int64)


def _fit_corr_by_block(
    y: Any,
    p: Any,
    mu: Any,
    qs: tuple[float, ...],
    masks: dict[str, Any],
    block: npt.NDArray[np.int64],
    fallback: float,
) -> list[float]:
    """:func:`_fit_corr` in each three-hour block of the local day (``fallback`` if thin).

    The level errors' correlation is not one number over the day: at midday a cloud
    forecast error moves every PV site together, in the evening household noise and EV
    spikes dominate and move apart.
    """
    from gridflock.forecast._aggregate import combine

    out = []
    for b in range(HOUR_BLOCKS):
        sel = block == b
        if int(sel.sum()) * len(masks) < CORR_BLOCK_MIN_POINTS:
            out.append(fallback)
            continue
        out.append(_fit_corr(y[:, sel], p[:, sel], mu[:, sel], qs, masks, combine)[0])
    return out


def _stretch_factors(y: Any, p: Any, qs: tuple[float, ...]) -> list[float]:
    """Per quantile, the factor on (P_q - P50) that makes the share of y below it equal q."""
    mid = qs.index(0.5)
    med = p[..., mid]
    known = ~np.isnan(y)
    out = []
    for i, q in enumerate(qs):
        if i == mid:
            out.append(1.0)
            continue
        dev = (p[..., i] - med)[known]
        yy, mm = y[known], med[known]
        lo_k, hi_k = 0.2, 8.0
        for _ in range(40):
            k = 0.5 * (lo_k + hi_k)
            share = float(np.mean(yy <= mm + k * dev))
            if (share < q) == (q > 0.5):
                lo_k = k
            else:
                hi_k = k
        out.append(round(0.5 * (lo_k + hi_k), 4))
    return out


def _apply_stretch(p: Any, qs: tuple[float, ...], stretch: list[float]) -> Any:
    mid = qs.index(0.5)
    med = p[..., mid : mid + 1]
    out = med + (p - med) * np.asarray(stretch)
    return np.sort(out, axis=-1)


#: A group's step counts in calibration when at least this share of its sites reported.
GROUP_KNOWN_SHARE = 0.9


def _known_group(y: Any, p: Any, mu: Any, m: Any) -> tuple[Any, Any, Any]:
    """A group's actual total and its sites' forecasts over the sites that reported.

    Per step, the sites without a reading are left out of both the total and the
    forecasts summed (their quantiles and mean set to 0), so a missing reading costs one
    site, not the group's quarter hour: with 1 % of readings missing a 1,000-site group
    has no quarter hour with every site. Steps with fewer than ``GROUP_KNOWN_SHARE`` of
    the sites known are NaN.
    """
    block = y[m]
    known = ~np.isnan(block)
    enough = known.mean(axis=0) >= GROUP_KNOWN_SHARE
    total = np.where(enough, np.where(known, block, 0.0).sum(axis=0), np.nan)
    return total, np.where(known[..., None], p[m], 0.0), np.where(known, mu[m], 0.0)


def _fit_corr(
    y: Any, p: Any, mu: Any, qs: tuple[float, ...], masks: dict[str, Any], combine: Any
) -> tuple[float, float]:
    """The error correlation whose group bands cover as the outer quantiles should."""
    target = qs[-1] - qs[0]
    names = [k for k, m in masks.items() if int(m.sum()) >= 2]
    if not names:
        return 0.0, float("nan")
    ys, ps, mus = [], [], []
    for name in names:
        gy, gp, gmu = _known_group(y, p, mu, masks[name])
        ys.append(gy)
        ps.append(gp)
        mus.append(gmu)

    def coverage(rho: float) -> float:
        hits, total = 0, 0
        for yy, pp, mm in zip(ys, ps, mus, strict=True):
            g = combine(pp, qs, np.full(pp.shape[1], rho), mm)
            ok = ~np.isnan(yy)
            hits += int(np.sum((yy[ok] >= g[ok, 0]) & (yy[ok] <= g[ok, -1])))
            total += int(ok.sum())
        return hits / max(total, 1)

    lo, hi = 0.0, 1.0
    if coverage(0.0) >= target:
        return 0.0, coverage(0.0)
    if coverage(1.0) <= target:
        return 1.0, coverage(1.0)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        if coverage(mid) < target:
            lo = mid
        else:
            hi = mid
    rho = 0.5 * (lo + hi)
    return round(rho, 4), coverage(rho)


def _fit_error_ar(
    y: Any,
    p: Any,
    mu: Any,
    qs: tuple[float, ...],
    masks: dict[str, Any],
    rho: Any,
    lengths: list[int],
) -> dict[str, list[float]]:
    """``[phi, sd]`` of the sites' and the groups' standardised errors (for peak times).

    ``y``, ``p``, ``mu`` hold the calibration issues side by side (``lengths`` steps each);
    group forecasts are combined with the learned correlation ``rho``, as in service.
    """
    from gridflock.forecast._aggregate import combine
    from gridflock.forecast._peak import fit_error_ar, spread

    mid = qs.index(0.5)
    edges = np.cumsum([0, *lengths])
    site_blocks, group_blocks = [], []
    sigma = spread(p[..., 0], p[..., -1], qs[0], qs[-1])
    for a, b in itertools.pairwise(edges):
        site_blocks.append((y[:, a:b], p[:, a:b, mid], sigma[:, a:b]))
    for m in masks.values():
        if int(m.sum()) < 2:
            continue
        gy, gp, gmu = _known_group(y, p, mu, m)
        g = combine(gp, qs, np.broadcast_to(np.asarray(rho, float), p.shape[1]), gmu)
        gs = spread(g[:, 0], g[:, -1], qs[0], qs[-1])
        for a, b in itertools.pairwise(edges):
            group_blocks.append((gy[None, a:b], g[None, a:b, mid], gs[None, a:b]))
    return {"site": fit_error_ar(site_blocks), "group": fit_error_ar(group_blocks)}


# ---------------------------------------------------------------------------- prediction
def _predict_block(
    bundle: ModelBundle,
    quantity: str,
    y: Any,
    t0_s: float,
    sites: SiteAttributes,
    weather: WeatherSource,
    issue: int,
    targets: Any,
    num_threads: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Raw quantiles (n_sites, len(targets), n_q) of one issue, and the mean; chunked."""
    n, m = y.shape[0], len(targets)
    boosters = bundle.boosters(quantity)
    out = np.empty((n, m, len(boosters)))
    fallback = float(bundle.meta.get("scale", {}).get(quantity, 1.0))
    level = bool(bundle.meta.get("level", {}).get(quantity, False))
    chunk = max(1, _MAX_ROWS_PER_CHUNK // max(m, 1))
    starts = list(range(0, n, chunk))
    threads = num_threads or bundle.config.num_threads

    def run(part: list[int], models: list[Any], lgb_threads: int) -> None:
        for s0 in part:
            s1 = min(n, s0 + chunk)
            site = np.repeat(np.arange(s0, s1, dtype=np.int64), m)
            target = np.tile(np.asarray(targets, dtype=np.int64), s1 - s0)
            rows = Rows(site, target, np.full(len(site), issue, dtype=np.int64))
            x, scale = build_features(y, t0_s, sites, rows, weather, fallback)
            anchor = _level(x) if level else 0.0
            for i, b in enumerate(models):
                z = b.predict(x, num_threads=lgb_threads)
                out[s0:s1, :, i] = ((np.asarray(z) + anchor) * scale).reshape(s1 - s0, m)

    if threads > 1 and len(starts) > 1:
        # chunks side by side, one LightGBM thread each: the features (a fifth of the time,
        # single-threaded) then overlap the trees. Each worker has its own Booster objects
        # (concurrent predictions on one Booster race on its iteration settings).
        w = min(threads, len(starts))
        texts = bundle.models[quantity]
        own = [boosters] + [[_lgb().Booster(model_str=t) for t in texts] for _ in range(w - 1)]
        with ThreadPoolExecutor(w, thread_name_prefix="gridflock-predict") as pool:
            for f in [pool.submit(run, starts[k::w], own[k], 1) for k in range(w)]:
                f.result()
    else:
        run(starts, boosters, threads)
    n_q = len(bundle.quantiles)
    mean = out[:, :, n_q] if out.shape[2] > n_q else out[:, :, bundle.quantiles.index(0.5)]
    return np.sort(out[:, :, :n_q], axis=-1), np.array(mean)


def predict(
    bundle: ModelBundle,
    history: History,
    weather: WeatherSource,
    issued_at: pd.Timestamp,
    horizon: HorizonName | pd.Timedelta = "day_ahead",
    *,
    quantities: tuple[str, ...] | None = None,
    tz: str | None = None,
    num_threads: int | None = None,
) -> dict[str, Forecast]:
    """Quantile forecasts per site for each quantity, issued at ``issued_at``.

    Parameters
    ----------
    bundle : ModelBundle
        From :func:`train` (or :meth:`ModelBundle.from_bytes`).
    history : History
        What was measured up to ``issued_at``; anything later is ignored (only steps that
        ended by ``issued_at`` are read, so passing more cannot leak).
    weather : WeatherSource
        Forecasts known at ``issued_at``.
    issued_at : Timestamp, tz-aware
        Issue time.
    horizon : "intraday", "day_ahead" or Timedelta
        ``intraday``: from the next quarter hour for ``config.intraday_hours``;
        ``day_ahead``: the local day after ``issued_at``'s local date (``tz``, default the
        sites' most common time zone), 92 to 100 steps on DST days; a Timedelta: that long
        from the next quarter hour (up to 48 h).
    quantities : tuple of str or None
        Subset to forecast (default: all the bundle knows that the history holds).
    tz : str or None
        Local time zone of the day-ahead day.
    num_threads : int or None
        LightGBM threads for this call (default: the bundle's ``config.num_threads``).

    Returns
    -------
    dict quantity -> Forecast with one key per site.

    """
    issued_at = _utc(issued_at)
    if len(history.times) == 0:
        raise ValueError("the history is empty: forecasts need at least the recent days")
    wanted = quantities or tuple(q for q in bundle.quantities if q in history.series)
    for q in wanted:
        if q not in bundle.models:
            raise ValueError(f"the model bundle has no model of {q!r}: {bundle.quantities}")
        if q not in history.series:
            raise ValueError(f"the history has no series {q!r}: {history.quantities}")
    cfg = bundle.config
    times, name = horizon_window(
        issued_at, horizon, tz or _market_tz(history.sites), cfg.intraday_hours
    )
    t0 = history.times[0]
    issue = _index(t0, issued_at)
    targets = np.array([_index(t0, t) for t in times], dtype=np.int64)
    if name == "custom":
        within = (times[-1] - issued_at) <= pd.Timedelta(hours=cfg.intraday_hours)
        kind = "intraday" if within else "day_ahead"
    else:
        kind = name
    out: dict[str, Forecast] = {}
    for q in wanted:
        raw, mean = _predict_block(
            bundle,
            q,
            history.series[q],
            t0.timestamp(),
            history.sites,
            weather,
            issue,
            targets,
            num_threads or cfg.num_threads,
        )
        stretch = bundle.meta.get("stretch", {}).get(q, {}).get(kind, [1.0] * len(cfg.quantiles))
        corr = _corr_steps(bundle, q, kind, times, _market_tz(history.sites))
        ar = bundle.meta.get("error_ar", {}).get(q, {}).get(kind, {})
        out[q] = Forecast(
            quantity=q,
            keys=history.sites.ids,
            times=times,
            quantiles=bundle.quantiles,
            values=_apply_stretch(raw, bundle.quantiles, list(stretch)),
            issued_at=issued_at,
            horizon=name,
            corr=corr,
            model_version=bundle.version,
            mean=mean,
            error_ar=_ar(ar.get("site")),
            group_error_ar=_ar(ar.get("group")),
        )
    return out


def _corr_steps(bundle: ModelBundle, quantity: str, kind: str, times: Any, tz: str) -> FloatArray:
    """Error correlation per step: its three-hour block's (all-day value if not learned)."""
    rho = float(bundle.meta.get("corr", {}).get(quantity, {}).get(kind, 0.0))
    cal = bundle.meta.get("calibration", {}).get(quantity, {}).get(kind, {})
    table = cal.get("corr_by_block")
    if not table or len(table) != HOUR_BLOCKS:
        return np.full(len(times), rho)
    return np.asarray(table, dtype=np.float64)[hour_blocks(times, tz)]


def _ar(v: Any) -> tuple[float, float]:
    """``(phi, sd)`` from stored meta (independent errors of the band's width if absent)."""
    return (float(v[0]), float(v[1])) if v else (0.0, 1.0)


_ = STEP_S  # the step length the features assume (15 min)


def _lgb() -> Any:
    """LightGBM, imported on first use: it costs a second of start-up for every process."""
    import lightgbm

    return lightgbm
