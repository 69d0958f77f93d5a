"""The single Definitions object of the code location ``tenantatlas_pipelines``."""

from __future__ import annotations

import dagster as dg

from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.jobs import inventory_sync_job
from tenantatlas_pipelines.defs.resources import default_resources
from tenantatlas_pipelines.defs.sensors import (
    inventory_freshness_sensor,
    inventory_nightly_sweep,
    registry_sensor,
    sync_run_canceled_sensor,
    sync_run_failure_sensor,
)

defs = dg.Definitions(
    assets=[inventory_assets],
    jobs=[inventory_sync_job],
    sensors=[
        registry_sensor,
        inventory_nightly_sweep,
        inventory_freshness_sensor,
        sync_run_failure_sensor,
        sync_run_canceled_sensor,
    ],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
