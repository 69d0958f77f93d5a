"""Content fingerprints, per-run new/changed/unchanged counts and the change history (section 5b)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from db_support import FakeClock, selection_hash
from sqlalchemy import select, text, update

from tenantatlas_pipelines.db.changes import ChangeHistory
from tenantatlas_pipelines.db.json_batches import WriteCounts
from tenantatlas_pipelines.db.schema import inventory_change_events, inventory_items, inventory_sync_runs
from tenantatlas_pipelines.db.store import InventoryStore, TenantRecord
from tenantatlas_pipelines.inventory.normalize import NormalizedItem
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

DC, APP = "deviceConfiguration", "mobileApp"
SEL = selection_hash("all")


def _item(external_id: str, content: str = "v1") -> NormalizedItem:
    return NormalizedItem(
        external_id=external_id,
        display_name=f"Policy {external_id}",
        category="configuration",
        platform="windows10",
        meta={"odata_type": "#microsoft.graph.windows10GeneralConfiguration"},
        content_hash=hashlib.sha256(f"{external_id}|{content}".encode()).hexdigest(),
    )


def _tenant(store: InventoryStore, key: str = "contoso") -> int:
    return store.ensure_tenant(TenantRecord(key, f"guid-{key}", key.title(), "global"))


def _sync(
    store: InventoryStore,
    tenant: int,
    observed: Mapping[str, Mapping[str, str]],
    *,
    failed: tuple[str, ...] = (),
) -> tuple[int, RunOutcome]:
    """One whole run: ``observed`` is {type: {id: content}}; the counts come from the upsert."""
    start = store.start_run(tenant, "all", SEL, '{"name":"all"}')
    assert start.status is RunStatus.RUNNING
    results = {key: TypeResult(key, TypeOutcome.FAILED) for key in failed}
    for policy_type, items in observed.items():
        counts = WriteCounts()
        batch = {policy_type: [_item(i, c) for i, c in items.items()]}
        store.upsert_batches(tenant, start.run_id, batch, store.now(), counts=counts)
        new, changed, unchanged = counts.per_type.get(policy_type, [0, 0, 0])
        results[policy_type] = TypeResult(
            policy_type, TypeOutcome.SUCCESS, items=len(items), new=new, changed=changed, unchanged=unchanged
        )
    status = RunStatus.PARTIAL if failed else RunStatus.SUCCESS
    outcome = RunOutcome(status=status, type_results=results, had_errors=bool(failed))
    store.finish_run(tenant, start.run_id, outcome)
    return start.run_id, outcome


def _rows(store: InventoryStore, tenant: int) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(inventory_items).where(inventory_items.c.tenant_id == tenant)).mappings()
        return {row["external_id"]: dict(row) for row in rows}


def _events(store: InventoryStore) -> list[tuple[str, str, str, int, int | None, str | None]]:
    e = inventory_change_events
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                e.c.kind,
                e.c.policy_type,
                e.c.external_id,
                e.c.sync_run_id,
                e.c.previous_sync_run_id,
                e.c.confidence,
            ).order_by(e.c.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_the_upsert_counts_new_changed_and_unchanged_items_per_type_and_the_run_row_keeps_them(
    store: InventoryStore,
) -> None:
    tenant = _tenant(store)
    first, outcome = _sync(store, tenant, {DC: {"a": "v1", "b": "v1"}, APP: {"m": "v1"}})
    assert (outcome.items_new, outcome.items_changed, outcome.items_unchanged) == (3, 0, 0)
    before = _rows(store, tenant)

    second, outcome = _sync(store, tenant, {DC: {"a": "v1", "b": "v2", "c": "v1"}, APP: {"m": "v1"}})
    per_type = {k: (r.new, r.changed, r.unchanged) for k, r in outcome.type_results.items()}
    assert per_type == {DC: (1, 1, 1), APP: (0, 0, 1)}

    with store.engine.connect() as conn:
        run = (
            conn.execute(select(inventory_sync_runs).where(inventory_sync_runs.c.id == second))
            .mappings()
            .one()
        )
    assert (run["items_new_count"], run["items_changed_count"], run["items_unchanged_count"]) == (1, 1, 2)
    assert (run["type_results"][DC]["new"], run["type_results"][DC]["changed"]) == (1, 1)

    after = _rows(store, tenant)
    # the edited item: hash, content_changed_at, updated_at and the run of the change moved
    assert after["b"]["content_hash"] != before["b"]["content_hash"]
    assert after["b"]["content_changed_at"] > before["b"]["content_changed_at"]
    assert after["b"]["updated_at"] > before["b"]["updated_at"]
    assert after["b"]["content_changed_run_id"] == second and after["b"]["created_run_id"] == first
    # the unchanged one keeps them (only last_seen moves)
    for column in ("content_hash", "content_changed_at", "updated_at", "content_changed_run_id"):
        assert after["a"][column] == before["a"][column], column
    assert after["a"]["last_seen_at"] > before["a"]["last_seen_at"]
    assert after["c"]["created_run_id"] == second


def test_rows_from_before_the_migration_get_their_hash_without_counting_as_changed(
    store: InventoryStore,
) -> None:
    tenant = _tenant(store)
    _sync(store, tenant, {DC: {"a": "v1"}})
    with store.engine.begin() as conn:  # what migration 0004 leaves on an existing row
        conn.execute(update(inventory_items).values(content_hash=None, content_changed_run_id=None))
    before = _rows(store, tenant)["a"]

    _, outcome = _sync(store, tenant, {DC: {"a": "v1"}})

    assert (outcome.items_new, outcome.items_changed, outcome.items_unchanged) == (0, 0, 1)
    after = _rows(store, tenant)["a"]
    assert after["content_hash"] == _item("a", "v1").content_hash
    assert after["content_changed_at"] == before["content_changed_at"]
    assert after["updated_at"] == before["updated_at"]
    assert after["content_changed_run_id"] is None


def _history(store: InventoryStore, **kwargs: Any) -> ChangeHistory:
    return ChangeHistory(store, **kwargs)


def test_every_kind_of_change_is_recorded_once_per_run_with_both_run_ids(store: InventoryStore) -> None:
    tenant = _tenant(store)
    history = _history(store)
    types = [DC, APP]

    run1, _ = _sync(store, tenant, {DC: {"a": "v1", "b": "v1", "c": "v1"}, APP: {"m": "v1"}})
    baseline = history.record(tenant, "all", SEL, types)
    assert baseline.sync_run_id == run1 and baseline.previous_sync_run_id is None and baseline.events == []

    # b edited, c gone, d new, m unchanged
    run2, _ = _sync(store, tenant, {DC: {"a": "v1", "b": "v2", "d": "v1"}, APP: {"m": "v1"}})
    result = history.record(tenant, "all", SEL, types)
    assert result.counts() == {"appeared": 1, "changed": 1, "disappeared": 1, "reappeared": 0}
    assert _events(store) == [
        ("appeared", DC, "d", run2, run1, None),
        ("changed", DC, "b", run2, run1, None),
        ("disappeared", DC, "c", run2, run1, "high"),
    ]

    # re-materialising the same partition for the same run adds nothing
    again = history.record(tenant, "all", SEL, types)
    assert again.inserted == 0 and again.counts() == result.counts()
    assert len(_events(store)) == 3

    # c comes back; m disappears while mobileApp fails: low confidence
    run3, _ = _sync(store, tenant, {DC: {"a": "v1", "b": "v2", "c": "v1", "d": "v1"}}, failed=(APP,))
    history.record(tenant, "all", SEL, types)
    assert _events(store)[3:] == [
        ("disappeared", APP, "m", run3, run2, "low"),
        ("reappeared", DC, "c", run3, run2, None),
    ]

    # nothing happened: nothing recorded, c is not "reappeared" twice, m not "disappeared" twice
    _sync(store, tenant, {DC: {"a": "v1", "b": "v2", "c": "v1", "d": "v1"}}, failed=(APP,))
    quiet = history.record(tenant, "all", SEL, types)
    assert quiet.events == [] and len(_events(store)) == 5


def test_the_history_is_tenant_scoped_and_pruned_per_tenant_after_the_retention(
    store: InventoryStore, clock: FakeClock
) -> None:
    history = _history(store, retention=timedelta(days=1))
    tenants = [_tenant(store, "contoso"), _tenant(store, "fabrikam")]
    for tenant in tenants:
        _sync(store, tenant, {DC: {"a": "v1"}})
        history.record(tenant, "all", SEL, [DC])
        _sync(store, tenant, {DC: {"a": "v2"}})
        assert history.record(tenant, "all", SEL, [DC]).counts()["changed"] == 1
    assert [len(history.events(t)) for t in tenants] == [1, 1]

    clock.advance(2 * 86_400)
    _sync(store, tenants[0], {DC: {"a": "v3"}})
    result = history.record(tenants[0], "all", SEL, [DC])
    assert result.pruned == 1  # contoso's old event; fabrikam's is another tenant's
    assert [[e["kind"] for e in history.events(t)] for t in tenants] == [["changed"], ["changed"]]


def test_the_history_and_the_catalog_hold_no_payload_only_the_fingerprint(store: InventoryStore) -> None:
    tenant = _tenant(store)
    _sync(store, tenant, {DC: {"a": "v1"}})
    history = _history(store)
    history.record(tenant, "all", SEL, [DC])
    _sync(store, tenant, {DC: {"a": "v2", "z": "v1"}})
    history.record(tenant, "all", SEL, [DC])
    columns = {c.name for c in inventory_change_events.columns}
    assert columns == {
        "id",
        "tenant_id",
        "selection_key",
        "selection_hash",
        "kind",
        "policy_type",
        "external_id",
        "display_name",
        "sync_run_id",
        "previous_sync_run_id",
        "confidence",
        "recorded_at",
    }
    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT * FROM inventory_change_events")).all()
    assert len(raw) == 2


def test_an_item_another_selection_wrote_while_the_previous_run_ran_is_not_reported_appeared(
    store: InventoryStore,
) -> None:
    """Batched runs sync a tenant's selections concurrently: the other run's writes are not news."""
    tenant = _tenant(store)
    compliance = selection_hash("compliance")
    run_all = store.start_run(tenant, "all", SEL, "{}").run_id
    run_compliance = store.start_run(tenant, "compliance", compliance, "{}").run_id
    store.upsert_batches(tenant, run_compliance, {DC: [_item("x")]}, store.now())  # first written here
    store.upsert_batches(tenant, run_all, {DC: [_item("x"), _item("a")]}, store.now())
    for run in (run_compliance, run_all):
        store.finish_run(
            tenant, run, RunOutcome(RunStatus.SUCCESS, {DC: TypeResult(DC, TypeOutcome.SUCCESS)})
        )
    history = _history(store)
    assert history.record(tenant, "all", SEL, [DC]).events == []  # the baseline

    _sync(store, tenant, {DC: {"x": "v1", "a": "v1"}})
    assert history.record(tenant, "all", SEL, [DC]).counts() == {
        "appeared": 0,
        "changed": 0,
        "disappeared": 0,
        "reappeared": 0,
    }
