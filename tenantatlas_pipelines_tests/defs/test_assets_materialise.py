from __future__ import annotations

import multiprocessing
import os
from typing import Any

import dagster as dg
import pytest
from batch_support import run_one as _materialise

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.keys import ITEMS_KEY
from tenantatlas_pipelines.defs.partitions import partition_key
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY
from tenantatlas_pipelines.registry import load_registry


def _register(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions("tenants", ["contoso", "fabrikam", "northwind"])
    instance.add_dynamic_partitions("selections", ["all", "compliance"])


def _selection(key: str) -> Selection:
    return load_registry(DEMO_REGISTRY).selection(key)


def test_materialising_a_partition_syncs_and_derives_missing(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    _register(instance)
    key = str(partition_key("contoso", "compliance"))
    assert key == "compliance|contoso"
    result = _materialise(instance, resources, key)
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    items_meta = mats["inventory_items"].materialization.metadata
    assert items_meta["status"].value == "success"
    assert items_meta["items_observed"].value > 0
    assert items_meta["selection_hash"].value == _selection("compliance").hash()
    assert {row.data["policy_type"] for row in items_meta["per_policy_type"].value.records} == set(
        _selection("compliance").resolve()
    )
    missing_meta = mats["inventory_missing_items"].materialization.metadata
    assert missing_meta["missing_count"].value == 0
    assert missing_meta["confidence"].value == "high"
    run = store.latest_completed_run(store.tenant_pk("contoso"), _selection("compliance").hash())
    assert run is not None and run.status is RunStatus.SUCCESS and run.dagster_run_id == result.run_id
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["last_sync_succeeded"].passed and checks["inventory_fresh"].passed


def test_a_forbidden_type_warns_on_the_last_sync_check(instance: dg.DagsterInstance, resources: dict) -> None:
    _register(instance)
    result = _materialise(instance, resources, str(partition_key("fabrikam", "all")))
    assert result.success
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["last_sync_succeeded"]
    assert not check.passed
    assert check.severity is dg.AssetCheckSeverity.WARN
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    assert mats["inventory_items"].materialization.metadata["status"].value == "partial"
    assert "graph_forbidden" in mats["inventory_items"].materialization.metadata["error_codes"].value


def test_a_failed_sync_errors_on_the_last_sync_check(
    instance: dg.DagsterInstance, resources: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(instance)
    monkeypatch.setenv("CONTOSO_GRAPH_SECRET", "not-the-right-secret")
    result = _materialise(instance, resources, str(partition_key("contoso", "compliance")))
    assert not result.success  # a failed sync is a failed run and partition, not a green materialisation
    # what the instance recorded (a failed step's logged events are not in the in-process result)
    logged = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event]
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in logged
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    check = checks["last_sync_succeeded"]
    assert not check.passed
    assert check.severity is dg.AssetCheckSeverity.ERROR
    materialised = {e.asset_key.to_user_string() for e in logged if e.is_step_materialization and e.asset_key}
    # the missing set is derived from the failed reference (low confidence), then the history
    assert materialised == {"inventory_missing_items", "inventory_changes"}


def _materialise_in_child(
    instance_ref: object, db_url: str, key: str, env: dict[str, str], barrier: Any, out: Any
) -> None:
    """A separate process (Dagster's in-process runs are not thread-safe): wait, then materialise."""
    import os

    os.environ.update(env)
    from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource

    with dg.DagsterInstance.from_ref(instance_ref) as instance:  # type: ignore[arg-type]
        resources = {
            "database": InventoryDatabase(url=db_url),
            "registry": RegistryResource(path=str(DEMO_REGISTRY)),
        }
        barrier.wait(timeout=60)
        result = dg.materialize(
            [inventory_assets],
            selection=["inventory_items"],
            partition_key=key,
            instance=instance,
            resources=resources,
        )
        items = [e for e in result.get_asset_materialization_events() if e.asset_key == ITEMS_KEY]
        out.put((result.success, len(items)))


def test_two_materialisations_of_one_partition_at_once_one_runs_one_is_skipped(
    instance: dg.DagsterInstance, db_url: str, resources: dict, store: InventoryStore
) -> None:
    _register(instance)
    key = str(partition_key("northwind", "all"))
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    env = {k: v for k, v in os.environ.items() if k.endswith("_GRAPH_SECRET") or k.startswith("TENANTATLAS_")}
    children = [
        ctx.Process(target=_materialise_in_child, args=(instance.get_ref(), db_url, key, env, barrier, out))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    outcomes = [out.get(timeout=5) for _ in children]
    assert all(success for success, _ in outcomes)
    assert sorted(materialised for _, materialised in outcomes) == [0, 1]
    runs = store.runs(store.tenant_pk("northwind"), _selection("all").hash())
    assert sorted(str(r.status) for r in runs) == ["skipped", "success"]
    skipped = next(r for r in runs if r.status is RunStatus.SKIPPED)
    assert skipped.error_codes == ["lock_contended"]


def test_metadata_shows_ids_codes_and_times_as_text_and_counts_as_numbers(
    instance: dg.DagsterInstance, resources: dict
) -> None:
    _register(instance)
    result = _materialise(instance, resources, str(partition_key("fabrikam", "all")))
    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    items, missing = mats["inventory_items"], mats["inventory_missing_items"]
    # the UI plots every int and float as a metric over time: ids and codes must not be numbers
    for meta, key in ((items, "sync_run_id"), (missing, "reference_sync_run_id")):
        assert isinstance(meta[key], dg.TextMetadataValue) and meta[key].value.isdigit()
    assert isinstance(items["error_codes"], dg.TextMetadataValue)
    assert items["error_codes"].value == "graph_forbidden"
    started = missing["reference_started_at"].value
    assert isinstance(started, str) and "." not in started and started.endswith("+00:00")
    for count in ("items_observed", "items_new", "items_changed", "items_unchanged"):
        assert isinstance(items[count], dg.IntMetadataValue), count
    assert items["items_new"].value == items["items_observed"].value  # a first sync: everything is new
    table = items["per_policy_type"].value
    assert [c.name for c in table.schema.columns][:3] == ["policy_type", "outcome", "error_code"]
