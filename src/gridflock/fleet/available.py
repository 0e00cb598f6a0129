"""One flexibility figure: the kW a fleet can hold for a duration, and what is left of it.

Every place that shows flexibility (the overview card, the hold-time table, ``GET /fleet``,
``GET /flexibility`` and the event form) takes it from :func:`available_flexibility`, so
they agree. The figure for a hold of ``duration_h`` from ``now`` is:

* **total**: what the controllable devices of a scope, moving together, can hold in each
  direction (each device's power band, ``fleet.flexibility``) without crossing any site or
  grid-node limit at any depth of the tree (the grid operator's envelopes included, the
  strictest over the hold), from the flows at baseline. Where a limit
  binds, its devices share it in equal fractions (the allocator's fair rule), so the
  per-device values sum, by any grouping, to the scope's total.
* **committed**: what active events hold now, by direction: the magnitude of each held
  device's delta from its baseline.
* **remaining**: what the devices no event holds can still add (a device serves one
  event at a time), within the limits that remain once the held power flows. It is what
  a new event over the scope can be offered; it is at most ``total - committed``, and less
  where held devices keep flexibility they do not use or held power uses up a shared limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState, GridTopology

__all__ = ["AvailableFlexibility", "available_flexibility"]

#: A device whose delta is smaller than this [kW] is not held by an event.
HELD_EPS_KW = 1e-9


@dataclass(frozen=True)
class AvailableFlexibility:
    """Per-device kW [>= 0] held for ``duration_h`` from ``now``; see the module text.

    Devices outside the scope have zeros everywhere.
    """

    up_kw: FloatArray
    down_kw: FloatArray
    committed_up_kw: FloatArray
    committed_down_kw: FloatArray
    remaining_up_kw: FloatArray
    remaining_down_kw: FloatArray
    duration_h: float
    now: float

    def columns(self) -> dict[str, FloatArray]:
        """The six per-device figures by their API names, for ``fleet.aggregate``."""
        return {
            "flex_up_kw": self.up_kw,
            "flex_down_kw": self.down_kw,
            "committed_up_kw": self.committed_up_kw,
            "committed_down_kw": self.committed_down_kw,
            "remaining_up_kw": self.remaining_up_kw,
            "remaining_down_kw": self.remaining_down_kw,
        }

    def totals(self) -> dict[str, float]:
        """The scope's six figures [kW]."""
        return {name: float(values.sum()) for name, values in self.columns().items()}


def available_flexibility(
    state: FleetState,
    duration_h: float,
    now: float,
    *,
    held_kw: FloatArray | None = None,
    scope: BoolArray | None = None,
    grid: GridTopology | None = None,
) -> AvailableFlexibility:
    """The one flexibility figure of ``scope`` (default: the whole fleet).

    Parameters
    ----------
    state
        The fleet state.
    duration_h : float [h], > 0
        How long the power must be held.
    now : float [UTC epoch s]
        Start of the hold.
    held_kw : array (n,) [kW, generator sign], optional
        Each device's delta from its baseline held by active events (0 where none holds
        it; > 0 up, < 0 down).
    scope : bool array (n,), optional
        The devices the figure is for.
    grid : GridTopology, optional
        The fleet's grid with the limits in force over the hold (the operator's
        envelopes applied, ``fleet.envelopes.effective_grid``); default its static one.

    """
    from gridflock.dispatch.allocate import limit_headroom  # dispatch builds on fleet

    flex = flexibility(state, duration_h, now)
    n = state.n
    held = np.zeros(n) if held_kw is None else np.nan_to_num(held_kw, nan=0.0)
    usable = state.controllable()
    if scope is not None:
        usable &= scope
    grid, groups = (state.grid if grid is None else grid), state.node_groups
    base = np.where(state.online, flex.baseline_kw, 0.0)
    site_p = state.site_power_kw(base)
    node_p = grid.node_flow_kw(site_p)
    up = limit_headroom(flex.up_kw, groups, grid, site_p, node_p, up=True, mask=usable)
    down = limit_headroom(flex.down_kw, groups, grid, site_p, node_p, up=False, mask=usable)
    is_held = np.abs(held) > HELD_EPS_KW
    in_scope = held if scope is None else held * scope
    committed_up = np.maximum(in_scope, 0.0)
    committed_down = np.maximum(-in_scope, 0.0)
    if not is_held.any():
        rem_up, rem_down = up, down
    else:
        free = usable & ~is_held
        site_h = state.site_power_kw(base + held)
        node_h = grid.node_flow_kw(site_h)
        rem_up = limit_headroom(flex.up_kw, groups, grid, site_h, node_h, up=True, mask=free)
        rem_down = limit_headroom(flex.down_kw, groups, grid, site_h, node_h, up=False, mask=free)
    return AvailableFlexibility(
        up, down, committed_up, committed_down, rem_up, rem_down, float(duration_h), now
    )
