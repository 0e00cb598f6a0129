"""Telemetry and command batches: columnar, so a whole fleet moves as a few arrays.

Power follows the generator sign convention: ``p_kw > 0`` is delivered to the grid,
``p_kw < 0`` is taken from it. Times are UTC seconds since the Unix epoch (float64).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.object_]

__all__ = ["BoolArray", "CommandBatch", "FloatArray", "IntArray", "StrArray", "TelemetryBatch"]


@dataclass(frozen=True)
class TelemetryBatch:
    """Readings from many devices: row ``i`` is one reading of device ``device_ids[i]``.

    A row whose ``p_kw`` is NaN carries no reading (a lost message) and is skipped.

    ``soc`` is NaN for devices without a state of charge; ``p_baseline_kw`` is the power
    the device would draw or give on its own (its local controller's choice, or the
    available PV/wind power), NaN where the device does not report it.
    """

    device_ids: StrArray
    ts: FloatArray
    p_kw: FloatArray
    soc: FloatArray
    p_baseline_kw: FloatArray
    extras: dict[str, FloatArray] = field(default_factory=dict)
    rows: IntArray | None = None
    """Row of each reading's device in the receiving fleet state, when the sender shares
    the fleet's layout (the in-process twin); saves the id lookup. Used only when
    ``layout`` matches the receiver's layout fingerprint."""
    layout: str | None = None
    """Fingerprint of the fleet layout ``rows`` refer to (``FleetState.layout``)."""

    def __len__(self) -> int:
        return len(self.device_ids)

    @staticmethod
    def empty() -> TelemetryBatch:
        """A batch of no readings."""
        z = np.zeros(0)
        return TelemetryBatch(np.zeros(0, dtype=object), z, z, z, z)


@dataclass(frozen=True)
class CommandBatch:
    """Setpoints for many devices, all serving one event (or none).

    A device holds ``p_setpoint_kw`` until ``valid_until`` (UTC epoch seconds), then falls
    back to its own control. ``seq`` increases per device so a gateway drops stale or
    replayed commands; ``command_ids`` make each command idempotent. ``epoch`` is the
    fencing token of the control leader that issued them (``None`` when one process runs
    everything): a gateway refuses commands of an epoch lower than the highest it has seen.
    """

    command_ids: StrArray
    device_ids: StrArray
    p_setpoint_kw: FloatArray
    valid_until: FloatArray
    seq: IntArray
    issued_at: float
    event_id: str | None = None
    epoch: int | None = None

    def __len__(self) -> int:
        return len(self.device_ids)
