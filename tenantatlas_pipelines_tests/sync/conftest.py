"""Fixtures for sync tests: a service wired to the store and a simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sync_support import ALL, SECRET_A, SECRET_B, TENANT_A, entry

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.graph.retry import RetryPolicy
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.sync.graph_factory import graph_factory
from tenantatlas_pipelines.sync.service import SyncRequest, SyncResult, SyncService, SyncSettings


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TA_SECRET_A", SECRET_A)
    monkeypatch.setenv("TA_SECRET_B", SECRET_B)


Syncer = Callable[..., SyncResult]


@pytest.fixture
def make_syncer(store: InventoryStore, secrets_env: None) -> Iterator[Callable[[GraphSimulator], Syncer]]:
    """make_syncer(sim)(tenant_key, selection_key, selection, tenant_id) runs one sync."""

    def bind(sim: GraphSimulator, **client_options: Any) -> Syncer:
        client_options.setdefault("sleep", _no_sleep)
        client_options.setdefault("retry", RetryPolicy(max_attempts=4, max_total=30.0))
        service = SyncService(store, graph_factory(sim, **client_options), SyncSettings(batch_size=50))

        def sync(
            tenant_key: str = "a",
            selection_key: str = "all",
            selection: Selection = ALL,
            tenant_id: str = TENANT_A,
        ) -> SyncResult:
            return service.run(SyncRequest(tenant_key, entry(tenant_id), selection_key, selection))

        return sync

    yield bind
