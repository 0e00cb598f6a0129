"""Files in: a table of meters (and weather) for a backtest, and recorded weather forecasts.

Both readers report every problem of a file at once, in words that say what to change,
in a ``ValueError`` (``BadFileError``); nothing is guessed silently: every assumption made
(time zone of naive timestamps, resampling, units) is returned as a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.forecast._locations import WeatherLocations
from gridflock.forecast._types import (
    STEP,
    FloatArray,
    History,
    SiteAttributes,
    WeatherSeries,
    WeatherSource,
)

__all__ = [
    "WEATHER_ALIASES",
    "BadFileError",
    "FileWeatherSource",
    "SeriesFile",
    "read_series_file",
    "read_weather_forecasts",
]

#: Column names (lower case) recognised as weather, and the name the models use.
WEATHER_ALIASES = {
    "ghi": "ghi",
    "ghi_w_m2": "ghi",
    "irradiance": "ghi",
    "global_irradiance": "ghi",
    "radiation": "ghi",
    "dni": "dni",
    "dhi": "dhi",
    "temp_air_c": "temp_air_c",
    "temperature": "temp_air_c",
    "temperature_c": "temp_air_c",
    "temp": "temp_air_c",
    "temp_c": "temp_air_c",
    "t2m": "temp_air_c",
    "air_temperature": "temp_air_c",
    "wind_speed_m_s": "wind_speed_m_s",
    "wind_speed": "wind_speed_m_s",
    "wind": "wind_speed_m_s",
    "windspeed": "wind_speed_m_s",
    "cloud_factor": "cloud_factor",
    "cloud_cover": "cloud_cover",
}
_TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date_time", "date", "utc", "datetime_utc")
_ISSUE_NAMES = (
    "issued_at", "issue_time", "issued", "forecast_issued", "run_time", "reference_time"
)  # fmt: skip
_VALID_NAMES = ("valid_at", "valid_time", "valid", "target_time", "timestamp", "ts", "time")
_MAX_BAD = 5
_LOCATION_NAMES = ("location", "weather_location", "station", "place")
_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "lng", "longitude")


class BadFileError(ValueError):
    """A file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


@dataclass
class SeriesFile:
    """What :func:`read_series_file` found: the series, the weather and notes on both."""

    history: History
    weather: WeatherSeries
    notes: list[str] = field(default_factory=list)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise BadFileError(path, ["the file does not exist"])
    if path.is_dir():
        raise BadFileError(path, ["this is a folder; give a CSV or parquet file"])
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline()
        counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
        sep = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except Exception as e:  # the reader's own message says what it could not parse
        kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
        raise BadFileError(path, [f"cannot be read as {kind}: {type(e).__name__}: {e}"]) from e


def _find(columns: list[str], wanted: str | None, names: tuple[str, ...]) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    if wanted is not None:
        return lower.get(wanted.lower().strip())
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _parse_times(
    col: pd.Series, tz: str | None, what: str, problems: list[str], notes: list[str]
) -> pd.DatetimeIndex | None:
    raw = col.astype(str)
    parsed = pd.to_datetime(raw, errors="coerce", utc=False, format="mixed")
    bad = parsed.isna() & col.notna()
    if col.isna().any():
        problems.append(
            f"column {col.name!r} ({what}) is empty in {int(col.isna().sum())} row(s), e.g. "
            f"data row {int(np.flatnonzero(col.isna().to_numpy())[0]) + 1}; every row needs a time"
        )
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:_MAX_BAD]
        examples = ", ".join(f"row {int(r) + 1}: {raw.iloc[r]!r}" for r in rows)
        problems.append(
            f"column {col.name!r} ({what}) has {int(bad.sum())} value(s) that are not times "
            f"({examples}); use ISO 8601 such as 2026-01-05T00:15:00Z"
        )
        return None
    if col.isna().any():
        return None
    try:
        idx = pd.DatetimeIndex(parsed)
    except (TypeError, ValueError):
        # mixed offsets: read every value as UTC
        idx = pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format="mixed"))
    if idx.tz is None:
        zone = tz or "UTC"
        try:
            idx = idx.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        except Exception as e:
            problems.append(f"cannot place the times of {col.name!r} in time zone {zone!r}: {e}")
            return None
        if idx.isna().any():
            problems.append(
                f"{int(np.sum(idx.isna()))} time(s) of {col.name!r} do not exist or are ambiguous "
                f"in {zone} (daylight-saving changes); give times with a UTC offset"
            )
            return None
        notes.append(
            f"times of {col.name!r} have no UTC offset: read as {zone} "
            + ("(given)" if tz else "(default; pass --tz to change)")
        )
    return idx.tz_convert("UTC").as_unit("ns")


def _numeric(frame: pd.DataFrame, cols: list[str], problems: list[str]) -> dict[str, FloatArray]:
    out: dict[str, FloatArray] = {}
    for c in cols:
        s = frame[c]
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna() & (s.astype(str).str.strip() != "")
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:_MAX_BAD]
            examples = ", ".join(f"row {int(r) + 1}: {s.iloc[r]!r}" for r in rows)
            problems.append(
                f"column {c!r} has {int(bad.sum())} value(s) that are not numbers ({examples}); "
                "fix them, leave them empty (missing) or drop the column"
            )
            continue
        arr = num.to_numpy(np.float64)
        if np.isinf(arr).any():
            problems.append(f"column {c!r} has infinite values; leave missing values empty")
            continue
        if np.isnan(arr).all():
            problems.append(f"column {c!r} has no value at all; drop it")
            continue
        out[c] = arr
    return out


def read_series_file(
    path: Path,
    *,
    timestamp: str | None = None,
    tz: str | None = None,
    weather_columns: tuple[str, ...] | None = None,
    lat: float = float("nan"),
    lon: float = float("nan"),
    country: str = "",
) -> SeriesFile:
    """Read a CSV or parquet of one timestamp column, value columns and weather columns.

    Parameters
    ----------
    path : Path
        ``.csv`` (any delimiter) or ``.parquet``.
    timestamp : str or None
        The time column (default: one named timestamp, ts, time, datetime, date, utc).
    tz : str or None
        Time zone of times without a UTC offset (default UTC), and the local calendar.
    weather_columns : tuple of str or None
        Columns that are weather (default: recognised names, see ``WEATHER_ALIASES``).
    lat, lon : float [deg]
        Place, for solar geometry (optional).
    country : str
        ISO country code for public holidays (optional).

    Values are mean power over each interval [kW] (any unit works, the scores are in it).
    The table is resampled to 15 minutes: finer data is averaged, coarser data held over
    its interval; gaps become missing values (NaN). Every problem is reported at once.

    """
    path = Path(path)
    frame = _read_table(path)
    problems: list[str] = []
    notes: list[str] = []
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if len(frame) == 0:
        raise BadFileError(path, ["the file has no data rows"])
    tcol = _find(columns, timestamp, _TIME_NAMES)
    if tcol is None:
        hint = f"no column {timestamp!r}" if timestamp else "no time column"
        raise BadFileError(
            path,
            [f"{hint} found among {columns[:12]}; name it 'timestamp' (or pass --timestamp NAME)"],
        )
    times = _parse_times(frame[tcol], tz, "time", problems, notes)
    rest = [c for c in columns if c != tcol]
    if weather_columns is None:
        wcols = [c for c in rest if c.lower().strip() in WEATHER_ALIASES]
    else:
        missing = [c for c in weather_columns if c not in rest]
        if missing:
            problems.append(f"weather column(s) {missing} not in the file (it has {rest})")
        wcols = [c for c in weather_columns if c in rest]
    vcols = [c for c in rest if c not in wcols]
    if not vcols:
        problems.append(
            f"no value column: every column other than {tcol!r} was taken as weather "
            f"({wcols}); add a column of the meter's power"
        )
    values = _numeric(frame, vcols, problems)
    wx = _numeric(frame, wcols, problems)
    if times is not None and times.has_duplicates:
        dup = times[times.duplicated()]
        problems.append(f"{len(dup)} duplicated time(s), first {dup[0]}; keep one row per time")
    if problems or times is None:
        raise BadFileError(path, problems or ["the time column could not be read"])

    order = np.argsort(times.asi8, kind="stable")
    if not (order == np.arange(len(order))).all():
        notes.append("rows were not in time order: sorted")
    times = times[order]
    data = pd.DataFrame({k: v[order] for k, v in {**values, **wx}.items()}, index=times)
    step = pd.Series(times).diff().median() if len(times) > 1 else STEP
    if pd.isna(step) or step <= pd.Timedelta(0):
        raise BadFileError(path, ["need at least two distinct times"])
    if step < STEP:
        data = data.resample("15min").mean()
        notes.append(f"data every {step}: averaged to 15 minutes")
    elif step > STEP:
        if pd.Timedelta(days=1) % step != pd.Timedelta(0):
            raise BadFileError(
                path, [f"the data's interval {step} does not divide a day; resample it first"]
            )
        reps = int(step / STEP)
        data = data.resample(step).mean()
        data = data.reindex(
            pd.date_range(data.index[0], data.index[-1] + step, freq="15min", inclusive="left")
        ).ffill(limit=reps - 1)
        notes.append(f"data every {step}: each value held over its {reps} quarter hours")
    else:
        data = data.resample("15min").mean()
    data.index = pd.DatetimeIndex(data.index).floor("15min")
    span_days = (data.index[-1] - data.index[0]) / pd.Timedelta(days=1)
    if span_days < 4:
        raise BadFileError(
            path,
            [
                f"the data covers {span_days:.1f} days; a backtest needs at least 4 (better "
                "4+ weeks: two for weekly patterns, then the test days)"
            ],
        )
    gaps = {c: float(data[c].isna().mean()) for c in vcols if c in data}
    for c, share in gaps.items():
        if share > 0.2:
            notes.append(f"column {c!r}: {share:.0%} of quarter hours missing")
    idx = pd.DatetimeIndex(data.index)
    series = {c: data[c].to_numpy(np.float64)[None, :] for c in vcols}
    sites = SiteAttributes.unknown(["file"], tz=tz or "UTC")
    if country:
        sites = SiteAttributes(
            **{**{f: getattr(sites, f) for f in sites.__dataclass_fields__},
               "country": np.array([country], dtype=object)}
        )  # fmt: skip
    weather = WeatherSeries(
        idx,
        {WEATHER_ALIASES.get(c.lower().strip(), c): data[c].to_numpy(np.float64) for c in wcols},
        lat=lat,
        lon=lon,
    )
    notes.append(
        f"{len(vcols)} series ({', '.join(vcols)}), {len(wcols)} weather column(s), "
        f"{idx[0]} to {idx[-1] + STEP} at 15 min"
    )
    return SeriesFile(History(idx, series, sites), weather, notes)


class FileWeatherSource:
    """Recorded weather forecasts from a CSV/parquet: ``issued_at``, ``valid_at``, columns.

    Each row is one forecast run's value for one valid time. For each (issue, valid) pair it
    answers with the latest run issued at or before the issue time, linearly interpolated
    between that run's valid times (an older run fills in where the latest does not reach);
    NaN if none covers it. So a backtest sees only what was known.
    """

    def __init__(
        self, path: Path, *, tz: str | None = None, frame: pd.DataFrame | None = None
    ) -> None:
        path = Path(path)
        if frame is None:
            frame = _read_table(path)
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        columns = list(frame.columns)
        problems: list[str] = []
        notes: list[str] = []
        icol = _find(columns, None, _ISSUE_NAMES)
        vcol = _find([c for c in columns if c != icol], None, _VALID_NAMES)
        if icol is None or vcol is None:
            raise BadFileError(
                path,
                [
                    "a weather forecast file needs an 'issued_at' column (when the forecast "
                    "was made) and a 'valid_at' column (the time it is for); found "
                    f"{columns[:12]}"
                ],
            )
        issued = _parse_times(frame[icol], tz, "issue time", problems, notes)
        valid = _parse_times(frame[vcol], tz, "valid time", problems, notes)
        rest = [c for c in columns if c not in (icol, vcol)]
        vals = _numeric(frame, rest, problems)
        if not rest:
            problems.append("no forecast column besides the issue and valid times")
        if problems or issued is None or valid is None:
            raise BadFileError(path, problems or ["the time columns could not be read"])
        self.notes = notes
        self.lat = float("nan")
        self.lon = float("nan")
        i_s = issued.asi8 / 1e9
        v_s = valid.asi8 / 1e9
        order = np.lexsort((v_s, i_s))
        self._issue = i_s[order]
        self._valid = v_s[order]
        self._cols = {WEATHER_ALIASES.get(c.lower(), c): v[order] for c, v in vals.items()}
        self._runs, self._starts = np.unique(self._issue, return_index=True)
        self._ends = np.append(self._starts[1:], len(self._issue))

    @property
    def names(self) -> tuple[str, ...]:
        """The forecast columns."""
        return tuple(self._cols)

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """See :class:`gridflock.forecast.WeatherSource`."""
        issued = np.asarray(issued_at, dtype=np.float64)
        valid = np.asarray(valid_at, dtype=np.float64)
        issued, valid = np.broadcast_arrays(issued, valid)
        out = {k: np.full(len(valid), np.nan) for k in self._cols}
        run = np.searchsorted(self._runs, issued, side="right") - 1
        todo = np.ones(len(valid), dtype=bool)
        for _back in range(4):  # the latest run, then up to three older ones
            live = todo & (run >= 0)
            if not live.any():
                break
            for r in np.unique(run[live]).tolist():
                rows = np.flatnonzero(live & (run == r))
                a, b = self._starts[r], self._ends[r]
                vv = self._valid[a:b]
                inside = (valid[rows] >= vv[0]) & (valid[rows] <= vv[-1])
                hit = rows[inside]
                for k, col in self._cols.items():
                    out[k][hit] = np.interp(valid[hit], vv, col[a:b])
                todo[hit] = False
            run = run - 1
        return out


def read_weather_forecasts(path: Path, *, tz: str | None = None) -> WeatherSource:
    """Recorded weather forecasts, at one place or several.

    Without a ``location`` column (or ``weather_location``, ``station``, ``place``) the file
    is one place: a :class:`FileWeatherSource`. With one, each location's rows are a source
    of their own and the result is a :class:`WeatherLocations`; ``lat`` and ``lon`` columns
    (constant per location) say where each is, so sites take the nearest; sites may also
    name theirs (``SiteAttributes.weather_location``). Every problem is reported at once
    (:class:`BadFileError`).
    """
    path = Path(path)
    frame = _read_table(path)
    frame.columns = [str(c) for c in frame.columns]
    lower = {c.lower().strip(): c for c in frame.columns}
    loc_col = next((lower[n] for n in _LOCATION_NAMES if n in lower), None)
    if loc_col is None:
        return FileWeatherSource(path, tz=tz, frame=frame)
    lat_col = next((lower[n] for n in _LAT_NAMES if n in lower), None)
    lon_col = next((lower[n] for n in _LON_NAMES if n in lower), None)
    problems: list[str] = []
    labels = frame[loc_col]
    if labels.isna().any():
        rows = (np.flatnonzero(labels.isna().to_numpy())[:_MAX_BAD] + 2).tolist()
        problems.append(f"column {loc_col!r} is empty in rows {rows}: name every row's location")
    sources: dict[str, WeatherSource] = {}
    positions: dict[str, tuple[float, float]] = {}
    drop = [c for c in (loc_col, lat_col, lon_col) if c is not None]
    for name, part in frame[labels.notna()].groupby(labels.astype(str), sort=False):
        key = str(name)
        if lat_col is not None and lon_col is not None:
            la = pd.to_numeric(part[lat_col], errors="coerce")
            lo = pd.to_numeric(part[lon_col], errors="coerce")
            if la.isna().any() or lo.isna().any() or la.nunique() > 1 or lo.nunique() > 1:
                problems.append(
                    f"location {key!r}: '{lat_col}'/'{lon_col}' must be one number each for "
                    "all its rows"
                )
                continue
            positions[key] = (float(la.iloc[0]), float(lo.iloc[0]))
        try:
            sources[key] = FileWeatherSource(
                path, tz=tz, frame=part.drop(columns=drop).reset_index(drop=True)
            )
        except BadFileError as e:
            problems += [f"location {key!r}: {p}" for p in e.problems]
    if problems or not sources:
        raise BadFileError(path, problems or [f"no rows with a {loc_col!r}"])
    try:
        return WeatherLocations(sources, positions or None)
    except ValueError as e:
        raise BadFileError(path, [str(e)]) from e
