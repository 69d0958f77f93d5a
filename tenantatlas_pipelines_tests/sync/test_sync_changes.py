"""Changes through real syncs against the simulator: every kind, the counts, and the guardrail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sync_support import ALL, SECRET_A, tenant_scenario

from tenantatlas_pipelines.db.schema import TABLES
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.simulator import app as simulator_app
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind, Scenario
from tenantatlas_pipelines.sync.changes import record_changes

PAYLOAD_CANARY = "payload-canary-7c1d9e"  # a payload value: must be stored nowhere


def _sim(generation: int, *faults: Fault) -> GraphSimulator:
    tenant = tenant_scenario(faults=list(faults), edited_per_generation=0.2)
    return GraphSimulator(Scenario(seed=7, tenants=[tenant]), generation=generation)


def _kinds(result: Any) -> dict[str, int]:
    return result.counts()  # type: ignore[no-any-return]


def test_real_syncs_record_every_kind_of_change_and_count_new_changed_unchanged(
    store: InventoryStore, make_syncer: Callable[..., Any]
) -> None:
    first = make_syncer(_sim(1))()
    assert first.outcome.items_new == first.outcome.items_observed > 0
    assert record_changes(store, "a", "all", ALL).events == []  # the baseline

    second = make_syncer(_sim(2))()
    outcome = second.outcome
    assert outcome.items_new > 0 and outcome.items_changed > 0 and outcome.items_unchanged > 0
    assert outcome.items_new + outcome.items_changed + outcome.items_unchanged == outcome.items_observed
    run = store.get_run(store.tenant_pk("a"), second.run_id)
    assert sum(r["changed"] for r in run.type_results.values()) == outcome.items_changed
    kinds = _kinds(record_changes(store, "a", "all", ALL))
    assert kinds["appeared"] == outcome.items_new
    assert kinds["changed"] == outcome.items_changed
    assert kinds["disappeared"] > 0 and kinds["reappeared"] == 0

    # device configurations forbidden: they disappear with low confidence, then come back
    forbidden = Fault(kind=FaultKind.FORBIDDEN, policy_type="deviceConfiguration")
    make_syncer(_sim(2, forbidden))()
    gone = record_changes(store, "a", "all", ALL)
    dc_gone = [e for e in gone.events if e.kind == "disappeared"]
    assert dc_gone and {(e.policy_type, e.confidence) for e in dc_gone} == {("deviceConfiguration", "low")}
    make_syncer(_sim(2))()
    back = record_changes(store, "a", "all", ALL)
    assert _kinds(back) == {"appeared": 0, "changed": 0, "disappeared": 0, "reappeared": len(dc_gone)}


def _every_stored_value(store: InventoryStore) -> str:
    with store.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in TABLES for row in conn.execute(text(f"SELECT * FROM {table.name}"))
        )


def test_no_payload_and_no_secret_reaches_the_catalog_or_the_history(
    store: InventoryStore, make_syncer: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = simulator_app.render_item

    def planted(*args: Any, **kwargs: Any) -> str:
        # every item carries the tenant's client secret in its name and description, and a
        # payload value in its description: only the fingerprint of the payload may be stored
        item = real(*args, **kwargs)
        item = item.replace('"displayName":"', f'"displayName":"{SECRET_A} ', 1)
        return item.replace('"description":"', f'"description":"{PAYLOAD_CANARY} {SECRET_A} ', 1)

    monkeypatch.setattr(simulator_app, "render_item", planted)
    make_syncer(_sim(1))()
    record_changes(store, "a", "all", ALL)
    make_syncer(_sim(2))()
    result = record_changes(store, "a", "all", ALL)
    assert result.counts()["changed"] > 0 and result.counts()["appeared"] > 0

    stored = _every_stored_value(store)
    assert "[REDACTED]" in stored  # the planted names were stored, redacted
    assert SECRET_A not in stored
    assert PAYLOAD_CANARY not in stored
    with store.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT content_hash FROM inventory_items"))]
    assert hashes and all(h is not None and len(h) == 64 for h in hashes)
