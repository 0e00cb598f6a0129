"""Processes that die: ``gridflock serve`` killed mid-event, the broker restarted.

Real parts only: PostgreSQL (a fresh schema), a private Mosquitto, ``gridflock serve``
and ``gridflock sim gateways`` as subprocesses. The figures of larger fleets come from
``benchmarks/bench_faults.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._restarts import broker_then_service_restart, kill_mid_event, kill_right_after_201

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_serve_killed_mid_event_loses_nothing_acknowledged_and_answers_within_5_s(
    tmp_path: Path,
) -> None:
    """SIGKILL of ``gridflock serve`` while an event delivers, then a restart.

    Lost: nothing that was written. The event, every event sample and command recorded
    before the kill, and every telemetry row written are still there; the resumed
    event's series still shows the samples from before the kill. Only readings and
    samples the service held in memory for its next write (at most one write period,
    0.5 s here) can be lost with the process. Recovery: the new process answers within
    5 s of its start although the old port is in TIME-WAIT: it needs less than 5 s of
    CPU to answer, and on a machine so loaded that even a cold start (with the same
    gateways running) takes longer than 5 s, it takes at most twice as long as the cold
    start (a wait for the port would take up to a minute). The event is back
    on target within a few control cycles, with new samples and commands.
    """
    f = kill_mid_event(tmp_path)
    assert f.restart_cpu_s < 5, f
    assert f.restart_s < max(5.0, 2 * f.cold_start_s), f
    assert f.event_status_after == "active", f
    assert f.samples_stored_before >= 3, f
    assert f.samples_lost == 0, f
    assert f.samples_after_restart >= 2, f
    assert f.commands_before > 0, f
    assert f.commands_lost == 0, f
    assert f.commands_changed == 0, f
    assert f.commands_after_restart > 0, f
    assert f.telemetry_rows_before > 0, f
    assert f.telemetry_rows_lost == 0, f


def test_an_event_answered_201_survives_a_kill_right_after_the_answer(tmp_path: Path) -> None:
    """SIGKILL the moment ``POST /events`` answers 201.

    Lost: nothing; 201 means the event is stored, so a crash right after it cannot lose
    it, and the restarted service lists it. Recovery: the new process answers at once.
    """
    f = kill_right_after_201(tmp_path)
    assert f.stored_after_kill, f
    assert f.answered_after_restart == 200, f
    assert f.status_after_restart == "scheduled", f


def test_full_telemetry_rate_after_a_broker_restart_and_then_a_service_restart(
    tmp_path: Path,
) -> None:
    """The broker restarted under the service, then the service restarted.

    Lost: no share of the telemetry. Over each window, before and after both restarts,
    the service receives (all but the few in flight at the window's edges) every telemetry
    message an independent subscriber of the same broker receives: a dead session of the
    old process must not keep a share (it took half). A count against a count, so it
    holds at any machine speed; the rates and recovery times are figures for
    ``benchmarks/bench_faults.py``. Recovery: the link reconnects to the restarted broker
    and the new process receives telemetry.
    """
    f = broker_then_service_restart(tmp_path)
    assert f.share_before >= 0.8, f
    assert f.share_after_broker >= 0.8, f
    assert f.share_after_service >= 0.8, f
    assert f.observed_after_service > 0, f
    assert f.rate_after_service > 0, f
