from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.definitions import defs
from tenantatlas_pipelines.defs.partitions import apply_partition_requests, partition_dimensions
from tenantatlas_pipelines.defs.resources import RegistryResource
from tenantatlas_pipelines.defs.sensors import inventory_nightly_sweep, latest_sweep_tick, registry_sensor
from tenantatlas_pipelines.registry import RegistryError

TICK = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def _evaluate(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources: dict, cursor: str | None = None
) -> SensorExecutionData:
    """One tick as the daemon evaluates it: the sensor's result, validated against its definition."""
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor, definitions=defs)
    return sensor.evaluate_tick(context)


def _backfill_keys(result: SensorExecutionData) -> set[tuple[str, str]]:
    """The partitions of the one backfill a sensor result requests (every inventory asset)."""
    (request,) = result.run_requests or []
    subset = request.asset_graph_subset
    assert subset is not None, "the sensor must launch a backfill (batched runs), not single runs"
    by_asset = {key.to_user_string(): s for key, s in subset.partitions_subsets_by_asset_key.items()}
    assert set(by_asset) == {"inventory_items", "inventory_missing_items", "inventory_changes"}
    keys = [set(s.get_partition_keys()) for s in by_asset.values()]
    assert all(k == keys[0] for k in keys)
    return {partition_dimensions(k) for k in keys[0]}


def _tick(instance: dg.DagsterInstance, resources: dict) -> SensorExecutionData:
    result = _evaluate(registry_sensor, instance, resources)
    for request in result.dynamic_partitions_requests or []:  # what the daemon does after a tick
        apply_partition_requests(instance, dg.SensorResult(dynamic_partitions_requests=[request]))
    return result


def test_sensor_mirrors_tenants_adds_partitions_and_requests_first_syncs(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    first = _tick(instance, resources)
    assert set(instance.get_dynamic_partitions("tenants")) == {"contoso", "fabrikam", "northwind"}
    assert set(instance.get_dynamic_partitions("selections")) == {"all", "compliance"}
    requested = _backfill_keys(first)
    assert requested == {(t, s) for t in ("contoso", "fabrikam", "northwind") for s in ("all", "compliance")}
    assert store.tenant_pk("contoso") > 0
    second = _tick(instance, resources)
    assert not second.run_requests and not second.dynamic_partitions_requests
    assert second.skip_message == "registry unchanged: 3 tenants (3 enabled), 2 selections"


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


def _sweep(instance: dg.DagsterInstance, registry_file: Path, cursor: str | None) -> SensorExecutionData:
    resources = {"registry": RegistryResource(path=str(registry_file))}
    return _evaluate(inventory_nightly_sweep, instance, resources, cursor)


def test_nightly_sweep_launches_one_backfill_of_every_enabled_partition_once_a_day(
    instance: dg.DagsterInstance, resources: dict, registry_file: Path
) -> None:
    _tick(instance, resources)
    registry_file.write_text(
        registry_file.read_text().replace(
            "    display_name: Fabrikam Inc\n", "    display_name: Fabrikam Inc\n    enabled: false\n"
        )
    )
    yesterday = (latest_sweep_tick(datetime.now(UTC)) - timedelta(days=1)).isoformat()
    result = _sweep(instance, registry_file, cursor=yesterday)
    assert _backfill_keys(result) == {(t, s) for t in ("contoso", "northwind") for s in ("all", "compliance")}
    assert result.cursor == latest_sweep_tick(datetime.now(UTC)).isoformat()
    again = _sweep(instance, registry_file, cursor=result.cursor)
    assert not again.run_requests  # one sweep per day


def test_nightly_sweep_turned_on_waits_for_the_next_0200(
    instance: dg.DagsterInstance, resources: dict, registry_file: Path
) -> None:
    _tick(instance, resources)
    result = _sweep(instance, registry_file, cursor=None)
    assert not result.run_requests and result.cursor == latest_sweep_tick(datetime.now(UTC)).isoformat()


def test_the_sweep_tick_is_the_latest_0200_utc() -> None:
    assert latest_sweep_tick(TICK) == TICK
    assert latest_sweep_tick(TICK - timedelta(minutes=1)) == TICK - timedelta(days=1)
    assert latest_sweep_tick(TICK + timedelta(hours=23)) == TICK
