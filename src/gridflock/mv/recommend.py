"""Which baseline to settle a fleet on, and why: from the accuracy study in docs/mv.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["FleetMix", "Recommendation", "recommend_method"]


@dataclass(frozen=True)
class FleetMix:
    """Shares (0..1) of the event's sites holding each kind, and what data there is.

    ``n_sites`` counts participants; ``control_sites`` the held-out control group;
    ``battery_telemetry`` whether per-site battery power is metered,
    ``generation_telemetry`` whether per-site PV and wind output is; ``weather`` whether
    a temperature series is at hand, ``irradiance`` whether a GHI series is.
    """

    n_sites: int
    pv: float = 0.0
    battery: float = 0.0
    ev: float = 0.0
    heat_pump: float = 0.0
    control_sites: int = 0
    battery_telemetry: bool = False
    weather: bool = False
    irradiance: bool = False
    generation_telemetry: bool = False


class Recommendation(NamedTuple):
    """The method to settle on and the reason, in words a settlement analyst can check."""

    method: str
    reason: str


#: A control group this large is preferred to every other method.
MIN_CONTROL_SITES = 100
#: Battery-heavy: this share of participants holds a battery.
BATTERY_HEAVY = 0.5
#: ``uk_dfs_mgo`` in the many-season study (docs/mv.md, "Many seasons"): placebo and event bias.
MGO_PLACEBO = (
    "-1.6 to -0.4 % on the five fleet mixes over seasons from June (EV, heat pump, PV: "
    "1,275 placebo days each over 15 seasons; battery, PV+battery: 765 days over 9) and "
    "-1.5 to -0.7 % from August (765 days each over 9 seasons) at 300 homes; -0.6 to "
    "+0.8 % on all five mixes and both start dates at 1,000 homes (3 seasons each)"
)
MGO_EVENT = (
    "-7.4 to +9.8 % (four sets of 6-8 event seasons per mix; +2.9 to +9.8 % on PV+battery "
    "fleets, which it may overstate by 3-10 %)"
)
#: ``battery_device_trend`` in the same study: placebo bias on the mixes measured.
BATTERY_PLACEBO = "placebo bias -1.5 to -0.2 %, standard errors 2-5 %"


def recommend_method(mix: FleetMix) -> Recommendation:
    """The method with the smallest placebo bias measured for a fleet like ``mix``.

    From the season-long twin studies in docs/mv.md (five mixes, 1,000 homes, 63 placebo
    days per mix and weather seed over June to October): the control group is unbiased by
    construction and was within its standard error of zero on every mix; without one, the
    UK DFS rule on gross load with the metered PV and the battery's trend- and
    sun-adjusted device baseline (``uk_dfs_mgo``); without generation telemetry the
    batteries' own trend-adjusted baseline, weather matching and the unadjusted 10-in-10
    follow, all biased by more over a season. ``uk_dfs_mgo``'s placebo bias is within
    ±2 % on all five mixes and both start dates measured (June, August), with 95 %
    confidence on four of the ten.
    """
    if mix.n_sites < 1:
        raise ValueError("the fleet has no participating sites to settle")
    if mix.control_sites >= MIN_CONTROL_SITES:
        return Recommendation(
            "control_group",
            f"{mix.control_sites} randomised control sites: the control group was unbiased "
            "on every fleet mix in the twin study (placebo bias -4.5 to +2.2 % with 100 "
            "controls, each within its standard error of zero; -0.2 +/- 1.6 % with 1,000) "
            "because it sees the same weather and sunshine as the participants; its noise "
            "falls as the control group grows",
        )
    short = (
        f"only {mix.control_sites} control sites (fewer than {MIN_CONTROL_SITES})"
        if mix.control_sites
        else "no control group"
    )
    if mix.generation_telemetry:
        return Recommendation(
            "uk_dfs_mgo",
            f"{short}; PV/wind and battery power are metered per device: the UK DFS rule on "
            "the sites' gross load (net of the metered generation and battery, as in CAISO's "
            "MGO baseline), with the generation added back and the battery on its recent "
            "days adjusted for the season's curved trend, the afternoon's sun and its own "
            "charging that day, and the load following the household standard profile's season "
            "(H25, scaled to the base load without the metered EV chargers, heat pumps and "
            f"water heaters), had placebo bias {MGO_PLACEBO} in the twin study, against -12 "
            f"to -18 % for whole-site day matching; event days {MGO_EVENT}; |bias| < 2 % is "
            "shown on every mix and both start dates measured (with 95 % confidence on four "
            "of the ten: heat pump and PV from June, PV and PV+battery from August); hold "
            "out a control group to settle on",
        )
    if mix.battery_telemetry and mix.battery >= BATTERY_HEAVY:
        return Recommendation(
            "battery_device_trend",
            f"{short}; {mix.battery:.0%} of the sites hold a metered battery: the batteries' "
            "own recent days, adjusted for the season's trend and the afternoon's sun, had "
            f"the smallest placebo bias and error in the twin study ({BATTERY_PLACEBO}), "
            "but it counts the batteries' response only; hold out a control group to "
            "settle on",
        )
    if mix.weather and mix.irradiance:
        return Recommendation(
            "weather_matched",
            f"{short}: weather matching had the smallest error of the whole-site day-matching "
            "methods in the twin study, but it understates delivery by 12-18 % when the "
            "season moves (June to October); hold out a control group to settle on",
        )
    return Recommendation(
        "caiso_10in10_unadjusted",
        f"{short} and no irradiance: the 10-in-10 without its day-of adjustment, since on "
        "fleets with PV the adjustment window is dominated by PV and only adds error; it "
        "understated delivery by 12-15 % over a changing season in the twin study; hold "
        "out a control group to settle on",
    )
