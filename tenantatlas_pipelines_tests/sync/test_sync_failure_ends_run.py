"""A failure in any task of a sync ends the whole sync at once, records it failed and frees the lock.

Each case makes the fetchers outpace a failed writer (a queue of one page, small pages, or a
Graph that pages forever), so a sync that waited for its fetchers would never end: the pytest
timeout catches that. After the failure the run row is ``failed`` (``unexpected_exception``,
finished), the raised error names it, and the next sync of the same tenant and selection takes
the lock instead of being skipped as ``lock_contended``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sync_support import ALL, COMPLIANCE, TENANT_A, entry, simulator, tenant_scenario

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.graph.client import GraphPage
from tenantatlas_pipelines.inventory.catalog import PolicyType
from tenantatlas_pipelines.inventory.errors import ErrorCode, SyncFailedError
from tenantatlas_pipelines.inventory.normalize import normalize_item
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import TenantEntry
from tenantatlas_pipelines.sync import service as service_module
from tenantatlas_pipelines.sync.graph_factory import graph_factory
from tenantatlas_pipelines.sync.service import (
    GraphFactory,
    PageSource,
    SyncRequest,
    SyncResult,
    SyncService,
    SyncSettings,
)

# fetchers would block on a full queue of one page as soon as the writer stops taking pages
TIGHT = SyncSettings(batch_size=5, max_buffered_items=10, queue_pages=1, heartbeat_seconds=0.05)
ENDS_WITHIN_SECONDS = 10.0


async def _no_sleep(_: float) -> None:
    return None


def _simulated(store: InventoryStore) -> SyncService:
    sim = simulator(tenant_scenario(page_size=5))  # small pages: many more pages than the queue holds
    return SyncService(store, graph_factory(sim, sleep=_no_sleep), TIGHT)


def _sync(svc: SyncService, selection: Selection = ALL) -> SyncResult:
    return svc.run(SyncRequest("a", entry(TENANT_A), "all", selection))


def _ends_failed(store: InventoryStore, svc: SyncService, selection: Selection = ALL) -> SyncFailedError:
    """Run a sync that must fail: promptly, recorded failed, with a raised error naming the run."""
    started = time.monotonic()
    with pytest.raises(SyncFailedError) as raised:
        _sync(svc, selection)
    elapsed = time.monotonic() - started
    assert elapsed < ENDS_WITHIN_SECONDS, f"the failing sync took {elapsed:.1f}s to end"
    run = store.runs(store.tenant_pk("a"), selection.hash())[0]
    assert run.status is RunStatus.FAILED and run.finished_at is not None
    assert run.error_codes == [str(ErrorCode.UNEXPECTED_EXCEPTION)]
    error = raised.value
    assert error.code is ErrorCode.UNEXPECTED_EXCEPTION and error.run_id == run.id
    assert f"sync run {run.id} of all|a failed (unexpected_exception)" in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    return error


def _next_sync_takes_the_lock(store: InventoryStore, svc: SyncService, selection: Selection = ALL) -> None:
    again = _sync(svc, selection)
    assert again.status is RunStatus.SUCCESS, again.error_codes  # not skipped as lock_contended
    runs = store.runs(store.tenant_pk("a"), selection.hash())
    assert [r.status for r in runs][:2] == [RunStatus.SUCCESS, RunStatus.FAILED]


@pytest.mark.timeout(60, method="thread")  # a hung sync cannot be interrupted by a signal
def test_a_normalisation_bug_ends_the_sync_failed_and_the_next_run_takes_the_lock(
    store: InventoryStore, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = normalize_item
    seen = {"n": 0}

    def buggy(policy_type: PolicyType, raw: Any, fingerprint: str | None = None) -> Any:
        seen["n"] += 1
        if seen["n"] == 12:  # one item, a few pages in
            raise KeyError("a bug in normalisation")
        return real(policy_type, raw, fingerprint)

    monkeypatch.setattr(service_module, "normalize_item", buggy)
    svc = _simulated(store)
    error = _ends_failed(store, svc)
    assert "KeyError" in str(error) and "a bug in normalisation" in str(error)

    monkeypatch.setattr(service_module, "normalize_item", real)
    _next_sync_takes_the_lock(store, svc)


@pytest.mark.timeout(60, method="thread")  # a hung sync cannot be interrupted by a signal
def test_a_failed_batch_write_ends_the_sync_failed_and_the_next_run_takes_the_lock(
    store: InventoryStore, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.upsert_batches
    calls = {"n": 0}

    def second_write_fails(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the database refused the batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "upsert_batches", second_write_fails)
    svc = _simulated(store)
    error = _ends_failed(store, svc)
    assert "RuntimeError" in str(error) and "the database refused the batch" in str(error)
    assert calls["n"] == 2, "no batch is written after the failed one"

    monkeypatch.setattr(store, "upsert_batches", real)
    _next_sync_takes_the_lock(store, svc)


# -- a Graph that pages forever: only a cancellation ends its fetchers ------------------------------


class _EndlessGraph:
    """Pages of the same few items forever; one policy type's listing raises a plain bug."""

    def __init__(self, broken_type: str | None) -> None:
        self.broken_type = broken_type
        self.pages = 0

    async def list_pages(self, policy_type: PolicyType) -> AsyncIterator[GraphPage]:
        number = 0
        while True:
            await asyncio.sleep(0.001)
            number += 1
            if policy_type.key == self.broken_type and number == 3:
                raise ValueError("a bug in the Graph client (not a GraphError)")
            self.pages += 1
            items = [{"id": f"{policy_type.key}-{(number * 5 + i) % 40}"} for i in range(5)]
            yield GraphPage(policy_type.key, items, number, 0)


def _endless(graph: _EndlessGraph) -> GraphFactory:
    @asynccontextmanager
    async def open_graph(tenant_key: str, tenant: TenantEntry) -> AsyncIterator[PageSource]:
        yield graph

    return open_graph


@pytest.fixture
def endless_service(store: InventoryStore, secrets_env: None) -> Iterator[Callable[..., SyncService]]:
    """endless_service(broken_type | graph=...) -> a service reading a Graph that pages forever."""

    def endless(broken_type: str | None = None, graph: _EndlessGraph | None = None) -> SyncService:
        return SyncService(store, _endless(graph or _EndlessGraph(broken_type)), TIGHT)

    yield endless


@pytest.mark.timeout(60, method="thread")  # a hung sync cannot be interrupted by a signal
def test_a_fetcher_failing_with_a_bug_cancels_the_other_fetchers_and_ends_the_sync(
    store: InventoryStore, endless_service: Callable[..., SyncService]
) -> None:
    graph = _EndlessGraph("compliancePolicyV2")
    error = _ends_failed(store, endless_service(graph=graph), COMPLIANCE)
    assert "ValueError" in str(error) and "a bug in the Graph client" in str(error)
    pages = graph.pages
    time.sleep(0.2)
    assert graph.pages == pages, "a fetcher still lists pages after the sync ended"
    _next_sync_takes_the_lock(store, _simulated(store), COMPLIANCE)


@pytest.mark.timeout(60, method="thread")  # a hung sync cannot be interrupted by a signal
def test_a_lost_lease_in_the_heartbeat_ends_the_sync_failed(
    store: InventoryStore,
    endless_service: Callable[..., SyncService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = store.heartbeat

    def lease_lost(tenant_pk: int, run_id: int) -> None:
        raise RuntimeError(f"sync run {run_id}: the lease could not be renewed")

    monkeypatch.setattr(store, "heartbeat", lease_lost)
    error = _ends_failed(store, endless_service(), COMPLIANCE)
    assert "the lease could not be renewed" in str(error) and "in lease_lost" in str(error)

    monkeypatch.setattr(store, "heartbeat", real)
    _next_sync_takes_the_lock(store, _simulated(store), COMPLIANCE)
