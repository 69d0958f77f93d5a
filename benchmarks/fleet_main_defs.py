"""The project's code location as the fleet benchmark loads it: ``tenantatlas_pipelines.definitions``,
with one repair the daemon needs, applied only while the project lacks it.

A sensor that returns ``RunRequest.for_asset_graph_subset`` (``backfill_request``: the nightly
sweep and the registry sensor's first syncs) must declare an ``asset_selection``: without one
the daemon's tick fails with "Can only yield RunRequests with asset_graph_subset for sensors
with an asset_selection" and no backfill is launched (seen on this project's sensors on
1 Dec 2026, Dagster 1.13). Here those two sensors get ``asset_selection`` = both inventory
assets when they have none; everything else is the project's, unchanged. Once
defs/sensors.py declares it, this module is the project's definitions as they are.
"""

import dagster as dg

from tenantatlas_pipelines.definitions import defs as project_defs
from tenantatlas_pipelines.defs.partitions import SYNCED_ASSETS

BACKFILL_SENSORS = ("inventory_nightly_sweep", "registry_sensor")


def _with_asset_selection(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
    if sensor.name not in BACKFILL_SENSORS or sensor.asset_selection is not None:
        return sensor
    return dg.SensorDefinition.dagster_internal_init(
        name=sensor.name,
        evaluation_fn=sensor._raw_fn,
        minimum_interval_seconds=sensor.minimum_interval_seconds,
        description=sensor.description,
        job_name=None,
        jobs=None,
        job=None,
        default_status=sensor.default_status,
        asset_selection=list(SYNCED_ASSETS),
        required_resource_keys=sensor._raw_required_resource_keys,
        tags=sensor.tags,
        metadata=sensor.metadata,
        target=None,
        owners=sensor.owners,
    )


REPAIRED = [
    s.name
    for s in project_defs.sensors or []
    if isinstance(s, dg.SensorDefinition) and s.name in BACKFILL_SENSORS and s.asset_selection is None
]

defs = dg.Definitions(
    assets=project_defs.assets,
    asset_checks=project_defs.asset_checks,
    jobs=project_defs.jobs,
    schedules=project_defs.schedules,
    sensors=[
        _with_asset_selection(s) if isinstance(s, dg.SensorDefinition) else s
        for s in project_defs.sensors or []
    ],
    resources=project_defs.resources,
    executor=project_defs.executor,
    loggers=project_defs.loggers,
)
