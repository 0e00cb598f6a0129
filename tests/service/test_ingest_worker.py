"""The ingest worker in process: its fleet from the store, screening, writes, health."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.codec import encode_telemetry
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.service.ingest import INGEST_SHARE, IngestWorker
from gridflock.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'ingest.db'}")
    s.upgrade()
    s.save_fleet(generate_fleet(6, 3))
    yield s
    s.close()


def _worker(store: Store) -> tuple[IngestWorker, MqttLink]:
    link = MqttLink(
        BrokerAddress.parse("mqtt://127.0.0.1:1"), {}, share=INGEST_SHARE, telemetry_only=True
    )
    return IngestWorker(Settings(), store, link), link


def _arrive(link: MqttLink, topic: str, payload: bytes) -> None:
    """A message as the broker hands it to the link."""
    link._on_message(link.client, topic, payload, 0, None)


def test_the_fleet_is_read_from_the_store_and_again_when_it_changes(store: Store) -> None:
    worker, link = _worker(store)
    assert worker.load_fleet() is True
    first = store.device_gateways()
    assert worker.devices == len(first) > 0
    assert link.gateway_of_device == first
    assert worker.load_fleet() is False  # unchanged: nothing to take up
    store.save_fleet(generate_fleet(9, 4))
    assert worker.load_fleet() is True
    assert link.gateway_of_device == store.device_gateways() != first


def test_a_database_away_keeps_the_fleet_known(store: Store, tmp_path: Path) -> None:
    worker, link = _worker(store)
    worker.load_fleet()
    known = dict(link.gateway_of_device)
    worker.store = Store(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    assert worker.load_fleet() is False
    assert link.gateway_of_device == known
    assert worker.fleet_loaded


def test_valid_readings_are_written_and_bad_ones_refused(store: Store) -> None:
    worker, link = _worker(store)
    worker.load_fleet()
    gateways = store.device_gateways()
    device, gw = next(iter(gateways.items()))
    stranger = next(d for d, g in gateways.items() if g != gw)
    now = time.time()
    good = encode_telemetry(gw, [device], [now], [1.25], soc=[0.5])
    bad = json.dumps(
        {
            "v": 1,
            "gateway": gw,
            "readings": [
                {"device": device, "ts": now + 1, "p_kw": 1.0, "soc": 2.0},
                {"device": stranger, "ts": now, "p_kw": 1.0},
            ],
        }
    ).encode()
    _arrive(link, f"gf/v1/{gw}/telemetry", good)
    _arrive(link, f"gf/v1/{gw}/telemetry", bad)
    assert worker.step() == 1
    assert worker.writer.flush()
    span = [dt.datetime.fromtimestamp(t, dt.UTC) for t in (now - 5, now + 5)]
    stored = store.query_telemetry(device, *span)
    assert stored["p_kw"].tolist() == [1.25]
    text = worker.metrics_text().decode()
    assert 'gridflock_telemetry_rejected_total{reason="soc_out_of_range"} 1.0' in text
    assert 'gridflock_telemetry_rejected_total{reason="unknown_device"} 1.0' in text
    assert "gridflock_store_written_rows 1.0" in text
    health = worker.health()
    assert health["role"] == "ingest"
    assert health["readings_written"] == 1
    assert health["status"] == "degraded"  # no broker connection in this test
    assert health["degraded"] == ["broker"]


def test_serve_role_ingest_without_a_broker_says_what_to_set(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from gridflock.cli import app

    for name in ("GRIDFLOCK_MQTT_URL", "GRIDFLOCK_ROLE", "GRIDFLOCK_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRIDFLOCK_CONFIG", str(tmp_path / "none.toml"))
    url = str(store.engine.url)
    result = CliRunner().invoke(app, ["serve", "--role", "ingest", "--db", url])
    assert result.exit_code == 2, result.output
    assert "role ingest needs the broker" in result.output
    assert "GRIDFLOCK_MQTT_URL" in result.output


def test_prune_telemetry_keeps_the_recent_days(store: Store, tmp_path: Path) -> None:
    """`gridflock db prune-telemetry --keep-days 30` deletes older readings, keeps the rest."""
    from typer.testing import CliRunner

    from gridflock.cli import app
    from gridflock.domain.messages import TelemetryBatch

    device = next(iter(store.device_gateways()))
    now = time.time()
    ts = np.array([now - 40 * 86_400, now - 31 * 86_400, now - 29 * 86_400, now - 60])
    n = len(ts)
    store.write_telemetry(
        TelemetryBatch(
            np.full(n, device, dtype=object), ts, np.ones(n), np.full(n, np.nan), np.full(n, np.nan)
        )
    )
    url = str(store.engine.url)
    env = {"GRIDFLOCK_CONFIG": str(tmp_path / "none.toml")}
    refused = CliRunner().invoke(
        app, ["db", "prune-telemetry", "--keep-days", "30", "--db", url], input="n\n", env=env
    )
    assert refused.exit_code == 1
    result = CliRunner().invoke(
        app, ["db", "prune-telemetry", "--keep-days", "30", "--yes", "--db", url], env=env
    )
    assert result.exit_code == 0, result.output
    assert "deleted 2 readings" in result.output
    left = store.query_telemetry(
        device, *[dt.datetime.fromtimestamp(t, dt.UTC) for t in (now - 100 * 86_400, now)]
    )
    assert len(left) == 2
    assert left["ts"].min().timestamp() > now - 30 * 86_400
