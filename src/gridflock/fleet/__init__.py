"""Fleet state, flexibility and aggregation: pure computation over NumPy arrays."""

from gridflock.fleet.aggregate import GROUP_BY, aggregate, group_codes
from gridflock.fleet.flexibility import (
    Flexibility,
    FrequencyCapacity,
    flexibility,
    frequency_response,
)
from gridflock.fleet.state import ApplyResult, FleetState, GridTopology, KindView, extra_fields

__all__ = [
    "GROUP_BY",
    "ApplyResult",
    "FleetState",
    "Flexibility",
    "FrequencyCapacity",
    "GridTopology",
    "KindView",
    "aggregate",
    "extra_fields",
    "flexibility",
    "frequency_response",
    "group_codes",
]
