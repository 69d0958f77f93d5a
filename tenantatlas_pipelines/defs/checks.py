"""Per-partition asset checks on inventory_items: the last sync's status and freshness."""

import warnings
from datetime import timedelta

import dagster as dg

from tenantatlas_pipelines.defs.assets import inventory_items
from tenantatlas_pipelines.defs.partitions import inventory_partitions, partition_dimensions
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.sync.missing import latest_completed_run

# partitioned asset checks are a Dagster preview feature, used on purpose (one check per partition)
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)

_SEVERITY = {
    RunStatus.SUCCESS: dg.AssetCheckSeverity.WARN,  # unused: success passes
    RunStatus.PARTIAL: dg.AssetCheckSeverity.WARN,
    RunStatus.FAILED: dg.AssetCheckSeverity.ERROR,
}


class FreshnessConfig(dg.Config):  # type: ignore[misc]
    window_hours: float = 26.0


@dg.asset_check(
    asset=inventory_items,
    partitions_def=inventory_partitions,
    description="The latest completed sync succeeded (WARN when partial, ERROR when failed).",
)
def last_sync_succeeded(
    context: dg.AssetCheckExecutionContext, database: InventoryDatabase, registry: RegistryResource
) -> dg.AssetCheckResult:
    tenant_key, selection_key = partition_dimensions(context.partition_key)
    store = database.store()
    run = latest_completed_run(store, tenant_key, registry.load().selection(selection_key))
    if run is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no completed sync run for this tenant and selection yet",
        )
    return dg.AssetCheckResult(
        passed=run.status is RunStatus.SUCCESS,
        severity=_SEVERITY[run.status],
        description=f"sync run {run.id} finished {run.status}",
        metadata={
            "sync_run_id": run.id,
            "status": str(run.status),
            "error_codes": dg.MetadataValue.json(list(run.error_codes or [])),
        },
    )


@dg.asset_check(
    asset=inventory_items,
    partitions_def=inventory_partitions,
    description="A completed sync finished within the freshness window (default 26 hours).",
)
def inventory_fresh(
    context: dg.AssetCheckExecutionContext,
    config: FreshnessConfig,
    database: InventoryDatabase,
    registry: RegistryResource,
) -> dg.AssetCheckResult:
    tenant_key, selection_key = partition_dimensions(context.partition_key)
    store = database.store()
    run = latest_completed_run(store, tenant_key, registry.load().selection(selection_key))
    window = timedelta(hours=config.window_hours)
    if run is None or run.finished_at is None:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, description="never synced"
        )
    age = store.now() - run.finished_at
    age_hours = age.total_seconds() / 3600
    return dg.AssetCheckResult(
        passed=age <= window,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"last completed sync {age_hours:.1f} h ago (window {config.window_hours} h)",
        metadata={"age_hours": round(age_hours, 3), "sync_run_id": run.id},
    )
