"""The fossil peaker avoided: MWh a gas peaker did not generate, CO2 and capacity spared.

A VPP's delivery in an "up" event replaces the marginal plant that would otherwise have
met the peak, usually an open-cycle gas turbine (OCGT). Energy delivered at the customers'
meters spares more at the plant (network losses), so both are grossed up by the loss
fraction. Emissions use a marginal factor: a constant (the OCGT default below) or an
hourly marginal-emissions series read from a CSV file (:func:`read_marginal_emissions`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.domain.errors import InvalidError
from gridflock.domain.messages import FloatArray

__all__ = [
    "DEFAULT_LOSS_FRACTION",
    "DEFAULT_LOSS_SOURCE",
    "OCGT_KG_CO2_PER_MWH",
    "OCGT_SOURCE",
    "EmissionFactors",
    "EmissionsFileError",
    "parse_marginal_emissions",
    "read_marginal_emissions",
]

#: Natural gas burns to 56.1 kg CO2 per GJ of fuel (net calorific value); an open-cycle
#: gas turbine converts about 35 % of it to electricity: 56.1 * 3.6 / 0.35 = 577 kg/MWh.
OCGT_KG_CO2_PER_MWH = 577.0
OCGT_SOURCE = (
    "open-cycle gas turbine: 56.1 kg CO2/GJ natural gas (IPCC 2006 Guidelines, vol. 2, "
    "table 1.4, net calorific value) at 35 % net electrical efficiency = 577 kg CO2/MWh"
)
#: Share of generated energy lost in transmission and distribution before the meter.
DEFAULT_LOSS_FRACTION = 0.05
DEFAULT_LOSS_SOURCE = (
    "about 5 % of electricity is lost in transmission and distribution (US EIA, "
    "'How much electricity is lost in transmission and distribution?')"
)
#: Plausible range of a marginal emission factor [kg CO2/MWh] (lignite is ~1,100).
MAX_FACTOR = 2000.0


class EmissionsFileError(InvalidError):
    """A marginal-emissions file that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class EmissionFactors:
    """The marginal emission factor [kg CO2/MWh generated] and the network losses.

    ``hourly`` (optional) is a series indexed by UTC hour start; hours it does not cover
    fall back to ``default_kg_per_mwh`` and are counted as such in a statement.
    """

    default_kg_per_mwh: float = OCGT_KG_CO2_PER_MWH
    default_source: str = OCGT_SOURCE
    loss_fraction: float = DEFAULT_LOSS_FRACTION
    loss_source: str = DEFAULT_LOSS_SOURCE
    hourly: pd.Series | None = field(default=None, compare=False)
    hourly_source: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.default_kg_per_mwh <= MAX_FACTOR:
            raise InvalidError(
                f"emission factor {self.default_kg_per_mwh} kg CO2/MWh is outside "
                f"[0, {MAX_FACTOR:g}]: give it in kg CO2 per MWh generated"
            )
        if not 0 <= self.loss_fraction < 0.5:
            raise InvalidError(
                f"network loss fraction {self.loss_fraction} is outside [0, 0.5): give a "
                "fraction such as 0.05 for 5 %"
            )

    def at(self, ts: FloatArray) -> tuple[FloatArray, np.ndarray]:
        """Factors [kg/MWh] at UTC epoch seconds ``ts`` and whether each came from the series."""
        ts = np.asarray(ts, dtype=np.float64)
        out = np.full(ts.shape, self.default_kg_per_mwh)
        hit = np.zeros(ts.shape, dtype=bool)
        if self.hourly is None or not len(self.hourly) or not len(ts):
            return out, hit
        hours = (np.floor(ts / 3600.0) * 3600.0).astype(np.int64)
        keys = _epoch_s(self.hourly.index)
        pos = np.searchsorted(keys, hours)
        pos_c = np.minimum(pos, len(keys) - 1)
        hit = keys[pos_c] == hours
        vals = self.hourly.to_numpy(dtype=np.float64)
        out = np.where(hit, vals[pos_c], out)
        return out, hit

    def describe(self) -> str:
        """Where the factors come from, in one sentence."""
        if self.hourly is not None:
            return (
                f"hourly marginal emissions from {self.hourly_source or 'a file'}; hours it "
                f"does not cover: {self.default_source}"
            )
        return self.default_source


def _epoch_s(index: pd.Index) -> np.ndarray:
    di = pd.DatetimeIndex(index).tz_convert("UTC").as_unit("s")
    return np.asarray(di.asi8, dtype=np.int64)


def parse_marginal_emissions(text: str, source: str = "the file") -> pd.Series:
    """An hourly marginal-emissions series from CSV text, or a clear error listing every problem.

    Columns: ``ts`` (hour start, ISO 8601 with an offset or ``Z``) and ``kg_co2_per_mwh``
    (marginal emissions per MWh generated, 0..2000). Returns a float series indexed by
    UTC hour start, sorted. Rows must be on whole hours, once each.
    """
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise EmissionsFileError(
            f"{source}: not a readable CSV ({e}); expected a header 'ts,kg_co2_per_mwh' "
            "and one row per hour"
        ) from None
    cols = [c.strip() for c in df.columns]
    df.columns = pd.Index(cols)
    missing = [c for c in ("ts", "kg_co2_per_mwh") if c not in cols]
    if missing:
        raise EmissionsFileError(
            f"{source}: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(cols) or 'none'}); expected a header 'ts,kg_co2_per_mwh' "
            "(hour start in ISO 8601 UTC, kg CO2 per MWh)"
        )
    if not len(df):
        raise EmissionsFileError(f"{source}: no rows; give one row per hour")
    problems: list[str] = []
    raw_ts = df["ts"].str.strip()
    ts = pd.to_datetime(raw_ts, utc=True, errors="coerce", format="ISO8601")
    has_offset = raw_ts.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    bad_ts = ts.isna() | ~has_offset
    for i in np.flatnonzero(bad_ts.to_numpy())[:5].tolist():
        problems.append(
            f"row {i + 2}: ts {raw_ts.iloc[i]!r} is not an ISO 8601 time with an offset "
            "(e.g. 2026-07-01T17:00:00Z)"
        )
    vals = pd.to_numeric(df["kg_co2_per_mwh"].str.strip(), errors="coerce")
    bad_v = ~np.isfinite(vals.to_numpy(dtype=np.float64)) | (vals < 0) | (vals > MAX_FACTOR)
    for i in np.flatnonzero(bad_v.to_numpy())[:5].tolist():
        problems.append(
            f"row {i + 2}: kg_co2_per_mwh {df['kg_co2_per_mwh'].iloc[i]!r} is not a number "
            f"in [0, {MAX_FACTOR:g}]"
        )
    good = ~bad_ts
    off_hour = good & ((ts.dt.minute != 0) | (ts.dt.second != 0))
    for i in np.flatnonzero(off_hour.to_numpy())[:5].tolist():
        problems.append(f"row {i + 2}: ts {raw_ts.iloc[i]!r} is not on a whole hour")
    dup = good & ts.duplicated(keep="first")
    for i in np.flatnonzero(dup.to_numpy())[:5].tolist():
        problems.append(f"row {i + 2}: hour {raw_ts.iloc[i]!r} appears more than once")
    n_bad = int((bad_ts | bad_v | off_hour | dup).sum())
    if problems:
        raise EmissionsFileError(
            f"{source}: {n_bad} bad row(s) of {len(df)}: "
            + "; ".join(problems)
            + ("; ..." if n_bad > 5 else "")
            + ". Fix them and load the file again (nothing was loaded)"
        )
    series = pd.Series(
        vals.to_numpy(dtype=np.float64),
        index=pd.DatetimeIndex(ts).as_unit("s"),
        name="kg_co2_per_mwh",
    )
    return series.sort_index()


def read_marginal_emissions(path: Path | str) -> pd.Series:
    """Read :func:`parse_marginal_emissions` from a file (clear error if it is not there)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmissionsFileError(
            f"marginal-emissions file {p} not found: give the path of a CSV with columns "
            "ts,kg_co2_per_mwh or leave the setting empty to use the default factor"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise EmissionsFileError(f"marginal-emissions file {p} cannot be read: {e}") from None
    return parse_marginal_emissions(text, str(p))
