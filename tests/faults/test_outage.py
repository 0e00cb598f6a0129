"""PostgreSQL cut off under load: the API stays up and no reading is lost.

Real parts only: PostgreSQL behind a TCP proxy the test cuts, a private Mosquitto,
``gridflock serve`` and ``gridflock sim gateways`` as subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._outage import database_outage

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_database_outage_keeps_the_api_up_and_loses_no_reading(tmp_path: Path) -> None:
    """PostgreSQL unreachable for 10 s while every device reports each second.

    Lost: nothing. Readings wait in the service's buffer (bounded by
    ``telemetry_buffer_rows``, far above the ~600 an outage of 10 s brings here) and
    are all written when the database is back: the rows in the store equal the readings
    the gateways published. An event created during the outage is stored too. The API
    keeps answering from memory: GET /fleet, GET /events and POST /events succeed, and
    health says the database part is down. Recovery: the backlog is written within
    seconds of the database's return.
    """
    f = database_outage(tmp_path)
    assert f.outage_s >= 10, f
    assert f.answers["GET /fleet"] == [200], f
    assert f.answers["GET /events"] == [200], f
    assert f.answers["GET /events/{id}"] == [200], f
    assert f.answers["POST /events"] == [201], f
    assert f.health_database != "up", f
    assert f.health_status == "degraded", f
    assert f.buffered_peak > 0, f
    assert f.buffered_peak < f.buffer_bound, f
    assert f.published > 0, f
    assert f.dropped_by_service == 0, f
    assert f.lost == 0, f
    assert f.event_created_during_outage_stored, f
    assert f.commands_recorded > 0, f
