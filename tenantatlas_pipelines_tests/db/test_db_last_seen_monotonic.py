"""Monotonic last_seen (contract section 4): overlapping runs of two selections never move it back."""

from __future__ import annotations

from typing import Any

from db_support import SyncDriver, make_item, selection_hash
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_items
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import Confidence

COMPLIANCE = "deviceCompliancePolicy"
CONFIGURATION = "deviceConfiguration"


def _rows(engine: Engine, tenant_pk: int) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inventory_items).where(inventory_items.c.tenant_id == tenant_pk))
        return {r.external_id: dict(r._mapping) for r in rows}


def test_a_longer_run_writing_last_never_moves_last_seen_back_so_nothing_goes_missing(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any, engine: Engine
) -> None:
    tenant = tenant_factory()
    ids = ["c1", "c2", "c3"]
    # `all` starts first (its seen_at is its start), `compliance` starts later and finishes first
    everything = syncs.start(tenant, "all")
    all_seen = store.get_run(tenant, everything).started_at
    compliance = syncs.start(tenant, "compliance")
    compliance_seen = store.get_run(tenant, compliance).started_at
    assert compliance_seen > all_seen
    store.upsert_items(tenant, compliance, COMPLIANCE, [make_item(i) for i in ids], compliance_seen)
    store.finish_run(tenant, compliance, syncs.outcome({COMPLIANCE: ids}))
    # ... then the long `all` run writes the same items, with its earlier time
    store.upsert_items(tenant, everything, COMPLIANCE, [make_item(i, "Renamed") for i in ids], all_seen)
    store.upsert_items(tenant, everything, CONFIGURATION, [make_item("d1")], all_seen)
    store.finish_run(tenant, everything, syncs.outcome({COMPLIANCE: ids, CONFIGURATION: ["d1"]}))

    missing = store.derive_missing(tenant, "compliance", selection_hash("compliance"), [COMPLIANCE])
    assert missing.reference_run is not None and missing.reference_run.id == compliance
    assert missing.confidence is Confidence.HIGH
    assert missing.rows == []
    rows = _rows(engine, tenant)
    for external_id in ids:
        assert rows[external_id]["last_seen_at"] == compliance_seen  # the later time is kept
        assert rows[external_id]["last_seen_run_id"] == compliance  # it did not move forward
        assert rows[external_id]["display_name"] == "Renamed"  # content: the last writer, as before
    assert rows["d1"]["last_seen_run_id"] == everything

    missing_all = store.derive_missing(tenant, "all", selection_hash("all"), [COMPLIANCE, CONFIGURATION])
    assert missing_all.reference_run is not None and missing_all.reference_run.id == everything
    assert missing_all.rows == []


def test_last_seen_run_id_follows_only_a_strictly_later_last_seen(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any, engine: Engine
) -> None:
    tenant = tenant_factory()
    first = syncs.start(tenant, "all")
    second = syncs.start(tenant, "compliance")
    at = store.now()
    store.upsert_items(tenant, first, COMPLIANCE, [make_item("x")], at)
    store.upsert_items(tenant, second, COMPLIANCE, [make_item("x")], at)  # the same time: no move
    assert _rows(engine, tenant)["x"]["last_seen_run_id"] == first
    later = store.now()
    store.upsert_items(tenant, second, COMPLIANCE, [make_item("x")], later)  # later: it moves
    row = _rows(engine, tenant)["x"]
    assert (row["last_seen_run_id"], row["last_seen_at"]) == (second, later)
    store.upsert_items(tenant, first, COMPLIANCE, [make_item("x")], at)  # earlier: nothing moves
    row = _rows(engine, tenant)["x"]
    assert (row["last_seen_run_id"], row["last_seen_at"]) == (second, later)
