"""Store fixtures: a ``store`` per backend (SQLite temp file, PostgreSQL fresh schema).

PostgreSQL comes from ``GRIDFLOCK_TEST_POSTGRES_URL`` (default below). If it cannot be
reached the PostgreSQL tests fail, naming the URL and how to start the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridflock.store import Store


@pytest.fixture
def new_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on ``backend`` with no tables yet (SQLite file or fresh PostgreSQL schema)."""
    if backend == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'gridflock.db'}")
        yield store
        store.close()
        return
    url: str = request.getfixturevalue("postgres_url")
    store = Store(url, schema=request.getfixturevalue("fresh_schema")("gf_test"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def store(new_store: Store) -> Store:
    """A migrated, empty store."""
    new_store.upgrade()
    return new_store
