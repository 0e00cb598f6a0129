"""The local telemetry buffer: readings wait here until the service has them.

Every reading goes through the buffer, connected or not: the uplink takes the oldest
readings in batches and drops them only once the broker has acknowledged the message
(QoS 1 PUBACK on the same connection). While the uplink is down the buffer fills, bounded
per device (a ring of ``max_per_device`` readings): beyond it the oldest reading of that
device is dropped and counted, so memory stays bounded and the newest state is kept.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

from gridflock.edge.driver import DeviceReading

__all__ = ["ReadingBuffer"]


class ReadingBuffer:
    """Per-device rings of readings, taken oldest first across devices."""

    def __init__(self, max_per_device: int) -> None:
        if max_per_device < 1:
            raise ValueError(f"max_per_device must be >= 1, got {max_per_device}")
        self.max_per_device = max_per_device
        self._rings: dict[str, deque[DeviceReading]] = {}
        self.dropped = 0
        """Readings dropped because their device's ring was full (cumulative)."""
        self.added = 0

    def __len__(self) -> int:
        return sum(len(r) for r in self._rings.values())

    def add(self, readings: Iterable[DeviceReading]) -> None:
        """Append readings (each device's in time order); a full ring drops its oldest."""
        for r in readings:
            ring = self._rings.get(r.device_id)
            if ring is None:
                ring = self._rings[r.device_id] = deque(maxlen=self.max_per_device)
            if len(ring) == self.max_per_device:
                self.dropped += 1
            ring.append(r)
            self.added += 1

    def peek(self, n: int) -> list[DeviceReading]:
        """The ``n`` oldest readings over all devices, by ``ts`` (not removed)."""
        merged = heapq.merge(*self._rings.values(), key=lambda r: r.ts)
        out: list[DeviceReading] = []
        for r in merged:
            if len(out) >= n:
                break
            out.append(r)
        return out

    def remove(self, sent: Iterable[DeviceReading]) -> int:
        """Drop readings that were delivered (from the front of their rings); how many."""
        gone = {id(r) for r in sent}
        n = 0
        for ring in self._rings.values():
            while ring and id(ring[0]) in gone:
                ring.popleft()
                n += 1
        return n
