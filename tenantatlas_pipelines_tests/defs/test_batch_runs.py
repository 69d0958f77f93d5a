"""Batched runs: many partitions per Dagster run, each with its own lock, sync run, outcome and events."""

from __future__ import annotations

import dagster as dg
import pytest
from batch_support import (
    ITEMS,
    MISSING,
    events_of,
    partition_status,
    register,
    run_batch,
)

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY
from tenantatlas_pipelines.registry import load_registry

TENANTS = ["contoso", "fabrikam", "northwind"]
SELECTIONS = ["all", "compliance"]


def _runs(store: InventoryStore, tenant: str, selection: str) -> list:
    return store.runs(store.tenant_pk(tenant), load_registry(DEMO_REGISTRY).selection(selection).hash())


def test_a_batch_syncs_every_partition_in_one_run_each_with_its_own_sync_run(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    keys = register(instance, TENANTS, SELECTIONS)
    result = run_batch(instance, resources, keys)
    assert result.success
    for key in keys:
        selection, tenant = key.split("|")  # test data only; the code reads keys_by_dimension
        runs = _runs(store, tenant, selection)
        assert len(runs) == 1 and runs[0].dagster_run_id == result.run_id
        assert runs[0].status in (RunStatus.SUCCESS, RunStatus.PARTIAL)
    materialised, failed = partition_status(instance, ITEMS)
    assert materialised == set(keys) and not failed
    assert partition_status(instance, MISSING)[0] == set(keys)
    # each partition's own check results
    checks = [
        e.dagster_event.event_specific_data
        for e in events_of(instance, result.run_id, "ASSET_CHECK_EVALUATION")
    ]
    assert {(c.check_name, c.partition) for c in checks} == {
        (name, key) for name in ("last_sync_succeeded", "inventory_fresh") for key in keys
    }


def test_one_failing_partition_fails_only_itself_and_the_run_says_which(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = register(instance, TENANTS, SELECTIONS)
    monkeypatch.setenv("CONTOSO_GRAPH_SECRET", "not-the-right-secret")  # auth fails: contoso's syncs fail
    result = run_batch(instance, resources, keys)
    assert not result.success
    contoso = {k for k in keys if k.endswith("|contoso")}
    materialised, failed = partition_status(instance, ITEMS)
    assert failed == contoso
    assert materialised == set(keys) - contoso
    # the failed partitions' sync runs were recorded failed; the missing set still follows the rule
    for selection in SELECTIONS:
        (run,) = _runs(store, "contoso", selection)
        assert run.status is RunStatus.FAILED and run.finished_at is not None
        assert "auth_failed" in run.error_codes
    assert partition_status(instance, MISSING) == (set(keys), set())
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.message)  # type: ignore[union-attr]
    assert "2 of 6 partitions failed" in message and "all|contoso" in message
    assert "not-the-right-secret" not in message


def test_a_skipped_partition_is_not_materialised_and_names_the_run_holding_the_lock(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    keys = register(instance, ["northwind"], ["all"])
    selection = load_registry(DEMO_REGISTRY).selection("all")
    from tenantatlas_pipelines.sync.tenants import tenant_record

    tenant_pk = store.ensure_tenant(
        tenant_record("northwind", load_registry(DEMO_REGISTRY).tenant("northwind"))
    )
    holder = store.start_run(
        tenant_pk, "all", selection.hash(), selection.canonical_json(), dagster_run_id="other-run"
    )
    result = run_batch(instance, resources, keys)
    assert result.success  # a skip is not a failure
    assert partition_status(instance, ITEMS) == (set(), set())  # and not a materialisation
    (observation,) = events_of(instance, result.run_id, "ASSET_OBSERVATION")
    data = observation.dagster_event.event_specific_data.asset_observation  # type: ignore[union-attr]
    assert f"sync run {holder.run_id}" in (data.description or "") and "other-run" in (data.description or "")
    assert set(data.metadata) == {
        "skipped",
        "skipped_sync_run_id",
        "lock_held_by_sync_run_id",
        "lock_held_by_dagster_run_id",
    }
    assert not any(
        isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue)) for v in data.metadata.values()
    )
