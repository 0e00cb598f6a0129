"""Fleet state, flexibility and aggregation: pure computation over NumPy arrays."""

from gridflock.fleet.aggregate import GROUP_BY, aggregate, group_codes
from gridflock.fleet.flexibility import Flexibility, flexibility
from gridflock.fleet.state import EXTRA_FIELDS, ApplyResult, FleetState, GridTopology

__all__ = [
    "EXTRA_FIELDS",
    "GROUP_BY",
    "ApplyResult",
    "FleetState",
    "Flexibility",
    "GridTopology",
    "aggregate",
    "flexibility",
    "group_codes",
]
