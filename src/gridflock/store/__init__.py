"""The database edge: SQLAlchemy models, repositories and Alembic migrations.

SQLite (WAL) by default, PostgreSQL in production, the same migrations for both::

    with Store("sqlite:///gridflock.db") as store:
        store.upgrade()
        store.save_fleet(spec)
"""

from gridflock.store._history import SitePower
from gridflock.store.errors import AlreadyExistsError, StoreError, UnknownEventError
from gridflock.store.records import ApiKey, AuditRecord, GatewayRecord
from gridflock.store.repository import Store

__all__ = [
    "AlreadyExistsError",
    "ApiKey",
    "AuditRecord",
    "GatewayRecord",
    "SitePower",
    "Store",
    "StoreError",
    "UnknownEventError",
]
