"""Engines: SQLite pragmas and locking, PostgreSQL pre-ping, the URL from the environment."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tenantatlas_pipelines.db.engine import READ_ONLY, SQLITE_BUSY_TIMEOUT_MS, make_engine
from tenantatlas_pipelines.db.schema import inventory_items
from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'inventory.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert (tmp_path / "nested" / "dir" / "inventory.db").is_file()
    finally:
        engine.dispose()


def test_sqlite_writers_queue_on_the_lock_instead_of_failing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        holding, order = threading.Event(), []

        def first() -> None:
            with engine.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock from the start
                holding.set()
                time.sleep(0.2)
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                order.append(1)

        thread = threading.Thread(target=first)
        thread.start()
        assert holding.wait(5)
        with engine.begin() as conn:  # waits for the first writer, then reads its row
            count = conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            order.append(2)
        thread.join()
        assert order == [1, 2] and count == 1
        with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    now = datetime.now(UTC)
    row = {
        "tenant_id": 999,  # no such tenant
        "policy_type": "deviceConfiguration",
        "external_id": "a",
        "category": "configuration",
        "meta_jsonb": {},
        "last_seen_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(inventory_items.insert(), row)


def test_postgres_engines_ping_before_use() -> None:
    engine = make_engine("postgresql+psycopg2://user:secret@db.example:5432/inventory")
    assert engine.pool._pre_ping
    engine.dispose()


def test_the_url_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'from-env.db'}")
    engine = make_engine()
    try:
        assert engine.url.database == str(tmp_path / "from-env.db")
    finally:
        engine.dispose()
