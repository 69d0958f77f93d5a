"""The registry sensor and the run-failure sensors."""

import dagster as dg

from tenantatlas_pipelines.defs.jobs import inventory_sync_job
from tenantatlas_pipelines.defs.partitions import (
    partition_key,
    selection_partitions,
    tenant_partitions,
)
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.sync.tenants import tenant_records


@dg.sensor(
    job=inventory_sync_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reads the registry, mirrors `tenants`, adds and removes the tenant and selection "
        "partitions, and requests a first sync for every new partition of an enabled tenant."
    ),
)
def registry_sensor(
    context: dg.SensorEvaluationContext, database: InventoryDatabase, registry: RegistryResource
) -> dg.SensorResult:
    reg = registry.load()  # a bad registry fails the tick with the file, entry and fix; nothing changes
    database.store().mirror_tenants(tenant_records(reg))
    instance = context.instance
    have_tenants = set(instance.get_dynamic_partitions(tenant_partitions.name or "tenants"))
    have_selections = set(instance.get_dynamic_partitions(selection_partitions.name or "selections"))
    want_tenants, want_selections = set(reg.tenants), set(reg.selections)

    requests: list[dg.DynamicPartitionsRequest] = []
    if want_tenants - have_tenants:
        requests.append(tenant_partitions.build_add_request(sorted(want_tenants - have_tenants)))
    if want_selections - have_selections:
        requests.append(selection_partitions.build_add_request(sorted(want_selections - have_selections)))
    if have_tenants - want_tenants:
        requests.append(tenant_partitions.build_delete_request(sorted(have_tenants - want_tenants)))
    if have_selections - want_selections:
        requests.append(selection_partitions.build_delete_request(sorted(have_selections - want_selections)))

    run_requests = [
        dg.RunRequest(
            partition_key=str(partition_key(tenant, selection)),
            run_key=f"first-sync:{selection}|{tenant}",
            tags={"tenantatlas/trigger": "first-sync"},
        )
        for tenant in sorted(reg.enabled_tenants())
        for selection in sorted(want_selections)
        if tenant not in have_tenants or selection not in have_selections
    ]
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests)


def _mark_sync_failed(context: dg.RunStatusSensorContext, database: InventoryDatabase, why: str) -> None:
    changed = database.store().mark_run_failed(
        dagster_run_id=context.dagster_run.run_id,
        code=ErrorCode.RUN_ABANDONED,
        message=f"Dagster run {context.dagster_run.run_id} {why} before the sync finished",
    )
    if changed:
        context.log.info(f"marked {changed} sync run(s) of Dagster run {context.dagster_run.run_id} failed")


@dg.run_failure_sensor(
    monitored_jobs=[inventory_sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a sync run failed when its Dagster run fails.",
)
def sync_run_failure_sensor(context: dg.RunFailureSensorContext, database: InventoryDatabase) -> None:
    _mark_sync_failed(context, database, "failed")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[inventory_sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a sync run failed when its Dagster run is terminated.",
)
def sync_run_canceled_sensor(context: dg.RunStatusSensorContext, database: InventoryDatabase) -> None:
    _mark_sync_failed(context, database, "was terminated")
