from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.partitions import apply_partition_requests, partition_dimensions
from tenantatlas_pipelines.defs.resources import RegistryResource
from tenantatlas_pipelines.defs.schedules import inventory_nightly_schedule
from tenantatlas_pipelines.defs.sensors import registry_sensor
from tenantatlas_pipelines.registry import RegistryError

TICK = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def _tick(instance: dg.DagsterInstance, resources: dict) -> dg.SensorResult:
    result = registry_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SensorResult)
    apply_partition_requests(instance, result)
    return result


def test_sensor_mirrors_tenants_adds_partitions_and_requests_first_syncs(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    first = _tick(instance, resources)
    assert set(instance.get_dynamic_partitions("tenants")) == {"contoso", "fabrikam", "northwind"}
    assert set(instance.get_dynamic_partitions("selections")) == {"all", "compliance"}
    requested = {partition_dimensions(str(r.partition_key)) for r in first.run_requests or []}
    assert requested == {(t, s) for t in ("contoso", "fabrikam", "northwind") for s in ("all", "compliance")}
    assert store.tenant_pk("contoso") > 0
    second = _tick(instance, resources)
    assert not second.run_requests and not second.dynamic_partitions_requests


def test_sensor_removes_partitions_of_tenants_gone_from_the_registry(
    instance: dg.DagsterInstance, resources: dict, registry_file: Path, store: InventoryStore
) -> None:
    resources = {**resources, "registry": RegistryResource(path=str(registry_file))}
    _tick(instance, resources)
    text = registry_file.read_text()
    registry_file.write_text(text[: text.index("  northwind:")])
    result = _tick(instance, resources)
    assert not result.run_requests
    assert set(instance.get_dynamic_partitions("tenants")) == {"contoso", "fabrikam"}
    assert store.tenant_pk("northwind") > 0  # history stays; the tenant is only disabled


def test_sensor_refuses_a_bad_registry_and_changes_nothing(
    instance: dg.DagsterInstance, resources: dict, registry_file: Path
) -> None:
    resources = {**resources, "registry": RegistryResource(path=str(registry_file))}
    _tick(instance, resources)
    registry_file.write_text(registry_file.read_text().replace("cloud: simulated", "cloud: mars", 1))
    with pytest.raises(RegistryError, match=r"tenants\.contoso"):
        _tick(instance, resources)
    assert set(instance.get_dynamic_partitions("tenants")) == {"contoso", "fabrikam", "northwind"}


def test_schedule_requests_one_run_per_enabled_partition(
    instance: dg.DagsterInstance, resources: dict, registry_file: Path
) -> None:
    _tick(instance, resources)
    registry_file.write_text(
        registry_file.read_text().replace(
            "    display_name: Fabrikam Inc\n", "    display_name: Fabrikam Inc\n    enabled: false\n"
        )
    )
    context = dg.build_schedule_context(
        instance=instance,
        resources={"registry": RegistryResource(path=str(registry_file))},
        scheduled_execution_time=TICK,
    )
    requests = inventory_nightly_schedule(context)
    assert isinstance(requests, list)
    keys = sorted(partition_dimensions(str(r.partition_key)) for r in requests)
    assert keys == sorted((t, s) for t in ("contoso", "northwind") for s in ("all", "compliance"))
    assert len({r.run_key for r in requests}) == len(requests)


def test_schedule_skips_before_any_partition_exists(instance: dg.DagsterInstance, resources: dict) -> None:
    context = dg.build_schedule_context(
        instance=instance, resources={"registry": resources["registry"]}, scheduled_execution_time=TICK
    )
    assert isinstance(inventory_nightly_schedule(context), dg.SkipReason)
