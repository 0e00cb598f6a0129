"""Group forecasts from site forecasts: sums of medians, bands from correlated errors.

Quantiles are not additive: the P90 of a sum is well below the sum of P90s unless the sites'
errors move together. Each side of the median is treated as a normal spread: a site's
``sd_q = (P_q - P50) / z_q``. A site's error is split in two: a level error that may move
with the other sites' (the weather, the day's behaviour), as large as the site's narrower
side ``c = min over sides of sd_q``, and the rest of each side's spread, independent (an
EV that charges or not, a heat pump's cycle: individual spikes, one-sided and wide). A
group's ``sd_q^2 = sum(sd_q,i^2) + rho * ((sum c_i)^2 - sum(c_i^2))``, with ``rho`` the level
errors' correlation learned on held-out days in training (stored in the forecast's
``corr``), and ``P_q = sum(mean_i) + z_q * sd_q``: a sum of many sites is close to normal
about the sum of their means (not of their medians, which for spiky sites such as EV
chargers are far below the means). ``rho = 0`` is the independent-sites limit; with
symmetric site bands ``rho = 1`` adds the quantiles. One correlation applied to whole
spreads cannot be right for both: in the evening it adds the EVs' wide upper bands as if
every car charged together (the fleet's band came out seven times its error there) while
the midday's common PV error needs it high. The benchmarks check the group bands' coverage
on held-out weeks (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from gridflock.forecast._types import FloatArray, Forecast, SiteAttributes

__all__ = ["aggregate", "combine", "group_masks"]


def _z(qs: tuple[float, ...]) -> FloatArray:
    nd = NormalDist()
    return np.array([nd.inv_cdf(q) if q != 0.5 else 0.0 for q in qs])


def combine(
    values: FloatArray,
    quantiles: tuple[float, ...],
    corr: FloatArray,
    mean: FloatArray | None = None,
) -> FloatArray:
    """Quantiles (n_steps, n_q) of the sum of the keys of ``values`` (n_keys, n_steps, n_q).

    The sum centres on the sum of the keys' means (``mean`` (n_keys, n_steps)) if given,
    else of their medians.
    """
    if 0.5 not in quantiles:
        raise ValueError("aggregation needs the median (0.5) among the quantiles")
    mid = quantiles.index(0.5)
    z = _z(quantiles)
    med = values[:, :, mid]
    out = np.empty(values.shape[1:])
    centre = mean if mean is not None and np.size(mean) else med
    out[:, mid] = centre.sum(axis=0)
    rho = np.clip(np.asarray(corr, dtype=np.float64), 0.0, 1.0)
    sides = [np.maximum((values[:, :, i] - med) / zq, 0.0) for i, zq in enumerate(z) if i != mid]
    common = np.minimum.reduce(sides) if sides else np.zeros(med.shape)  # narrower side
    for i, zq in enumerate(z):
        if i == mid:
            continue
        sd = np.maximum((values[:, :, i] - med) / zq, 0.0)
        # all of each side's spread independently, plus the level errors' covariances
        var = (sd**2).sum(axis=0) + rho * (common.sum(axis=0) ** 2 - (common**2).sum(axis=0))
        out[:, i] = out[:, mid] + zq * np.sqrt(var)
    return np.sort(out, axis=-1)


def group_masks(sites: SiteAttributes, by: tuple[str, ...]) -> dict[str, npt.NDArray[np.bool_]]:
    """Boolean masks of the groups of ``by`` groupings, named ``grouping:label``."""
    out: dict[str, npt.NDArray[np.bool_]] = {}
    for g in by:
        labels = sites.groups(g)
        for label in sorted(set(labels.tolist())):
            if g != "fleet" and label == "":
                continue
            out["fleet" if g == "fleet" else f"{g}:{label}"] = labels == label
    return out


def aggregate(
    forecast: Forecast,
    groups: npt.NDArray[np.object_] | Mapping[str, npt.NDArray[np.bool_]],
) -> Forecast:
    """Forecast of group totals (fleet, grid node, programme, region) from site forecasts.

    The group centres on the sum of the site means (medians if the forecast has no means);
    the spread on each side combines the sites' spreads with the error correlation learned
    in training (``forecast.corr``), see the module docstring.

    Parameters
    ----------
    forecast : Forecast
        Per-site forecast.
    groups : array (n_keys,) of labels, or mapping name -> boolean mask (n_keys,)
        Group of each key (each key in one group), or named subsets (a key may be in
        several, e.g. a grid node and its transformer).

    """
    n = len(forecast.keys)
    if isinstance(groups, Mapping):
        names = list(groups)
        masks = [np.asarray(groups[k], dtype=bool) for k in names]
    else:
        labels = np.asarray(groups, dtype=object)
        if labels.shape != (n,):
            raise ValueError(f"groups has shape {labels.shape}, need ({n},): one label per key")
        names = sorted({str(v) for v in labels.tolist()})
        masks = [labels.astype(str) == k for k in names]
    for k, m in zip(names, masks, strict=True):
        if m.shape != (n,):
            raise ValueError(f"mask of group {k!r} has shape {m.shape}, need ({n},)")
    values = np.zeros((len(names), len(forecast.times), len(forecast.quantiles)))
    means = np.zeros((len(names), len(forecast.times)))
    has_mean = forecast.mean.size > 0
    for g, m in enumerate(masks):
        if m.any():
            site_mean = forecast.mean[m] if has_mean else None
            values[g] = combine(forecast.values[m], forecast.quantiles, forecast.corr, site_mean)
            means[g] = forecast.expected[m].sum(axis=0)
    return Forecast(
        quantity=forecast.quantity,
        keys=np.asarray(names, dtype=object),
        times=forecast.times,
        quantiles=forecast.quantiles,
        values=values,
        issued_at=forecast.issued_at,
        horizon=forecast.horizon,
        corr=forecast.corr,
        model_version=forecast.model_version,
        mean=means,
        error_ar=forecast.group_error_ar,
        group_error_ar=forecast.group_error_ar,
    )
