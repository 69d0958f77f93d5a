"""Item upserts: idempotent on (tenant, policy type, external id), one statement per batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from db_support import T0, SyncDriver, make_item
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.errors import RunNotRunningError
from tenantatlas_pipelines.db.schema import inventory_items
from tenantatlas_pipelines.db.store import InventoryStore


def _items(engine: Engine, tenant_pk: int) -> dict[tuple[str, str], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(inventory_items).where(inventory_items.c.tenant_id == tenant_pk)
        ).mappings()
        return {(r["policy_type"], r["external_id"]): dict(r) for r in rows}


@contextmanager
def _item_inserts(engine: Engine) -> Iterator[list[str]]:
    """The INSERT statements into inventory_items sent while the block runs."""
    inserts: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INVENTORY_ITEMS"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield inserts
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def test_repeating_a_batch_creates_no_duplicates_and_refreshes_last_seen(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    first_run = syncs.sync(tenant, {"deviceConfiguration": ["a", "b", "c"]})
    before = _items(store.engine, tenant)
    second_run = syncs.start(tenant)
    seen_at = store.now()
    batch = [make_item("a"), make_item("b", "Renamed"), make_item("c")]
    assert store.upsert_items(tenant, second_run, "deviceConfiguration", batch, seen_at) == 3
    assert store.upsert_items(tenant, second_run, "deviceConfiguration", batch, seen_at) == 3

    after = _items(store.engine, tenant)
    assert set(after) == set(before) and len(after) == 3
    assert store.count_items(tenant) == 3
    for key, row in after.items():
        assert row["id"] == before[key]["id"]
        assert row["created_at"] == before[key]["created_at"]
        assert row["last_seen_run_id"] == second_run != first_run
        assert row["last_seen_at"] == seen_at > before[key]["last_seen_at"]
    assert after["deviceConfiguration", "b"]["display_name"] == "Renamed"


def test_updated_at_moves_only_when_an_items_content_changes(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {"deviceConfiguration": ["same", "renamed", "new_meta", "new_platform"]})
    before = _items(store.engine, tenant)
    run = syncs.start(tenant)
    renamed = make_item("renamed", "Another name")
    new_platform = make_item("new_platform")
    new_platform.platform = "macOS"
    batch = [make_item("same"), renamed, make_item("new_meta", version=2), new_platform]
    store.upsert_items(tenant, run, "deviceConfiguration", batch, store.now())

    after = _items(store.engine, tenant)
    key = "deviceConfiguration"
    assert after[key, "same"]["updated_at"] == before[key, "same"]["updated_at"]
    assert after[key, "same"]["last_seen_run_id"] == run  # seen: the missing derivation relies on it
    for changed in ("renamed", "new_meta", "new_platform"):
        assert after[key, changed]["updated_at"] > before[key, changed]["updated_at"], changed
    assert after[key, "new_meta"]["meta_jsonb"]["version"] == 2
    assert after[key, "new_platform"]["platform"] == "macOS"


def test_duplicate_ids_inside_one_batch_collapse_and_the_last_one_wins(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    batch = [make_item("a", "first"), make_item("b"), make_item("a", "last", version=7)]
    assert store.upsert_items(tenant, run, "deviceConfiguration", batch, store.now()) == 2
    rows = _items(store.engine, tenant)
    assert len(rows) == 2
    assert rows["deviceConfiguration", "a"]["display_name"] == "last"
    assert rows["deviceConfiguration", "a"]["meta_jsonb"]["version"] == 7


def test_the_same_external_id_under_two_policy_types_is_two_items(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {"deviceConfiguration": ["x"], "windowsUpdateRing": ["x"]})
    assert store.count_items(tenant) == 2
    assert store.count_items(tenant, ["windowsUpdateRing"]) == 1


def test_a_batch_is_written_with_one_insert_statement(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    with _item_inserts(store.engine) as inserts:
        batch = [make_item(f"id-{i:04d}") for i in range(1000)]
        assert store.upsert_items(tenant, run, "deviceConfiguration", batch, store.now()) == 1000
    assert len(inserts) == 1
    assert "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE" in inserts[0]
    assert store.count_items(tenant) == 1000


def test_several_policy_types_go_in_one_statement_and_each_keeps_its_own_rows(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    batches = {
        "deviceConfiguration": [make_item("x"), make_item("y")],
        "windowsUpdateRing": [make_item("x", "Ring x")],
    }
    with _item_inserts(store.engine) as inserts:
        assert store.upsert_batches(tenant, run, batches, store.now()) == 3
    assert len(inserts) == 1
    rows = _items(store.engine, tenant)
    dc, ring = "deviceConfiguration", "windowsUpdateRing"
    assert set(rows) == {(dc, "x"), (dc, "y"), (ring, "x")}
    assert rows["windowsUpdateRing", "x"]["display_name"] == "Ring x"
    assert store.upsert_batches(tenant, run, {"deviceConfiguration": []}, store.now()) == 0


def test_text_nulls_and_large_numbers_survive_the_batch_document(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    quoted = make_item('q"uote\\d', 'Zürich \u2013 "quoted" \\ back\tslash \U0001f600')
    nameless = make_item("nameless")
    nameless.display_name = None
    nameless.platform = None
    huge = make_item("huge", version=2**70, flags=[True, False], nested={"k": [1, "two"]})
    store.upsert_items(tenant, run, "deviceConfiguration", [quoted, nameless, huge], store.now())
    rows = _items(store.engine, tenant)
    assert rows["deviceConfiguration", 'q"uote\\d']["display_name"] == quoted.display_name
    assert rows["deviceConfiguration", "nameless"]["display_name"] is None
    assert rows["deviceConfiguration", "nameless"]["platform"] is None
    assert rows["deviceConfiguration", "huge"]["meta_jsonb"] == huge.meta


def test_meta_jsonb_and_timestamps_round_trip_as_json_and_aware_utc(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    seen_at = datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=2)))  # 08:30 UTC
    item = make_item("a", role_scope_tag_ids=["0", "7"], is_assigned=True)
    store.upsert_items(tenant, run, "deviceConfiguration", [item], seen_at)
    row = _items(store.engine, tenant)["deviceConfiguration", "a"]
    assert row["meta_jsonb"] == item.meta
    assert row["last_seen_at"] == seen_at
    assert row["last_seen_at"].utcoffset() == timedelta(0)
    assert row["last_seen_at"].isoformat() == "2026-01-05T08:30:00+00:00"
    with store.engine.connect() as conn:
        # stored as JSON the database understands, not as an opaque string
        expr = (
            "meta_jsonb->>'odata_type'"
            if store.engine.dialect.name == "postgresql"
            else ("json_extract(meta_jsonb, '$.odata_type')")
        )
        odata = conn.execute(text(f"SELECT {expr} FROM inventory_items")).scalar_one()
    assert odata == "#microsoft.graph.windows10GeneralConfiguration"


def test_naive_seen_at_is_refused(store: InventoryStore, syncs: SyncDriver, tenant_factory: Any) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    with pytest.raises(ValueError, match="naive datetime"):
        store.upsert_items(tenant, run, "deviceConfiguration", [make_item("a")], T0.replace(tzinfo=None))
    assert store.count_items(tenant) == 0


def test_a_finished_run_can_no_longer_upsert(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.sync(tenant, {"deviceConfiguration": ["a"]})
    with pytest.raises(RunNotRunningError, match=f"sync run {run} is success"):
        store.upsert_items(tenant, run, "deviceConfiguration", [make_item("b")], store.now())
    assert store.count_items(tenant) == 1


def test_an_empty_batch_writes_nothing(store: InventoryStore, syncs: SyncDriver, tenant_factory: Any) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    assert store.upsert_items(tenant, run, "deviceConfiguration", [], store.now()) == 0
    assert store.count_items(tenant) == 0


def test_items_created_since_a_run_started_are_counted_as_new(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {"deviceConfiguration": ["a", "b"]})
    second = syncs.sync(tenant, {"deviceConfiguration": ["a", "b", "c"], "mobileApp": ["m"]})
    started = store.get_run(tenant, second).started_at
    assert store.count_items_created_since(tenant, started) == 2
    assert store.count_items_created_since(tenant, started, ["deviceConfiguration"]) == 1
