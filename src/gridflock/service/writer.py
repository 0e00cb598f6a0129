"""Writes to the store off the event loop, in order, and rides out database outages.

Telemetry is buffered up to a bound (the oldest readings are dropped beyond it, and
counted); other writes (events, commands, statuses, audit) queue in order and are never
dropped. A failed write stays at the head of its queue and is retried on the next flush,
so when the database comes back everything lands in the order it happened.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import TelemetryBatch
from gridflock.store import Store

__all__ = ["StoreWriter", "WriterStats"]

log = logging.getLogger("gridflock.store")

CHUNK_ROWS = 50_000


@dataclass
class WriterStats:
    """Counters of the writer, for metrics and health."""

    rows_written: int = 0
    rows_dropped: int = 0
    ops_written: int = 0
    failures: int = 0
    database_up: bool = True


class StoreWriter:
    """A bounded telemetry buffer and an ordered queue of other writes."""

    def __init__(self, store: Store, max_rows: int) -> None:
        self.store = store
        self.max_rows = max_rows
        self.stats = WriterStats()
        self._telemetry: deque[TelemetryBatch] = deque()
        self._rows = 0
        self._in_flight = 0
        self._ops: deque[tuple[str, Callable[[], object]]] = deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    @property
    def buffered_rows(self) -> int:
        """Readings waiting to be written (including a chunk being written now)."""
        return self._rows + self._in_flight

    @property
    def pending_ops(self) -> int:
        """Other writes waiting."""
        return len(self._ops)

    def telemetry(self, batch: TelemetryBatch) -> None:
        """Queue readings (rows without power are not readings and are skipped)."""
        keep = np.isfinite(batch.p_kw)
        if not keep.all():
            batch = TelemetryBatch(
                batch.device_ids[keep],
                batch.ts[keep],
                batch.p_kw[keep],
                batch.soc[keep],
                batch.p_baseline_kw[keep],
            )
        if not len(batch):
            return
        with self._lock:
            self._telemetry.append(batch)
            self._rows += len(batch)
            while self._rows > self.max_rows and self._telemetry:
                dropped = self._telemetry.popleft()
                self._rows -= len(dropped)
                self.stats.rows_dropped += len(dropped)

    def op(self, name: str, fn: Callable[[], object]) -> None:
        """Queue a write; ``name`` shows in logs if it has to wait for the database."""
        with self._lock:
            self._ops.append((name, fn))

    def flush(self) -> bool:
        """Write what is queued (blocking; run it in a thread). False if the database failed."""
        if not self._flushing.acquire(blocking=False):
            return True  # another flush is under way
        try:
            return self._flush_ops() and self._flush_telemetry()
        finally:
            self._flushing.release()

    def _failed(self, what: str, error: Exception) -> bool:
        self.stats.failures += 1
        if self.stats.database_up:
            log.warning("database write failed (%s): %s; buffering until it is back", what, error)
        self.stats.database_up = False
        return False

    def _recovered(self) -> None:
        if not self.stats.database_up:
            log.warning("database is back; writing %d buffered readings", self._rows)
        self.stats.database_up = True

    def _flush_ops(self) -> bool:
        while self._ops:
            name, fn = self._ops[0]
            try:
                fn()
            except Exception as e:  # any driver error: keep the op and retry later
                return self._failed(name, e)
            with self._lock:
                self._ops.popleft()
            self.stats.ops_written += 1
            self._recovered()
        return True

    def _flush_telemetry(self) -> bool:
        while self._telemetry:
            with self._lock:
                batches, rows = [], 0
                while self._telemetry and rows < CHUNK_ROWS:
                    b = self._telemetry.popleft()
                    batches.append(b)
                    rows += len(b)
                self._rows -= rows
            merged = _concat(batches)
            self._in_flight = rows  # still counted as buffered until written
            try:
                self.store.write_telemetry(merged)
            except Exception as e:
                with self._lock:  # put them back at the head, in order
                    self._telemetry.extendleft(reversed(batches))
                    self._rows += rows
                return self._failed("telemetry", e)
            finally:
                self._in_flight = 0
            self.stats.rows_written += rows
            self._recovered()
        return True


def _concat(batches: list[TelemetryBatch]) -> TelemetryBatch:
    if len(batches) == 1:
        return batches[0]
    return TelemetryBatch(
        np.concatenate([b.device_ids for b in batches]),
        np.concatenate([b.ts for b in batches]),
        np.concatenate([b.p_kw for b in batches]),
        np.concatenate([b.soc for b in batches]),
        np.concatenate([b.p_baseline_kw for b in batches]),
    )
