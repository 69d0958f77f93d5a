"""Fixtures of the db tests: a fake clock, a store on it, and a driver for whole sync runs."""

from __future__ import annotations

import pytest
from db_support import LEASE_SECONDS, FakeClock, SyncDriver
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.store import InventoryStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> InventoryStore:
    """The store on a fake clock that ticks one second per call."""
    return InventoryStore(engine, lease_seconds=LEASE_SECONDS, clock=clock)


@pytest.fixture
def syncs(store: InventoryStore) -> SyncDriver:
    return SyncDriver(store)
