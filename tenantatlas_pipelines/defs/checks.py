"""Per-partition asset checks on inventory_items: the last sync's grade and freshness.

Both are declared on the inventory multi-asset (``CHECK_SPECS``) and evaluated per
partition inside each (batched) run, right after the partition's sync. Freshness is also
judged on its own clock by ``inventory_freshness_sensor`` (defs/sensors.py), so a
partition whose syncs keep failing, or that never ran, turns red without any run.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

import dagster as dg

from tenantatlas_pipelines.defs.keys import ITEMS_KEY
from tenantatlas_pipelines.defs.metadata import text, timestamp
from tenantatlas_pipelines.defs.partitions import inventory_partitions
from tenantatlas_pipelines.inventory.settings import positive_setting
from tenantatlas_pipelines.sync.health import DEFAULT_FRESHNESS_WINDOW_HOURS, Freshness, Grade, Severity

# partitioned asset checks are a Dagster preview feature, used on purpose (one check per partition)
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)

LAST_SYNC_SUCCEEDED = "last_sync_succeeded"
INVENTORY_FRESH = "inventory_fresh"
FRESHNESS_WINDOW_ENV = "TENANTATLAS_FRESHNESS_WINDOW_HOURS"

CHECK_SPECS = [
    dg.AssetCheckSpec(
        LAST_SYNC_SUCCEEDED,
        asset=ITEMS_KEY,
        partitions_def=inventory_partitions,
        description="The latest completed sync succeeded (WARN when partial, ERROR when failed).",
    ),
    dg.AssetCheckSpec(
        INVENTORY_FRESH,
        asset=ITEMS_KEY,
        partitions_def=inventory_partitions,
        description=(
            "A successful or partial sync finished within the freshness window "
            f"({FRESHNESS_WINDOW_ENV}, {DEFAULT_FRESHNESS_WINDOW_HOURS:g} h by default); "
            "also judged hourly by inventory_freshness_sensor."
        ),
    ),
]

_SEVERITY = {Severity.WARN: dg.AssetCheckSeverity.WARN, Severity.ERROR: dg.AssetCheckSeverity.ERROR}


def freshness_window() -> timedelta:
    return timedelta(hours=positive_setting(FRESHNESS_WINDOW_ENV, DEFAULT_FRESHNESS_WINDOW_HOURS, "hours"))


def last_sync_evaluation(partition: str, grade: Grade) -> dg.AssetCheckEvaluation:
    metadata: dict[str, Any] = {}
    if grade.run is not None:
        metadata = {
            "sync_run_id": text(grade.run.id),
            "status": text(grade.run.status),
            "error_codes": text(", ".join(grade.run.error_codes or []) or "none"),
            "finished_at": timestamp(grade.run.finished_at),
        }
    return dg.AssetCheckEvaluation(
        asset_key=ITEMS_KEY,
        check_name=LAST_SYNC_SUCCEEDED,
        passed=grade.passed,
        severity=_SEVERITY[grade.severity],
        description=grade.description,
        metadata=metadata,
        partition=partition,
    )


def freshness_evaluation(partition: str, freshness: Freshness) -> dg.AssetCheckEvaluation:
    metadata: dict[str, Any] = {"last_usable_sync_finished_at": timestamp(freshness.last_usable_at)}
    if freshness.age_hours is not None:
        metadata["age_hours"] = dg.MetadataValue.float(round(freshness.age_hours, 2))
    return dg.AssetCheckEvaluation(
        asset_key=ITEMS_KEY,
        check_name=INVENTORY_FRESH,
        passed=freshness.fresh,
        severity=dg.AssetCheckSeverity.ERROR,
        description=freshness.description,
        metadata=metadata,
        partition=partition,
    )
