"""Engines for the inventory database: SQLite (embedded default) or PostgreSQL.

SQLite gets WAL, enforced foreign keys and a busy timeout on every connection,
and its transactions begin with ``BEGIN IMMEDIATE`` (the write lock is taken
up front, so two writers queue on the busy timeout instead of failing when a
read turns into a write). A connection opened with the execution option
``READ_ONLY`` begins a plain deferred transaction instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from tenantatlas_pipelines.db.rls import install_tenant_scoping, rls_requested
from tenantatlas_pipelines.inventory.settings import database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "tenantatlas_read_only"  # execution option: a read-only (deferred) SQLite transaction


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``TENANTATLAS_DATABASE_URL`` or the embedded SQLite file)."""
    parsed = make_url(url or database_url())
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False), **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(parsed, **kwargs)
    if rls_requested():  # opt-in row-level security: scope every transaction (db/rls.py)
        install_tenant_scoping(engine)
    return engine


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # let SQLAlchemy's "begin" event, not the driver, decide when transactions start
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
