"""Overlapping syncs of two selections of one tenant: the missing set stays right."""

from __future__ import annotations

import threading
from typing import Any

from rel_support import (
    OTHER_SELECTION,
    TENANT_A,
    FaultySimulator,
    Rule,
    path_of,
    service,
    simulator,
    sync,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_items, inventory_missing_items
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus
from tenantatlas_pipelines.sync.missing import derive_missing
from tenantatlas_pipelines.sync.service import SyncResult

COMPLIANCE = "deviceCompliancePolicy"


def test_a_long_all_run_writing_after_a_short_compliance_run_leaves_nothing_missing(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    sim = simulator()
    inner: list[SyncResult] = []

    def compliance_sync_meanwhile(items: list[Any]) -> list[Any]:
        # the `all` run has started and is reading its first compliance page: a whole
        # `compliance` sync of the same tenant starts and finishes now (its own thread and loop)
        worker = threading.Thread(
            target=lambda: inner.append(
                sync(service(store, sim), selection_key="compliance", selection=OTHER_SELECTION)
            )
        )
        worker.start()
        worker.join(timeout=60)
        return items

    faulty = FaultySimulator(
        sim, Rule(path_of(COMPLIANCE), "items", count=1, rewrite=compliance_sync_meanwhile)
    )
    everything = sync(service(store, faulty))  # selection `rel`: four types, compliance among them
    assert len(inner) == 1, "the compliance sync did not run inside the all run"
    compliance = inner[0]
    assert (everything.status, compliance.status) == (RunStatus.SUCCESS, RunStatus.SUCCESS)

    tenant_pk = store.tenant_pk("a")
    all_run = store.get_run(tenant_pk, everything.run_id)
    compliance_run = store.get_run(tenant_pk, compliance.run_id)
    assert all_run.started_at < compliance_run.started_at
    assert compliance_run.finished_at is not None and all_run.finished_at is not None
    assert compliance_run.finished_at < all_run.finished_at  # the all run wrote last

    result = derive_missing(store, "a", "compliance", OTHER_SELECTION)
    assert result.reference_run is not None and result.reference_run.id == compliance.run_id
    assert result.confidence is Confidence.HIGH
    assert [(r.policy_type, r.external_id) for r in result.rows] == []
    with engine.connect() as conn:
        stored_missing = conn.execute(select(inventory_missing_items.c.external_id)).all()
        rows = conn.execute(
            select(
                inventory_items.c.external_id,
                inventory_items.c.last_seen_at,
                inventory_items.c.last_seen_run_id,
            ).where(inventory_items.c.tenant_id == tenant_pk, inventory_items.c.policy_type == COMPLIANCE)
        ).all()
    assert stored_missing == []
    assert {r.external_id for r in rows} == sim.expected_item_ids(TENANT_A, COMPLIANCE)
    for row in rows:
        assert row.last_seen_run_id == compliance.run_id
        assert row.last_seen_at >= compliance_run.started_at
