"""Aggregation of per-device values by group: kind, grid node, site tag, site.

One ``np.bincount`` per quantity: the whole fleet is summed in a few passes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gridflock.domain.messages import FloatArray, IntArray, StrArray
from gridflock.fleet.groups import GroupIndex
from gridflock.fleet.state import FleetState

__all__ = ["GROUP_BY", "aggregate", "group_codes"]

GROUP_BY = ("kind", "grid_node", "program", "region", "site")


def group_codes(state: FleetState, by: str) -> tuple[IntArray, StrArray]:
    """Each device's group number and the group labels, for ``by`` in ``GROUP_BY``.

    Grouping by ``grid_node`` counts a device under its feeder only; node totals up the
    tree come from :meth:`GridTopology.node_flow_kw`.
    """
    if by == "kind":
        return state.kind_codes(), np.array([k.value for k in state.kinds], dtype=object)
    if by == "site":
        return state.site_idx, state.grid.site_ids
    if by == "grid_node":
        return state.grid.site_node[state.site_idx], state.grid.node_ids
    if by in ("program", "region"):
        tags = state.grid.site_program if by == "program" else state.grid.site_region
        codes, labels = pd.factorize(tags)
        return codes[state.site_idx].astype(np.int64), np.asarray(labels, dtype=object)
    raise ValueError(f"cannot group by {by!r}: use one of {', '.join(GROUP_BY)}")


def aggregate(state: FleetState, by: str, values: Mapping[str, FloatArray]) -> pd.DataFrame:
    """Sum each per-device array in ``values`` by group; also count devices and online ones."""
    index, labels = _index(state, by)
    out: dict[str, object] = {
        by: labels,
        "devices": index.counts(),
        "online": index.sum(state.online.astype(np.float64)).astype(np.int64),
    }
    for name, arr in values.items():
        out[name] = index.sum(arr)
    return pd.DataFrame(out)


def _index(state: FleetState, by: str) -> tuple[GroupIndex, StrArray]:
    """The state's group index for ``by``, planned once per fleet."""
    cache: dict[str, tuple[GroupIndex, StrArray]] = state.__dict__.setdefault("_group_cache", {})
    if by not in cache:
        codes, labels = group_codes(state, by)
        cache[by] = (GroupIndex.of(codes, len(labels)), labels)
    return cache[by]
