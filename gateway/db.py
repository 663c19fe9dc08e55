"""The gateway's relational store (audit log, budget ledger, API keys): SQLite or PostgreSQL.

SQLite runs in WAL mode with `synchronous=FULL` and a busy timeout, so concurrent
writers in threads and processes wait rather than fail; PostgreSQL is used as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from gateway.errors import ConfigurationError

__all__ = ["create_database_engine", "is_sqlite", "read_only"]


def is_sqlite(url: str) -> bool:
    """True for a sqlite:// URL."""
    return url.startswith("sqlite")


def create_database_engine(url: str) -> Engine:
    """An SQLAlchemy engine for `url` (sqlite:///path or postgresql+psycopg://...)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Writers take the write lock when their transaction starts (BEGIN IMMEDIATE), so a
        # read-then-write cannot race another process; readers (see `read_only`) do not, so
        # they never queue behind a writer's fsync.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql+psycopg://"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ConfigurationError(
        f"unsupported database URL scheme in {url.split(':', 1)[0]!r}; "
        "use sqlite:/// or postgresql://"
    )


def read_only(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite its transactions do not take the write lock."""
    return engine.connect().execution_options(gateway_read_only=True)


def _sqlite_begin(conn: Connection) -> None:
    read = conn.get_execution_options().get("gateway_read_only", False)
    conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; BEGIN is explicit
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
