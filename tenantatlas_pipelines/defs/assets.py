"""The two partitioned assets: the catalog sync and the missing set derived from it."""

from collections.abc import Iterator

import dagster as dg

from tenantatlas_pipelines.defs.metadata import missing_metadata, sync_metadata
from tenantatlas_pipelines.defs.partitions import inventory_partitions, partition_dimensions
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.sync.graph_factory import graph_client_for
from tenantatlas_pipelines.sync.missing import derive_missing
from tenantatlas_pipelines.sync.service import SyncRequest, SyncService


@dg.asset(
    partitions_def=inventory_partitions,
    pool="msgraph",
    group_name="inventory",
    kinds={"python", "sql"},
    output_required=False,
    description=(
        "One materialisation = one sync run of a tenant and selection: list every policy type "
        "from Microsoft Graph, upsert into inventory_items, record inventory_sync_runs."
    ),
)
def inventory_items(
    context: dg.AssetExecutionContext, database: InventoryDatabase, registry: RegistryResource
) -> Iterator[dg.MaterializeResult]:
    tenant_key, selection_key = partition_dimensions(context.partition_key)
    reg = registry.load()
    request = SyncRequest(
        tenant_key=tenant_key,
        tenant=reg.tenant(tenant_key),
        selection_key=selection_key,
        selection=reg.selection(selection_key),
        dagster_run_id=context.run.run_id,
    )
    result = SyncService(database.store(), graph_client_for).run(request)
    if result.status is RunStatus.SKIPPED:
        # the lock is held by another run: record what happened, materialise nothing
        context.log.warning(
            f"sync of {selection_key}|{tenant_key} skipped: another run holds the lock "
            f"(sync run {result.run_id}, lock_contended)"
        )
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=context.partition_key,
                metadata=sync_metadata(result),
            )
        )
        return
    context.log.info(
        f"sync run {result.run_id} of {selection_key}|{tenant_key}: {result.status} "
        f"in {result.duration_seconds:.1f}s, error codes {result.error_codes or 'none'}"
    )
    yield dg.MaterializeResult(metadata=sync_metadata(result))


@dg.asset(
    partitions_def=inventory_partitions,
    deps=[inventory_items],
    group_name="inventory",
    kinds={"python", "sql"},
    description=(
        "Items not observed since the latest completed sync of the partition's selection, with a "
        "confidence grade; replaces the partition's rows in inventory_missing_items."
    ),
)
def inventory_missing_items(
    context: dg.AssetExecutionContext, database: InventoryDatabase, registry: RegistryResource
) -> dg.MaterializeResult:
    tenant_key, selection_key = partition_dimensions(context.partition_key)
    reg = registry.load()
    result = derive_missing(database.store(), tenant_key, selection_key, reg.selection(selection_key))
    return dg.MaterializeResult(metadata=missing_metadata(result))
