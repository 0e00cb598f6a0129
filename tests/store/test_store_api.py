"""The public surface of gridflock.store and its URL handling."""

from __future__ import annotations

import pytest

import gridflock.store
from gridflock.domain import GridflockError
from gridflock.store import Store, StoreError
from gridflock.store._engine import normalise_url


def test_public_names() -> None:
    assert sorted(gridflock.store.__all__) == [
        "AlreadyExistsError",
        "ApiKey",
        "AuditRecord",
        "GatewayRecord",
        "SitePower",
        "Store",
        "StoreError",
        "UnknownEventError",
    ]
    for name in gridflock.store.__all__:
        assert getattr(gridflock.store, name) is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_use_psycopg(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_plain_postgresql_url_is_accepted() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none")
    assert store.engine.dialect.driver == "psycopg"
    store.close()


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("mysql://u@h/db", {}, "unsupported database"),
        ("not a url", {}, "invalid database URL"),
        ("sqlite:///x.db", {"schema": "s"}, "only supported on PostgreSQL"),
        ("postgresql://u@h/db", {"schema": "x; drop table y"}, "invalid schema name"),
    ],
)
def test_bad_configuration_is_a_store_error(url: str, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(StoreError, match=match) as info:
        Store(url, **kwargs)
    assert isinstance(info.value, GridflockError)


def test_context_manager_closes(tmp_path: object) -> None:
    with Store(f"sqlite:///{tmp_path}/a.db") as store:
        store.upgrade()
        assert store.list_events() == []
