"""Which baseline to settle a fleet on, and why: from the accuracy study in docs/mv.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["FleetMix", "Recommendation", "recommend_method"]


@dataclass(frozen=True)
class FleetMix:
    """Shares (0..1) of the event's sites holding each kind, and what data there is.

    ``n_sites`` counts participants; ``control_sites`` the held-out control group;
    ``battery_telemetry`` whether per-site battery power is metered; ``weather`` whether
    a temperature series is at hand.
    """

    n_sites: int
    pv: float = 0.0
    battery: float = 0.0
    ev: float = 0.0
    heat_pump: float = 0.0
    control_sites: int = 0
    battery_telemetry: bool = False
    weather: bool = False


class Recommendation(NamedTuple):
    """The method to settle on and the reason, in words a settlement analyst can check."""

    method: str
    reason: str


def recommend_method(mix: FleetMix) -> Recommendation:
    """The method with the smallest placebo bias measured for a fleet like ``mix``."""
    if mix.n_sites < 1:
        raise ValueError("the fleet has no participating sites to settle")
    if mix.control_sites >= 50:
        return Recommendation(
            "control_group",
            f"{mix.control_sites} held-out control sites: the control group follows the "
            "day's weather and PV as the participants do",
        )
    if mix.weather:
        return Recommendation(
            "regression", "no control group; a temperature series is at hand for the regression"
        )
    return Recommendation("uk_dfs", "no control group and no weather: day matching")
