"""Need-for-support windows: when a net import forecast crosses a limit or prices spike."""

from __future__ import annotations

from collections.abc import Mapping

from gridflock.forecast._types import FloatArray, Forecast, SupportWindow

__all__ = ["exceedance_probability", "support_windows"]


def exceedance_probability(forecast: Forecast, limit_kw: FloatArray) -> FloatArray:
    """P(net import > limit) per key and step from a ``net`` forecast's quantiles.

    ``limit_kw`` broadcasts to (n_keys, n_steps) [kW of import]. The distribution between
    quantiles is piecewise linear, with normal tails fitted to the outer quantiles.
    """
    raise NotImplementedError


def support_windows(
    forecast: Forecast,
    limits_kw: float | Mapping[str, float] | FloatArray,
    prices: Forecast | None = None,
    *,
    price_limit: float | None = None,
    min_probability: float = 0.2,
) -> list[SupportWindow]:
    """Windows in which a key's net import is likely to exceed its limit, or prices spike.

    Parameters
    ----------
    forecast : Forecast
        A ``net`` forecast (generator sign; import = -net) of sites or groups.
    limits_kw : float, mapping key -> kW, or array (n_keys,) or (n_keys, n_steps)
        Import threshold or grid node limit per key [kW]; a key missing from a mapping is
        not watched.
    prices : Forecast or None
        Price (or any grid signal) forecast; one key.
    price_limit : float or None
        Spike threshold of the price; default its P50's mean plus two standard deviations.
    min_probability : float
        Steps whose exceedance probability reaches this join a window.

    """
    raise NotImplementedError
