"""Randomised control groups: sites held out of events, matched on kind and size."""

from __future__ import annotations

import numpy as np

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray

__all__ = ["assign_control_group", "strata"]


def strata(kinds: StrArray, size: FloatArray, size_bins: int = 3) -> IntArray:
    """Stratum of each site: its device mix and its size tercile (quantile bin) within it."""
    raise NotImplementedError


def assign_control_group(
    kinds: StrArray, size: FloatArray, share: float, seed: int, size_bins: int = 3
) -> BoolArray:
    """Hold out ``share`` of the sites at random within each stratum (kind mix x size bin).

    Stratified assignment keeps the control group's mix equal to the fleet's, which is
    what makes its load a fair counterfactual for the participants.
    """
    raise NotImplementedError


_ = np
