"""Running the inventory multi-asset in-process for one partition or a batch (a partition range)."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.partitions import inventory_partitions

ITEMS = dg.AssetKey("inventory_items")
MISSING = dg.AssetKey("inventory_missing_items")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def register(instance: dg.DagsterInstance, tenants: list[str], selections: list[str]) -> list[str]:
    instance.add_dynamic_partitions("tenants", tenants)
    instance.add_dynamic_partitions("selections", selections)
    return inventory_partitions.get_partition_keys(dynamic_partitions_store=instance)


def _materialise(instance: dg.DagsterInstance, resources: dict, **kw: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [inventory_assets],
        instance=instance,
        resources=resources,
        raise_on_error=False,
        run_config=QUIET,
        **kw,  # type: ignore[arg-type]
    )


def run_batch(
    instance: dg.DagsterInstance, resources: dict, keys: list[str], **kw: object
) -> dg.ExecuteInProcessResult:
    """One Dagster run over the contiguous partition range keys[0]..keys[-1], as a backfill batch runs."""
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    return _materialise(instance, resources, tags=tags, **kw)


def run_one(
    instance: dg.DagsterInstance, resources: dict, key: str, **kw: object
) -> dg.ExecuteInProcessResult:
    """One Dagster run of one partition, as the asset page's Materialize launches it."""
    return _materialise(instance, resources, partition_key=key, **kw)


def partition_status(instance: dg.DagsterInstance, asset: dg.AssetKey) -> tuple[set[str], set[str]]:
    """(materialised, failed) partitions of ``asset``, as the partitions grid shows them."""
    value = get_and_update_asset_status_cache_value(instance, asset, inventory_partitions)
    assert value is not None
    materialised = set(
        value.deserialize_materialized_partition_subsets(inventory_partitions).get_partition_keys()
    )
    failed = set(value.deserialize_failed_partition_subsets(inventory_partitions).get_partition_keys())
    return materialised, failed


def events_of(instance: dg.DagsterInstance, run_id: str, event_type: str) -> list[dg.EventLogEntry]:
    return [
        e
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == event_type
    ]
