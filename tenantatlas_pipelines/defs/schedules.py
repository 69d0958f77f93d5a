"""The nightly schedule: every enabled tenant for every selection.

Hand-written: the built-in partitioned-schedule helper rejects dynamic
multi-partitions.
"""

import dagster as dg

from tenantatlas_pipelines.defs.jobs import inventory_sync_job
from tenantatlas_pipelines.defs.partitions import (
    partition_key,
    selection_partitions,
    tenant_partitions,
)
from tenantatlas_pipelines.defs.resources import RegistryResource


@dg.schedule(
    job=inventory_sync_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Syncs every enabled tenant for every selection, once a day.",
)
def inventory_nightly_schedule(
    context: dg.ScheduleEvaluationContext, registry: RegistryResource
) -> list[dg.RunRequest] | dg.SkipReason:
    reg = registry.load()
    tenants = set(context.instance.get_dynamic_partitions(tenant_partitions.name or "tenants"))
    selections = set(context.instance.get_dynamic_partitions(selection_partitions.name or "selections"))
    tick = context.scheduled_execution_time.isoformat()
    requests = [
        dg.RunRequest(
            partition_key=str(partition_key(tenant, selection)),
            run_key=f"{tick}:{selection}|{tenant}",
            tags={"tenantatlas/trigger": "schedule"},
        )
        for tenant in sorted(set(reg.enabled_tenants()) & tenants)
        for selection in sorted(set(reg.selections) & selections)
    ]
    return requests or dg.SkipReason("no enabled tenant partitions yet (the registry sensor adds them)")
