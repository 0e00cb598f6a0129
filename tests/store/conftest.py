"""Store fixtures: a ``store`` per backend (SQLite temp file, PostgreSQL fresh schema).

PostgreSQL comes from ``GRIDFLOCK_TEST_POSTGRES_URL`` (default below). If it cannot be
reached the PostgreSQL tests fail, naming the URL and how to start the server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from gridflock.store import Store
from gridflock.store._engine import normalise_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = normalise_url(os.environ.get("GRIDFLOCK_TEST_POSTGRES_URL", DEFAULT_PG_URL))
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _check_postgres() -> None:
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL} (set GRIDFLOCK_TEST_POSTGRES_URL to "
            f"change it). Start it with: {START_HINT}\n{exc}",
            pytrace=False,
        )
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL, checked once per run to be reachable."""
    _check_postgres()
    return PG_URL


def _drop_schema(schema: str) -> None:
    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend a test runs on."""
    name: str = request.param
    return name


@pytest.fixture
def new_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on ``backend`` with no tables yet (SQLite file or fresh PostgreSQL schema)."""
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'gridflock.db'}")
        yield store
        store.close()
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    store = Store(url, schema=schema)
    try:
        yield store
    finally:
        store.close()
        _drop_schema(schema)


@pytest.fixture
def store(new_store: Store) -> Store:
    """A migrated, empty store."""
    new_store.upgrade()
    return new_store
