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
