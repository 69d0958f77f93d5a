"""The tenant x selection dynamic multi-partitions (string form ``<selection>|<tenant>``)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from tenantatlas_pipelines.defs.keys import SYNCED_ASSETS

TRIGGER_TAG = "tenantatlas/trigger"

tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")
selection_partitions = dg.DynamicPartitionsDefinition(name="selections")
inventory_partitions = dg.MultiPartitionsDefinition(
    {"tenant": tenant_partitions, "selection": selection_partitions}
)


def partition_key(tenant: str, selection: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"tenant": tenant, "selection": selection})


def partition_dimensions(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(tenant, selection) of a partition key, read through keys_by_dimension."""
    if not isinstance(key, dg.MultiPartitionKey):
        key = inventory_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return dims["tenant"], dims["selection"]


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """Apply a sensor result's dynamic-partition requests (what the daemon does after a tick)."""
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def backfill_request(keys: Sequence[str], trigger: str) -> dg.RunRequest:
    """A sensor's request for one backfill of the inventory assets over ``keys``.

    The sensor daemon turns it into a backfill, which runs the partitions in batches of
    the assets' ``BackfillPolicy`` (``TENANTATLAS_BATCH_SIZE``), like the UI's backfills.
    ``RunRequest.for_asset_graph_subset`` and ``AssetGraphSubset`` are Dagster's own (not
    yet public) way to do it.
    """
    subset = inventory_partitions.empty_subset().with_partition_keys(keys)
    graph_subset = AssetGraphSubset(dict.fromkeys(SYNCED_ASSETS, subset), set())  # type: ignore[call-arg]
    return dg.RunRequest.for_asset_graph_subset(graph_subset, tags={TRIGGER_TAG: trigger})
