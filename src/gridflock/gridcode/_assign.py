"""Every site's grid code: its explicit ``grid_code`` attribute, else from its position."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.domain.messages import StrArray
from gridflock.gridcode._region import code_at

__all__ = ["site_codes"]


def site_codes(sites: pd.DataFrame) -> StrArray:
    """Code of each site of a sites table (columns ``lat``, ``lon`` and ``grid_code``).

    An explicit, non-empty ``grid_code`` wins; otherwise ``code_at(lat, lon)``; ``""``
    where neither gives one. Vectorised: 100,000 sites take milliseconds.
    """
    n = len(sites)
    if n == 0:
        return np.zeros(0, dtype=object)
    pos = code_at(
        sites["lat"].to_numpy(dtype=np.float64, na_value=np.nan),
        sites["lon"].to_numpy(dtype=np.float64, na_value=np.nan),
    )
    if "grid_code" not in sites.columns:
        return pos
    given = sites["grid_code"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    out: StrArray = np.where(given != "", given, pos).astype(object)
    return out
