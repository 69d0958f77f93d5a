"""The single Definitions object of the code location ``tenantatlas_pipelines``."""

from __future__ import annotations

import dagster as dg

from tenantatlas_pipelines.defs.assets import inventory_items, inventory_missing_items
from tenantatlas_pipelines.defs.checks import inventory_fresh, last_sync_succeeded
from tenantatlas_pipelines.defs.jobs import inventory_sync_job
from tenantatlas_pipelines.defs.resources import default_resources
from tenantatlas_pipelines.defs.schedules import inventory_nightly_schedule
from tenantatlas_pipelines.defs.sensors import (
    registry_sensor,
    sync_run_canceled_sensor,
    sync_run_failure_sensor,
)

defs = dg.Definitions(
    assets=[inventory_items, inventory_missing_items],
    asset_checks=[last_sync_succeeded, inventory_fresh],
    jobs=[inventory_sync_job],
    schedules=[inventory_nightly_schedule],
    sensors=[registry_sensor, sync_run_failure_sensor, sync_run_canceled_sensor],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
