"""The Graph budget kept in the inventory database: stored rows, concurrent takers, leases, migration 0003."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.graph_budget import DatabaseBudgetLedger
from tenantatlas_pipelines.db.migrate import alembic_config
from tenantatlas_pipelines.db.schema import BUDGET_TABLES, graph_budget_buckets, graph_budget_leases
from tenantatlas_pipelines.inventory.graph_budget import RateLimit

TENANT = "0f6a1c2e-4b5d-4e8f-9a01-23456789abcd"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def budget_engine(engine: Engine) -> Iterator[Engine]:
    """The test database with its Graph budget tables emptied (the session's PostgreSQL keeps rows)."""
    with engine.begin() as conn:
        for table in BUDGET_TABLES:
            conn.execute(delete(table))
    yield engine


def test_a_take_stores_the_bucket_refilled_by_elapsed_time(budget_engine: Engine) -> None:
    clock = FakeClock()
    ledger = DatabaseBudgetLedger(budget_engine, clock)
    limit = RateLimit(rate=4.0, burst=2.0)
    assert ledger.take_tokens(TENANT, "intune", 5, limit).granted == 2  # a new bucket starts full
    assert ledger.take_tokens(TENANT, "intune", 5, limit).granted == 0
    clock.advance(0.5)
    assert ledger.take_tokens(TENANT, "intune", 1, limit).granted == 1
    with budget_engine.connect() as conn:
        row = conn.execute(select(graph_budget_buckets)).one()
    assert (row.entra_tenant_id, row.rate_class) == (TENANT, "intune")
    assert row.tokens == pytest.approx(1.0)  # 2 per half second refilled, 1 taken
    assert row.refilled_at == clock.now
    assert ledger.take_tokens(TENANT, "conditional_access", 3, RateLimit(1.0, 1.0)).granted == 1


def test_concurrent_takers_in_threads_never_get_more_than_the_bucket_allows(budget_engine: Engine) -> None:
    ledger = DatabaseBudgetLedger(budget_engine)
    limit = RateLimit(rate=20.0, burst=5.0)
    granted: list[int] = []
    start = datetime.now(UTC)

    def taker() -> None:
        total = 0
        while datetime.now(UTC) - start < timedelta(seconds=1.0):
            total += ledger.take_tokens(TENANT, "intune", 3, limit).granted
        granted.append(total)

    threads = [threading.Thread(target=taker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = (datetime.now(UTC) - start).total_seconds()
    assert sum(granted) <= 5 + 20 * elapsed
    assert sum(granted) >= 15  # the takers were not starved by each other's transactions


def test_leases_are_shared_fairly_stored_and_freed_when_expired(budget_engine: Engine) -> None:
    clock = FakeClock()
    ledger = DatabaseBudgetLedger(budget_engine, clock)
    assert ledger.lease_slots(TENANT, "a", wanted=4, in_use=0, bound=4, ttl=10.0) == 4
    assert ledger.lease_slots(TENANT, "b", wanted=4, in_use=0, bound=4, ttl=10.0) == 0
    assert ledger.lease_slots(TENANT, "a", wanted=4, in_use=1, bound=4, ttl=10.0) == 2  # b is waiting
    assert ledger.lease_slots(TENANT, "b", wanted=4, in_use=0, bound=4, ttl=10.0) == 2
    with budget_engine.connect() as conn:
        rows = {
            r.holder: (r.slots, r.wanted, r.expires_at) for r in conn.execute(select(graph_budget_leases))
        }
    assert rows == {
        "a": (2, 4, clock.now + timedelta(seconds=10)),
        "b": (2, 4, clock.now + timedelta(seconds=10)),
    }
    clock.advance(10.0)  # a died: its lease expired
    assert ledger.lease_slots(TENANT, "b", wanted=4, in_use=2, bound=4, ttl=10.0) == 4
    ledger.release_slots(TENANT, "b")
    with budget_engine.connect() as conn:
        assert conn.execute(select(graph_budget_leases)).all() == []


def test_migration_0003_adds_and_drops_the_budget_tables(blank_db_url: str) -> None:
    config = alembic_config(url=blank_db_url)
    engine = make_engine(blank_db_url)
    try:
        command.upgrade(config, "0003")
        assert {t.name for t in BUDGET_TABLES} <= set(inspect(engine).get_table_names())
        command.downgrade(config, "0002")
        assert {t.name for t in BUDGET_TABLES} & set(inspect(engine).get_table_names()) == set()
    finally:
        engine.dispose()
