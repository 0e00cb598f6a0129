"""Writes to the store off the event loop, in order; rides out outages, sets bad rows aside.

Telemetry is buffered up to a bound (the oldest readings are dropped beyond it, and
counted); other writes (events, commands, statuses, audit) queue in order and are never
dropped. The writer tells two kinds of failure apart (:func:`gridflock.store.errors.is_outage`):

- **the database is away** (connection lost or refused, timeout, locked): the write stays
  at the head of its queue and is retried on the next flush, so when the database comes
  back everything lands in the order it happened;
- **the database refused the records** (a value out of range, a constraint, text it cannot
  hold): retrying would fail forever and block every write behind it, so the write is
  *quarantined*: logged with the reason, counted, and kept as a dead letter in the
  store's ``dead_letters`` table. A telemetry chunk is split until the refused readings
  are found; the good ones around them are written.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridflock.domain.messages import TelemetryBatch
from gridflock.store import Store
from gridflock.store.errors import FencedError, is_outage

__all__ = ["StoreWriter", "WriterStats"]

log = logging.getLogger("gridflock.store")

CHUNK_ROWS = 50_000
#: Readings stamped outside [EARLIEST_TS, now + MAX_AHEAD_S] are set aside without a try.
EARLIEST_TS = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_AHEAD_S = 366 * 86_400.0
#: Seconds between pings of the database while there is nothing to write.
PING_EVERY_S = 5.0
#: Readings of one refused chunk shown in its dead letter (the count is always kept).
DEAD_LETTER_READINGS = 1_000


@dataclass
class WriterStats:
    """Counters of the writer, for metrics and health."""

    rows_written: int = 0
    rows_dropped: int = 0
    ops_written: int = 0
    failures: int = 0
    quarantined_ops: int = 0
    quarantined_rows: int = 0
    fenced_ops: int = 0
    """Writes refused because this process no longer leads (a higher epoch does)."""
    database_up: bool = True
    last_error: str | None = None


@dataclass(frozen=True)
class _Op:
    name: str
    fn: Callable[[], object]
    detail: Any


class StoreWriter:
    """A bounded telemetry buffer and an ordered queue of other writes."""

    def __init__(self, store: Store, max_rows: int) -> None:
        self.store = store
        self.max_rows = max_rows
        self.stats = WriterStats()
        self._telemetry: deque[TelemetryBatch] = deque()
        self._rows = 0
        self._in_flight = 0
        self._ops: deque[_Op] = deque()
        self._ops_queued = 0  # tickets: how many ops were ever queued / are done with
        self._ops_done = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last_contact = time.monotonic()

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
            batch = _take(batch, keep)
        if not len(batch):
            return
        with self._lock:
            self._telemetry.append(batch)
            self._rows += len(batch)
            while self._rows > self.max_rows and self._telemetry:
                dropped = self._telemetry.popleft()
                self._rows -= len(dropped)
                self.stats.rows_dropped += len(dropped)

    def op(self, name: str, fn: Callable[[], object], detail: Any = None) -> int:
        """Queue a write; returns its ticket (see :meth:`done_with`).

        ``name`` shows in logs if it has to wait for the database; ``detail`` (JSON-able)
        describes what it writes, for its dead letter should the database refuse it.
        """
        with self._lock:
            self._ops.append(_Op(name, fn, detail))
            self._ops_queued += 1
            return self._ops_queued

    @property
    def last_ticket(self) -> int:
        """The ticket of the write queued last."""
        return self._ops_queued

    def done_with(self, ticket: int) -> bool:
        """Whether the write with ``ticket`` and all before it are written (or set aside)."""
        return self._ops_done >= ticket

    def flush_ops(self, timeout_s: float) -> bool:
        """Write the queued writes other than telemetry now (blocking: run it in a thread).

        For an answer that must not come before its record is stored (an event's 201).
        False if the database is away or a flush under way held on past ``timeout_s``.
        """
        if not self._flushing.acquire(timeout=max(timeout_s, 0.0)):
            return False
        try:
            return self._flush_ops()
        finally:
            self._flushing.release()

    def flush(self) -> bool:
        """Write what is queued (blocking; run it in a thread). False if the database is away.

        With nothing to write, the database is pinged every ``PING_EVERY_S`` instead, so an
        outage (and the return) shows in health even while nothing is written.
        """
        if not self._flushing.acquire(blocking=False):
            return True  # another flush is under way
        try:
            if not self._ops and not self._telemetry:
                return self._ping()
            ok = self._flush_ops() and self._flush_telemetry()
            if ok:
                self._last_contact = time.monotonic()
            return ok
        finally:
            self._flushing.release()

    def _ping(self) -> bool:
        if time.monotonic() - self._last_contact < PING_EVERY_S:
            return self.stats.database_up
        self._last_contact = time.monotonic()
        if self.store.ping():
            self._recovered()
            return True
        return self._failed("ping", ConnectionError("the database does not answer SELECT 1"))

    # ------------------------------------------------------------------ outcomes
    def _failed(self, what: str, error: Exception) -> bool:
        self.stats.failures += 1
        self.stats.last_error = f"{what}: {type(error).__name__}"
        if self.stats.database_up:
            log.warning("database write failed (%s): %s; buffering until it is back", what, error)
        self.stats.database_up = False
        return False

    def _recovered(self) -> None:
        if not self.stats.database_up:
            log.warning("database is back; writing %d buffered readings", self._rows)
        self.stats.database_up = True

    def _quarantine(self, what: str, error: Exception, rows: int, detail: Any) -> None:
        """Set a refused write aside: log it, count it, keep it as a dead letter if possible."""
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:2000]
        log.error(
            "the database refused a write (%s, %d record(s)): %s; kept as a dead letter, "
            "later writes go on",
            what,
            rows,
            reason,
        )
        try:
            # ASCII: text a database refuses (lone surrogates) stays escaped and storable
            payload = json.dumps(detail, default=str, allow_nan=False)
        except ValueError:  # a value JSON cannot carry: keep it as text
            payload = json.dumps(repr(detail))
        try:
            self.store.quarantine(what, reason, rows, payload)
        except Exception as e:  # the log line above keeps it; never block on it
            if is_outage(e):  # keep it for when the database is back
                with self._lock:
                    self._ops.append(
                        _Op(
                            "dead letter",
                            lambda: self.store.quarantine(what, reason, rows, payload),
                            None,
                        )
                    )
                    self._ops_queued += 1
            else:
                log.error("the dead letter itself was refused (%s): %s", what, e)

    # ------------------------------------------------------------------ flushing
    def _flush_ops(self) -> bool:
        while self._ops:
            op = self._ops[0]
            try:
                op.fn()
            except FencedError as e:  # deposed: the leader now writes in its place
                with self._lock:
                    self._ops.popleft()
                    self._ops_done += 1
                self.stats.fenced_ops += 1
                log.warning("%s not written: %s", op.name, e)
                continue
            except Exception as e:  # any driver error: an outage waits, a bad row is set aside
                if is_outage(e):
                    return self._failed(op.name, e)
                with self._lock:
                    self._ops.popleft()
                    self._ops_done += 1
                self.stats.quarantined_ops += 1
                if op.name == "dead letter":  # kept back during an outage, refused now
                    log.error("the dead letter itself was refused: %s", e)
                else:
                    self._quarantine(op.name, e, 1, _jsonable(op.detail))
                self._recovered()  # the database answered
                continue
            with self._lock:
                self._ops.popleft()
                self._ops_done += 1
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
                self._write(merged)
            except Exception as e:  # only outages come out of _write
                with self._lock:  # put them back at the head, in order (rewrites are no-ops)
                    self._telemetry.extendleft(reversed(batches))
                    self._rows += rows
                return self._failed("telemetry", e)
            finally:
                self._in_flight = 0
            self._recovered()
        return True

    def _write(self, batch: TelemetryBatch) -> None:
        """Write ``batch``; readings the database refuses are found by halving and set aside.

        Raises only on an outage. Readings already stored are skipped by the store, so a
        batch written again after an outage part-way through lands once.
        """
        ts = np.asarray(batch.ts, dtype=np.float64)
        odd = ~((ts >= EARLIEST_TS) & (ts <= time.time() + MAX_AHEAD_S))
        if odd.any():  # set aside at once: no need to ask the database, nor to search
            self.stats.quarantined_rows += int(odd.sum())
            self._quarantine(
                "telemetry",
                ValueError(
                    "reading time outside [2000-01-01, one year ahead]: not a time a "
                    "device can have measured"
                ),
                int(odd.sum()),
                _readings_json(_take(batch, odd)),
            )
            batch = _take(batch, ~odd)
        refused: list[int] = []
        error: Exception | None = None
        pending = [np.arange(len(batch))] if len(batch) else []
        while pending:
            idx = pending.pop()
            part = batch if len(idx) == len(batch) else _take(batch, idx)
            try:
                self.store.write_telemetry(part)
            except Exception as e:
                if is_outage(e):
                    raise
                error = e
                if len(idx) == 1:
                    refused.append(int(idx[0]))
                else:
                    mid = len(idx) // 2
                    pending += [idx[mid:], idx[:mid]]  # first half first
                continue
            self.stats.rows_written += len(idx)
        if refused and error is not None:
            self.stats.quarantined_rows += len(refused)
            bad = _take(batch, np.sort(np.array(refused)))
            self._quarantine("telemetry", error, len(bad), _readings_json(bad))


def _take(batch: TelemetryBatch, which: np.ndarray) -> TelemetryBatch:
    """The readings of ``batch`` selected by a mask or an index array (extras dropped)."""
    return TelemetryBatch(
        batch.device_ids[which],
        batch.ts[which],
        batch.p_kw[which],
        batch.soc[which],
        batch.p_baseline_kw[which],
    )


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


def _readings_json(batch: TelemetryBatch) -> list[dict[str, Any]]:
    n = min(len(batch), DEAD_LETTER_READINGS)
    return [
        {
            "device_id": str(batch.device_ids[i]),
            "ts": _num(batch.ts[i]),
            "p_kw": _num(batch.p_kw[i]),
            "soc": _num(batch.soc[i]),
            "p_baseline_kw": _num(batch.p_baseline_kw[i]),
        }
        for i in range(n)
    ]


def _num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _jsonable(detail: Any) -> Any:
    """``detail`` made JSON-safe: non-finite floats as None, arrays as lists."""
    if isinstance(detail, float):
        return detail if np.isfinite(detail) else None
    if isinstance(detail, np.ndarray):
        return _jsonable(detail.tolist())
    if isinstance(detail, np.generic):
        return _jsonable(detail.item())
    if isinstance(detail, dict):
        return {str(k): _jsonable(v) for k, v in detail.items()}
    if isinstance(detail, list | tuple):
        return [_jsonable(v) for v in detail]
    return detail
