"""The registry sensor, the nightly sweep, the freshness sensor and the run-failure sensors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from tenantatlas_pipelines.defs.checks import freshness_evaluation, freshness_window
from tenantatlas_pipelines.defs.keys import SYNCED_ASSETS
from tenantatlas_pipelines.defs.partitions import (
    backfill_request,
    partition_key,
    selection_partitions,
    tenant_partitions,
)
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.registry import Registry
from tenantatlas_pipelines.sync.health import assess_freshness
from tenantatlas_pipelines.sync.tenants import tenant_records

SWEEP_HOUR_UTC = 2  # the nightly sweep starts at the first evaluation after 02:00 UTC
FRESHNESS_INTERVAL_SECONDS = 3600


@dg.sensor(
    minimum_interval_seconds=60,
    asset_selection=list(SYNCED_ASSETS),  # the assets its backfills target (the daemon requires it)
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reads the registry, mirrors `tenants`, adds and removes the tenant and selection "
        "partitions, and launches one batched backfill syncing every new partition of an "
        "enabled tenant."
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

    new_keys = [
        str(partition_key(tenant, selection))
        for tenant in sorted(reg.enabled_tenants())
        for selection in sorted(want_selections)
        if tenant not in have_tenants or selection not in have_selections
    ]
    if not requests and not new_keys:
        return dg.SensorResult(
            skip_reason=(
                f"registry unchanged: {len(want_tenants)} tenants "
                f"({len(reg.enabled_tenants())} enabled), {len(want_selections)} selections"
            )
        )
    run_requests = [backfill_request(new_keys, "first-sync")] if new_keys else []
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests)


def latest_sweep_tick(now: datetime) -> datetime:
    """The latest 02:00 UTC at or before ``now``."""
    today = now.astimezone(UTC).replace(hour=SWEEP_HOUR_UTC, minute=0, second=0, microsecond=0)
    return today if today <= now else today - timedelta(days=1)


@dg.sensor(
    minimum_interval_seconds=300,
    asset_selection=list(SYNCED_ASSETS),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "The nightly sweep: once a day after 02:00 UTC, one backfill of every enabled tenant x "
        "selection (the three inventory assets), run in batches of TENANTATLAS_BATCH_SIZE partitions. Starts "
        "stopped; the first sweep is the next 02:00 UTC after it is turned on."
    ),
)
def inventory_nightly_sweep(
    context: dg.SensorEvaluationContext, registry: RegistryResource
) -> dg.SensorResult:
    tick = latest_sweep_tick(datetime.now(UTC))
    if context.cursor is None:
        return dg.SensorResult(
            cursor=tick.isoformat(), skip_reason="turned on: the first sweep is the next 02:00 UTC"
        )
    if context.cursor >= tick.isoformat():
        return dg.SensorResult(skip_reason=f"swept at {context.cursor}; next sweep after 02:00 UTC")
    keys = [str(partition_key(t, s)) for t, s in enabled_partitions(context.instance, registry.load())]
    if not keys:
        return dg.SensorResult(
            cursor=tick.isoformat(),
            skip_reason="no enabled tenant partitions yet (the registry sensor adds them)",
        )
    return dg.SensorResult(run_requests=[backfill_request(keys, "nightly-sweep")], cursor=tick.isoformat())


def enabled_partitions(instance: dg.DagsterInstance, reg: Registry) -> list[tuple[str, str]]:
    """(tenant, selection) of every registered partition of an enabled tenant and a current selection."""
    tenants = set(instance.get_dynamic_partitions(tenant_partitions.name or "tenants"))
    selections = set(instance.get_dynamic_partitions(selection_partitions.name or "selections"))
    return [
        (tenant, selection)
        for tenant in sorted(set(reg.enabled_tenants()) & tenants)
        for selection in sorted(set(reg.selections) & selections)
    ]


@dg.sensor(
    minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Judges inventory_fresh for every partition on its own clock (hourly): a partition "
        "without a successful or partial sync within the window turns red, also when its "
        "syncs keep failing or it never ran. Reports only the partitions whose state changed."
    ),
)
def inventory_freshness_sensor(
    context: dg.SensorEvaluationContext, database: InventoryDatabase, registry: RegistryResource
) -> dg.SensorResult:
    reg = registry.load()
    store = database.store()
    window = freshness_window()
    now = store.now()
    finished = store.latest_finish_times()
    hashes = {key: reg.selection(key).hash() for key in reg.selections}
    reported_stale = set(context.cursor.split("\n")) if context.cursor else set()
    stale: set[str] = set()
    events: list[dg.AssetCheckEvaluation] = []
    for tenant, selection in enabled_partitions(context.instance, reg):
        key = str(partition_key(tenant, selection))
        freshness = assess_freshness(finished.get((tenant, hashes[selection])), now, window)
        if not freshness.fresh:
            stale.add(key)
        if freshness.fresh == (key in reported_stale):  # the state changed since the last report
            events.append(freshness_evaluation(key, freshness))
    if not events:
        return dg.SensorResult(
            skip_reason=f"no change: {len(stale)} stale partitions", cursor="\n".join(sorted(stale))
        )
    return dg.SensorResult(asset_events=events, cursor="\n".join(sorted(stale)))


def _mark_sync_failed(context: dg.RunStatusSensorContext, database: InventoryDatabase, why: str) -> None:
    changed = database.store().mark_run_failed(
        dagster_run_id=context.dagster_run.run_id,
        code=ErrorCode.RUN_ABANDONED,
        message=f"Dagster run {context.dagster_run.run_id} {why} before the sync finished",
    )
    if changed:
        context.log.info(f"marked {changed} sync run(s) of Dagster run {context.dagster_run.run_id} failed")


# no monitored_jobs: every job of this code location, the implicit asset job of the asset
# page's Materialize button and of backfills included (a sync can run in any of them)
@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the running sync runs of a failed Dagster run failed (run_abandoned), any job.",
)
def sync_run_failure_sensor(context: dg.RunFailureSensorContext, database: InventoryDatabase) -> None:
    _mark_sync_failed(context, database, "failed")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the running sync runs of a terminated Dagster run failed (run_abandoned), any job.",
)
def sync_run_canceled_sensor(context: dg.RunStatusSensorContext, database: InventoryDatabase) -> None:
    _mark_sync_failed(context, database, "was terminated")


__all__ = [
    "inventory_freshness_sensor",
    "inventory_nightly_sweep",
    "registry_sensor",
    "sync_run_canceled_sensor",
    "sync_run_failure_sensor",
]
