"""Sync runs and the database lock: contention, stale leases, heartbeats, finishing, failing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from db_support import LEASE_SECONDS, FakeClock, SyncDriver, make_item, selection_hash
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.errors import RunNotRunningError, UnknownRunError
from tenantatlas_pipelines.db.store import InventoryStore, RunStart
from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

ALL = selection_hash("all")


def _start(store: InventoryStore, tenant: int, **kwargs: Any) -> RunStart:
    return store.start_run(tenant, "all", ALL, '{"categories":[]}', **kwargs)


def _race(store: InventoryStore, tenant: int, hash_: str) -> list[RunStart]:
    """Two threads (two pooled connections) call start_run at the same moment."""
    barrier = threading.Barrier(2)
    results: list[RunStart] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(store.start_run(tenant, "race", hash_, "{}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return results


def test_two_concurrent_starters_get_one_running_and_one_skipped_run(
    engine: Engine, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    store = InventoryStore(engine)  # real clock: both starters see a fresh lease
    for attempt in range(3):
        hash_ = selection_hash(f"race-{attempt}")
        results = _race(store, tenant, hash_)
        assert sorted(r.status for r in results) == [RunStatus.RUNNING, RunStatus.SKIPPED]
        skipped = next(r for r in results if r.status is RunStatus.SKIPPED)
        row = store.get_run(tenant, skipped.run_id)
        assert row.error_codes == ["lock_contended"] and row.had_errors and row.finished_at is not None
        winner = next(r for r in results if r.status is RunStatus.RUNNING)
        assert store.get_run(tenant, winner.run_id).status is RunStatus.RUNNING
        assert len(store.runs(tenant, hash_)) == 2


def test_a_starter_that_loses_the_race_at_the_unique_index_records_a_skipped_run(
    store: InventoryStore, tenant_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = tenant_factory()
    holder = _start(store, tenant)
    real = store._lock_holder
    calls = 0

    def blind_first_look(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return None if calls == 1 else real(*args)  # as if the holder committed just after our check

    monkeypatch.setattr(store, "_lock_holder", blind_first_look)
    loser = _start(store, tenant)
    assert calls == 2
    assert loser.status is RunStatus.SKIPPED
    row = store.get_run(tenant, loser.run_id)
    assert row.error_codes == ["lock_contended"]
    assert f"sync run {holder.run_id} holds the lock" in row.error_context["_tenant"][0]["message"]
    assert store.get_run(tenant, holder.run_id).status is RunStatus.RUNNING


def test_a_fresh_lease_skips_the_new_run_and_keeps_the_holder_running(
    store: InventoryStore, clock: FakeClock, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    holder = _start(store, tenant)
    clock.advance(LEASE_SECONDS - 10)
    second = _start(store, tenant, dagster_run_id="dagster-2")
    assert second.status is RunStatus.SKIPPED and second.abandoned_run_ids == []
    row = store.get_run(tenant, second.run_id)
    assert row.status is RunStatus.SKIPPED and row.started_at == row.finished_at
    assert row.errors_count == 1 and row.dagster_run_id == "dagster-2"
    assert store.get_run(tenant, holder.run_id).status is RunStatus.RUNNING


def test_an_expired_lease_is_taken_over_and_the_old_run_marked_abandoned(
    store: InventoryStore, clock: FakeClock, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    stale = _start(store, tenant)
    clock.advance(LEASE_SECONDS + 1)
    taking_over = _start(store, tenant)
    assert taking_over.status is RunStatus.RUNNING
    assert taking_over.abandoned_run_ids == [stale.run_id]
    old = store.get_run(tenant, stale.run_id)
    assert old.status is RunStatus.FAILED and old.had_errors and old.finished_at is not None
    assert old.error_codes == ["run_abandoned"] and old.errors_count == 1
    assert "no heartbeat since" in old.error_context["_tenant"][0]["message"]
    # the process that lost its lease may not write any more
    with pytest.raises(RunNotRunningError):
        store.heartbeat(tenant, stale.run_id)
    with pytest.raises(RunNotRunningError):
        store.upsert_items(tenant, stale.run_id, "deviceConfiguration", [make_item("a")], store.now())
    with pytest.raises(RunNotRunningError):
        store.finish_run(tenant, stale.run_id, RunOutcome(RunStatus.SUCCESS))
    assert store.get_run(tenant, stale.run_id).status is RunStatus.FAILED


def test_heartbeats_and_upserts_keep_the_lease_alive(
    store: InventoryStore, clock: FakeClock, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    holder = _start(store, tenant)
    clock.advance(LEASE_SECONDS * 0.6)
    store.heartbeat(tenant, holder.run_id)
    clock.advance(LEASE_SECONDS * 0.6)
    store.upsert_items(tenant, holder.run_id, "deviceConfiguration", [make_item("a")], store.now())
    clock.advance(LEASE_SECONDS * 0.6)  # 1.8 leases since the start, 0.6 since the last sign of life
    assert _start(store, tenant).status is RunStatus.SKIPPED
    clock.advance(LEASE_SECONDS * 0.5)
    assert _start(store, tenant).abandoned_run_ids == [holder.run_id]


def test_finish_run_records_the_outcome(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    errors = [
        ErrorRecord(
            code=ErrorCode.GRAPH_FORBIDDEN, message="missing scope", policy_type="mobileApp", status=403
        ),
        ErrorRecord(code=ErrorCode.ITEM_INVALID, message="no id", policy_type="deviceConfiguration"),
        ErrorRecord(code=ErrorCode.ITEM_INVALID, message="no id", policy_type="deviceConfiguration"),
    ]
    outcome = RunOutcome(
        status=RunStatus.PARTIAL,
        type_results={
            "deviceConfiguration": TypeResult("deviceConfiguration", TypeOutcome.SUCCESS, items=3, pages=2),
            "mobileApp": TypeResult("mobileApp", TypeOutcome.FAILED, error_code=ErrorCode.GRAPH_FORBIDDEN),
        },
        errors=errors,
        items_observed=3,
        items_upserted=3,
        had_errors=True,
    )
    store.finish_run(tenant, run, outcome)
    row = store.get_run(tenant, run)
    assert row.status is RunStatus.PARTIAL and row.had_errors and row.finished_at is not None
    assert row.error_codes == ["graph_forbidden", "item_invalid"]
    assert row.errors_count == 3
    assert row.items_observed_count == 3 and row.items_upserted_count == 3
    assert row.type_results["mobileApp"] == {**outcome.type_results["mobileApp"].to_dict()}
    assert row.type_results["deviceConfiguration"]["pages"] == 2
    assert [e["status"] for e in row.error_context["mobileApp"]] == [403]
    assert len(row.error_context["deviceConfiguration"]) == 2
    assert row.completed


def test_finish_run_refuses_a_non_final_status_and_a_second_finish(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    with pytest.raises(ValueError, match="success, partial or failed"):
        store.finish_run(tenant, run, RunOutcome(RunStatus.SKIPPED))
    store.finish_run(tenant, run, RunOutcome(RunStatus.SUCCESS))
    with pytest.raises(RunNotRunningError):
        store.finish_run(tenant, run, RunOutcome(RunStatus.FAILED))
    assert store.get_run(tenant, run).status is RunStatus.SUCCESS


def test_mark_run_failed_only_touches_running_runs(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    finished = syncs.sync(tenant, {"deviceConfiguration": ["a"]})
    running = syncs.start(tenant, dagster_run_id="dagster-run-1")
    assert store.mark_run_failed(dagster_run_id="dagster-run-1", message="the Dagster run died") == 1
    row = store.get_run(tenant, running)
    assert row.status is RunStatus.FAILED and row.error_codes == ["unexpected_exception"]
    assert row.error_context["_tenant"][0]["message"] == "the Dagster run died"
    assert store.mark_run_failed(running) == 0
    assert store.mark_run_failed(finished, code=ErrorCode.RUN_ABANDONED) == 0
    assert store.get_run(tenant, finished).status is RunStatus.SUCCESS
    with pytest.raises(ValueError):
        store.mark_run_failed()


def test_latest_completed_run_and_run_listing_are_newest_first(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    first = syncs.sync(tenant, {"deviceConfiguration": ["a"]})
    second = syncs.sync(tenant, {"deviceConfiguration": ["a"]}, failed_types=["mobileApp"])
    other = syncs.sync(tenant, {"deviceConfiguration": ["a"]}, selection="compliance")
    running = syncs.start(tenant)
    latest = store.latest_completed_run(tenant, ALL)
    assert latest is not None and latest.id == second and latest.status is RunStatus.PARTIAL
    assert [r.id for r in store.runs(tenant, ALL)] == [running, second, first]
    assert [r.id for r in store.runs(tenant)] == [running, other, second, first]
    assert [r.id for r in store.runs(tenant, limit=1)] == [running]
    assert store.latest_completed_run(tenant, selection_hash("never")) is None
    with pytest.raises(UnknownRunError):
        store.get_run(tenant, 10_000)
