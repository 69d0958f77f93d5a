"""Engines for the inventory database: SQLite (embedded default) or PostgreSQL.

SQLite gets WAL, enforced foreign keys and a busy timeout on every connection,
and its transactions begin with ``BEGIN IMMEDIATE`` (the write lock is taken
up front, so two writers queue on the busy timeout instead of failing when a
read turns into a write). A connection opened with the execution option
``READ_ONLY`` begins a plain deferred transaction instead.

Only the drivers the project installs are accepted (``SUPPORTED_URL_FORMS``; a
plain ``postgresql://`` is taken as psycopg2, where SQLAlchemy 2.1 would pick
psycopg 3, which is not installed): any other URL, or one that does not parse,
is refused with one line naming the supported forms (no driver import
traceback, no password echoed). A database
that cannot be reached is reported by ``connect`` with one line naming the host
and port (or the SQLite file) and the fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from tenantatlas_pipelines.db.rls import install_tenant_scoping, rls_requested
from tenantatlas_pipelines.inventory.errors import ConfigError
from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV, database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10  # libpq's connect_timeout, unless the URL sets one
READ_ONLY = "tenantatlas_read_only"  # execution option: a read-only (deferred) SQLite transaction

# the drivers installed with the project (psycopg2 is the one dagster-postgres needs too);
# a plain postgresql:// URL means psycopg2
SUPPORTED_DRIVERS = frozenset({"postgresql", "postgresql+psycopg2", "sqlite", "sqlite+pysqlite"})
SUPPORTED_URL_FORMS = "postgresql+psycopg2://user:password@host:5432/dbname or sqlite:///path/to/inventory.db"
_WHERE_TO_FIX = f"{DATABASE_URL_ENV} (or --database-url)"


class DatabaseUrlError(ConfigError):
    """The database URL does not parse, or names a driver the project does not install."""


class DatabaseUnreachableError(ConfigError):
    """The inventory database cannot be connected to (server down, wrong host or port, no file)."""


def parse_database_url(url: str) -> URL:
    """``url`` parsed, or ``DatabaseUrlError`` naming the supported forms (never the URL itself)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(
            f"the inventory database URL is not a SQLAlchemy URL; fix {_WHERE_TO_FIX}, "
            f"supported forms: {SUPPORTED_URL_FORMS}"
        ) from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername + '://'!r}; fix {_WHERE_TO_FIX}, "
            f"supported forms: {SUPPORTED_URL_FORMS}"
        )
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3, not installed
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def connect(engine: Engine) -> Connection:
    """A connection of ``engine``, or ``DatabaseUnreachableError`` in one line without a password."""
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise DatabaseUnreachableError(_unreachable_message(engine.url, exc)) from None


def _unreachable_message(url: URL, exc: DBAPIError) -> str:
    if url.get_backend_name() == "sqlite":
        where = f"file {url.database}"
        fix = f"check that the folder exists and is writable, or fix {_WHERE_TO_FIX}"
    else:
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
        fix = f"start the database server or fix the host, port or credentials in {_WHERE_TO_FIX}"
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = lines[0].strip()
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return f"cannot connect to the inventory database at {where} ({reason}): {fix}"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: ``TENANTATLAS_DATABASE_URL`` or the embedded SQLite file)."""
    parsed = parse_database_url(url or database_url())
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False), **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if "connect_timeout" not in parsed.query:  # a server that drops packets fails in seconds, not minutes
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        kwargs["connect_args"] = connect_args
    engine = create_engine(parsed, **kwargs)
    if rls_requested():  # opt-in row-level security: scope every transaction (db/rls.py)
        install_tenant_scoping(engine)
    return engine


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnreachableError(
                f"cannot create the folder {folder} of the SQLite inventory database "
                f"({exc.strerror or type(exc).__name__}): fix {_WHERE_TO_FIX}"
            ) from None
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
