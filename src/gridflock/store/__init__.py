"""The database edge: SQLAlchemy models, repositories and Alembic migrations.

SQLite (WAL) by default, PostgreSQL in production, the same migrations for both::

    with Store("sqlite:///gridflock.db") as store:
        store.upgrade()
        store.save_fleet(spec)
"""

from gridflock.store.errors import StoreError, UnknownEventError
from gridflock.store.repository import Store

__all__ = ["Store", "StoreError", "UnknownEventError"]
