"""The tenant x selection dynamic multi-partitions (string form ``<selection>|<tenant>``)."""

from __future__ import annotations

import dagster as dg

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
