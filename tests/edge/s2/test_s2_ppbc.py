"""PPBC planning: shifting a shiftable appliance's profile out of an event window."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s2python.common import Duration, PowerForecastValue
from s2python.generated.gen_s2 import PPBCPowerSequenceStatus
from s2python.ppbc import (
    PPBCPowerProfileDefinition,
    PPBCPowerProfileStatus,
    PPBCPowerSequence,
    PPBCPowerSequenceContainer,
    PPBCPowerSequenceContainerStatus,
    PPBCPowerSequenceElement,
)

from gridflock.edge.s2.ppbc import default_plan, excess_wh, power_at, shift_plan

from ._rms import L1

NOW = datetime(2026, 7, 1, 18, tzinfo=UTC)


def sequence(
    steps: list[tuple[float, float]], max_pause_s: float | None = None
) -> PPBCPowerSequence:
    pause = (
        {}
        if max_pause_s is None
        else {"max_pause_before": Duration.from_milliseconds(int(max_pause_s * 1000))}
    )
    return PPBCPowerSequence(
        id=uuid.uuid4(),
        elements=[
            PPBCPowerSequenceElement(
                duration=Duration.from_milliseconds(int(d * 1000)),
                power_values=[PowerForecastValue(value_expected=w, commodity_quantity=L1)],
            )
            for d, w in steps
        ],
        is_interruptible=False,
        abnormal_condition_only=False,
        **pause,
    )


def profile(containers: list[list[PPBCPowerSequence]], end_s: float) -> PPBCPowerProfileDefinition:
    return PPBCPowerProfileDefinition(
        message_id=uuid.uuid4(),
        id=uuid.uuid4(),
        start_time=NOW,
        end_time=NOW + timedelta(seconds=end_s),
        power_sequences_containers=[
            PPBCPowerSequenceContainer(id=uuid.uuid4(), power_sequences=seqs) for seqs in containers
        ],
    )


def numeric_excess(plan, a: datetime, b: datetime, limit_w: float) -> float:
    """Independent oracle: sample the planned power every second of the window [Wh]."""
    n = int((b - a).total_seconds())
    ts = [a + timedelta(seconds=i + 0.5) for i in range(n)]
    return sum(max(0.0, power_at(plan, t) - limit_w) for t in ts) / 3600.0


def test_default_plan_is_the_first_sequence_at_the_earliest_moment() -> None:
    heat, spin = sequence([(600, 2000), (1200, 300)]), sequence([(600, 500)])
    defn = profile([[heat, sequence([(3000, 800)])], [spin]], end_s=4 * 3600)
    plan = default_plan(defn, None, NOW)
    assert [p.sequence_id for p in plan] == [heat.id, spin.id]
    assert plan[0].start == NOW
    assert plan[1].start == NOW + timedelta(seconds=1800)
    assert power_at(plan, NOW) == 2000
    assert power_at(plan, NOW + timedelta(seconds=1900)) == 500


def test_the_profile_moves_out_of_the_window_when_it_can() -> None:
    heat = sequence([(600, 2000), (1200, 300)])
    defn = profile(
        [[heat, sequence([(3000, 800)])], [sequence([(600, 500)], max_pause_s=60)]], 4 * 3600
    )
    end = NOW + timedelta(hours=1)
    plan, excess = shift_plan(defn, None, NOW, end, 0.0)
    assert excess == 0.0
    assert numeric_excess(plan, NOW, end, 0.0) == 0.0
    assert plan[0].start == end
    assert plan[0].sequence_id == heat.id
    # The spin follows within its max_pause_before.
    assert plan[1].start <= plan[0].end + timedelta(seconds=60)


def test_the_end_time_bounds_the_shift_and_the_rest_is_reported() -> None:
    heat = sequence([(600, 2000), (1200, 300)])
    eco = sequence([(3000, 800)])
    spin = sequence([(600, 500)])
    defn = profile([[heat, eco], [spin]], end_s=3600)
    end = NOW + timedelta(minutes=45)
    plan, excess = shift_plan(defn, None, NOW, end, 400.0)
    assert plan[-1].end <= defn.end_time
    assert excess == pytest.approx(numeric_excess(plan, NOW, end, 400.0), rel=1e-3)
    assert excess > 0
    # Never worse than not shifting at all.
    assert excess <= excess_wh(default_plan(defn, None, NOW), NOW, end, 400.0) + 1e-9


def test_a_running_sequence_stays_and_finished_ones_are_skipped() -> None:
    a, b, c = sequence([(600, 1000)]), sequence([(600, 2000)]), sequence([(600, 3000)])
    defn = profile([[a], [b], [c]], end_s=4 * 3600)
    cids = [k.id for k in defn.power_sequences_containers]
    status = PPBCPowerProfileStatus(
        message_id=uuid.uuid4(),
        sequence_container_status=[
            PPBCPowerSequenceContainerStatus(
                power_profile_id=defn.id,
                sequence_container_id=cids[0],
                selected_sequence_id=a.id,
                status=PPBCPowerSequenceStatus.FINISHED,
            ),
            PPBCPowerSequenceContainerStatus(
                power_profile_id=defn.id,
                sequence_container_id=cids[1],
                selected_sequence_id=b.id,
                status=PPBCPowerSequenceStatus.EXECUTING,
            ),
        ],
    )
    plan, _ = shift_plan(defn, status, NOW, NOW + timedelta(hours=1), 0.0)
    assert [p.container_id for p in plan] == cids[1:]
    assert plan[0].fixed
    assert plan[0].start == NOW
    assert plan[1].start == NOW + timedelta(hours=1)


@st.composite
def profiles(draw):
    containers = []
    for _ in range(draw(st.integers(1, 3))):
        seqs = []
        for _ in range(draw(st.integers(1, 2))):
            steps = draw(
                st.lists(
                    st.tuples(st.integers(60, 1800), st.integers(0, 3000)), min_size=1, max_size=3
                )
            )
            pause = draw(st.one_of(st.none(), st.integers(0, 3600)))
            seqs.append(sequence([(float(d), float(w)) for d, w in steps], pause))
        containers.append(seqs)
    return profile(containers, end_s=draw(st.integers(600, 6 * 3600)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(defn=profiles(), window_s=st.integers(60, 4 * 3600), limit_w=st.integers(0, 2500))
def test_plans_keep_order_and_bounds_and_report_their_excess(defn, window_s, limit_w) -> None:
    end = NOW + timedelta(seconds=window_s)
    plan, excess = shift_plan(defn, None, NOW, end, float(limit_w))
    assert [p.container_id for p in plan] == [c.id for c in defn.power_sequences_containers]
    for prev, nxt in itertools.pairwise(plan):
        assert nxt.start >= prev.end  # in order, never overlapping
    assert plan[0].start >= NOW
    need = sum(p.duration_s for p in plan)
    if NOW + timedelta(seconds=need) <= defn.end_time and all(
        len(c.power_sequences) == 1 for c in defn.power_sequences_containers
    ):
        assert plan[-1].end <= defn.end_time
    assert excess == pytest.approx(excess_wh(plan, NOW, end, float(limit_w)))
    assert excess == pytest.approx(
        numeric_excess(plan, NOW, end, float(limit_w)), rel=2e-2, abs=0.05
    )
    if not _pauses(defn):  # shifting later only shortens what lies in the window
        assert excess <= excess_wh(default_plan(defn, None, NOW), NOW, end, float(limit_w)) + 1e-9


def _pauses(defn) -> bool:
    return any(
        s.max_pause_before is not None
        for c in defn.power_sequences_containers
        for s in c.power_sequences
    )
