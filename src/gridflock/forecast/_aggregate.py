"""Group forecasts from site forecasts: sums of medians, bands from correlated errors."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from gridflock.forecast._types import Forecast

__all__ = ["aggregate"]


def aggregate(
    forecast: Forecast,
    groups: npt.NDArray[np.object_] | Mapping[str, npt.NDArray[np.object_]],
) -> Forecast:
    """Forecast of group totals (fleet, grid node, programme, region) from site forecasts.

    Quantiles are not additive: the group median is the sum of the site medians, and the
    group's spread below and above it combines the sites' spreads with the error
    correlation learned in training (``forecast.corr``):
    ``sd_group^2 = (1 - rho) * sum(sd_i^2) + rho * (sum sd_i)^2``, each side separately.

    Parameters
    ----------
    forecast : Forecast
        Per-site forecast.
    groups : array (n_keys,) of labels, or mapping label -> boolean mask / key array
        Group of each key (a key in one group), or named subsets (a key may be in several).

    """
    raise NotImplementedError
