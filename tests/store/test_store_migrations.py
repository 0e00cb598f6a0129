"""Migrations: they apply on both backends, re-applying is a no-op, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gridflock.domain import DEVICE_COMMON, GRID_NODE_ATTRS, SITE_ATTRS
from gridflock.store import Store
from gridflock.store.models import Base, DeviceRow, GridNodeRow, SiteRow, table_of

TABLES = {
    "grid_nodes",
    "sites",
    "devices",
    "events",
    "event_samples",
    "commands",
    "telemetry",
    "api_keys",
    "gateways",
    "audit_log",
    "dead_letters",
    "autopilot_proposals",
    "autopilot_decisions",
    "forecast_models",
    "forecasts",
    "schedules",
    "settlements",
    "support_windows",
    "envelopes",
    "leadership",
}
HEAD = "0011"


def _version(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_upgrade_creates_every_table(new_store: Store) -> None:
    new_store.upgrade()
    names = set(inspect(new_store.engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    assert _version(new_store) == [HEAD]


def test_upgrade_again_is_a_no_op(store: Store) -> None:
    before = {t: inspect(store.engine).get_columns(t) for t in TABLES}
    store.upgrade()
    after = {t: inspect(store.engine).get_columns(t) for t in TABLES}
    assert _version(store) == [HEAD]
    assert [c["name"] for c in before["telemetry"]] == [c["name"] for c in after["telemetry"]]
    assert before.keys() == after.keys()


def test_migrated_schema_matches_models(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        assert store.engine.dialect.name == "postgresql"
        return
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_models_have_a_column_per_declared_attribute() -> None:
    for model, attrs in (
        (GridNodeRow, GRID_NODE_ATTRS),
        (SiteRow, SITE_ATTRS),
        (DeviceRow, DEVICE_COMMON),
    ):
        columns = set(table_of(model).c.keys())
        names = {a.name for a in attrs}
        if model is DeviceRow:
            # the later common attributes (protocol) live in the JSON ``attrs`` column
            from gridflock.store._fleet import _COMMON_COLS, _JSON_COMMON

            assert set(_COMMON_COLS) <= columns
            assert names == set(_COMMON_COLS) | set(_JSON_COMMON)
            assert "attrs" in columns
        else:
            assert names <= columns, model.__name__


def test_downgrade_to_base_and_back(store: Store) -> None:
    from alembic import command

    from gridflock.store.repository import alembic_config

    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert not TABLES & set(inspect(store.engine).get_table_names())
    store.upgrade()
    assert set(inspect(store.engine).get_table_names()) >= TABLES


def test_0002_upgrades_a_0001_database_with_commands(new_store: Store) -> None:
    """Commands stored before 0002 survive it (SQLite rebuilds the table) and get NULLs."""
    from alembic import command

    from gridflock.store.repository import alembic_config

    cfg = alembic_config()
    with new_store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with new_store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO commands (command_id, device_id, event_id, seq, p_setpoint_kw, "
                "issued_at, valid_until) VALUES ('c1', 'd1', 'ev', 1, 2.5, "
                ":t, :t)"
            ),
            {"t": "2025-07-01 00:00:00+00:00"},
        )
    new_store.upgrade()
    assert _version(new_store) == [HEAD]
    df = new_store.commands_for_event("ev")
    assert df["command_id"].tolist() == ["c1"]
    assert df["status"].tolist() == ["sent"]
    assert df["reason"].isna().all()
    assert df["acked_at"].isna().all()
    indexes = {i["name"] for i in inspect(new_store.engine).get_indexes("commands")}
    assert {"ix_commands_event_id", "ix_commands_device_id"} <= indexes


def test_downgrade_0002_keeps_0001_data(store: Store) -> None:
    from alembic import command

    from gridflock.store.repository import alembic_config

    store.audit("system", "test", "x")
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    names = set(inspect(store.engine).get_table_names())
    assert not {"api_keys", "gateways", "audit_log"} & names
    cols = {c["name"] for c in inspect(store.engine).get_columns("commands")}
    assert not {"reason", "acked_at"} & cols
    store.upgrade()
    assert _version(store) == [HEAD]
