"""Bad input: hostile Graph items, partition keys and selections: a clear error, nothing bad written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from rel_support import (
    SELECTION,
    TENANT_A,
    FaultySimulator,
    Rule,
    expected_ids,
    path_of,
    service,
    simulator,
    stored_ids,
    sync,
    table_counts,
    tenant_scenario,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_items as inventory_items_table
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.partitions import partition_key
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.defs.sensors import registry_sensor
from tenantatlas_pipelines.demo import DEMO_SECRETS
from tenantatlas_pipelines.inventory.errors import ErrorCode, TenantAtlasError
from tenantatlas_pipelines.inventory.normalize import MAX_DISPLAY_NAME_CHARS, META_WHITELIST
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY
from tenantatlas_pipelines.registry import RegistryError, load_registry
from tenantatlas_pipelines.sync.missing import derive_missing

APPS = "mobileApp"
BAD_IDS: list[Any] = [12345, None, {"x": 1}, ["a"], "", "   ", "x" * 300, True, 1.5, "id\x00nul", "\ud800"]


def _rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        table = inventory_items_table
        rows = conn.execute(select(table).where(table.c.policy_type == APPS)).mappings()
        return {r["external_id"]: dict(r) for r in rows}


def test_items_without_a_usable_id_are_skipped_counted_and_the_rest_stored(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    def break_ids(items: list[Any]) -> list[Any]:
        broken = [dict(items[i], id=bad) for i, bad in enumerate(BAD_IDS)]
        no_id = {k: v for k, v in items[len(BAD_IDS)].items() if k != "id"}
        return [*broken, no_id, "not an object", 42, None]

    sim = simulator(tenant_scenario(page_size=20))
    faulty = FaultySimulator(sim, Rule(path_of(APPS), "items", count=1, rewrite=break_ids))
    result = sync(service(store, faulty))
    assert result.status is RunStatus.SUCCESS
    assert result.error_codes == ["item_invalid"]
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.had_errors
    assert run.type_results[APPS]["skipped_items"] == len(BAD_IDS) + 4
    stored = set(stored_ids(engine))
    assert all(isinstance(i, str) and i.strip() for _, i in stored)
    others = expected_ids(sim) - {(APPS, i) for i in sim.expected_item_ids(TENANT_A, APPS)}
    assert others <= stored
    assert derive_missing(store, "a", "rel", SELECTION).confidence is Confidence.LOW  # had_errors


HOSTILE_NAMES = {
    "huge": "N" * 200_000,
    "unicode": "Richtlinie \u00fcber \u4e2d\u6587 \U0001f512 \u202eRTL\u202c e\u0301 \u0000zero",
    "nul": "before\x00after",
    "lone_surrogate": "broken \ud800 half",
    "control": "line\nbreak\ttab\r\x1b[31mred",
}


def test_huge_unicode_and_control_character_names_are_stored_bounded_and_readable(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    names = list(HOSTILE_NAMES.values())

    def rename(items: list[Any]) -> list[Any]:
        out = [dict(item) for item in items]
        for item, name in zip(out, names, strict=False):
            item["displayName"] = name
            item["publisher"] = name  # a whitelisted meta string
            item["\u0000unknown\ud800"] = name  # an unknown meta key, itself hostile
        return out

    sim = simulator()
    faulty = FaultySimulator(sim, Rule(path_of(APPS), "items", count=1, rewrite=rename))
    result = sync(service(store, faulty))
    assert result.status is RunStatus.SUCCESS, result.error_codes
    assert set(stored_ids(engine)) == expected_ids(sim)
    stored_names = [r["display_name"] for r in _rows(engine).values()]
    for name in stored_names:
        assert name is not None and len(name) <= MAX_DISPLAY_NAME_CHARS
        assert "\x00" not in name
        name.encode("utf-8")  # no lone surrogate survives
    assert "N" * MAX_DISPLAY_NAME_CHARS in stored_names
    assert any("\U0001f512" in n and "\u4e2d\u6587" in n for n in stored_names)
    assert "beforeafter" in stored_names or "before\ufffdafter" in stored_names


def test_null_fields_and_unknown_meta_keys_never_fail_a_sync(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    def hollow(items: list[Any]) -> list[Any]:
        nulled = [{k: (v if k == "id" else None) for k, v in item.items()} for item in items[:3]]
        unknown = [
            {**item, "secretSauce": {"nested": [1, 2]}, "assignments": [{"x": 1}], "@odata.nextLink": 7}
            for item in items[3:]
        ]
        return nulled + unknown

    sim = simulator()
    faulty = FaultySimulator(sim, Rule(path_of(APPS), "items", count=1, rewrite=hollow))
    result = sync(service(store, faulty))
    assert result.status is RunStatus.SUCCESS and result.error_codes == []
    assert result.outcome is not None
    assert result.outcome.type_results[APPS].dropped_meta_keys >= 3 * 7
    rows = _rows(engine)
    assert set(rows) == sim.expected_item_ids(TENANT_A, APPS)
    allowed = set(META_WHITELIST) | {"warnings"}
    assert all(set(r["meta_jsonb"]) <= allowed for r in rows.values())
    assert sum(r["display_name"] is None for r in rows.values()) == 3


HOSTILE_KEYS = ["con|toso", "a,b", "...", "x" * 300, "\u00fcn\u00efc\u00f8d\u00e9", "contoso\n", ""]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k[:12]))
def test_the_sync_service_refuses_a_hostile_tenant_or_selection_key_before_writing(
    key: str, store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    svc = service(store, simulator())
    with pytest.raises(TenantAtlasError, match="bad tenant key") as tenant_error:
        sync(svc, tenant_key=key)
    with pytest.raises(TenantAtlasError, match="bad selection key") as selection_error:
        sync(svc, selection_key=key)
    assert tenant_error.value.code is ErrorCode.CONFIG_ERROR
    assert selection_error.value.code is ErrorCode.CONFIG_ERROR
    assert set(table_counts(engine).values()) == {0}


def test_a_selection_that_resolves_to_no_policy_type_is_refused_and_nothing_is_written(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    empty = Selection.parse({"policy_types": []})
    assert not empty.resolve()
    with pytest.raises(TenantAtlasError, match="resolves to no policy type") as error:
        sync(service(store, simulator()), selection_key="empty", selection=empty)
    assert error.value.code is ErrorCode.CONFIG_ERROR
    assert set(table_counts(engine).values()) == {0}


@pytest.mark.parametrize("key", ["contoso\n", "Contoso", "a|b", "a,b", "..."], ids=repr)
def test_the_registry_refuses_hostile_tenant_and_selection_keys(key: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    tenant = {
        "tenant_id": TENANT_A,
        "client_id": TENANT_A,
        "client_secret_env": "X_SECRET",
        "cloud": "simulated",
    }
    for body in (
        {"selections": {"s": {"policy_types": ["mobileApp"]}}, "tenants": {key: tenant}},
        {"selections": {key: {"policy_types": ["mobileApp"]}}, "tenants": {"t": tenant}},
    ):
        path.write_text(yaml.safe_dump(body))
        with pytest.raises(RegistryError, match=r"bad (tenant|selection) key"):
            load_registry(path)


@pytest.fixture
def dagster_resources(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    for name, value in DEMO_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANTATLAS_STATE_DIR", str(tmp_path / "state"))
    return {"database": InventoryDatabase(url=db_url), "registry": RegistryResource(path=str(DEMO_REGISTRY))}


def test_hostile_partition_keys_added_by_hand_fail_clearly_write_nothing_and_the_sensor_removes_them(
    dagster_resources: dict[str, Any], engine: Engine
) -> None:
    hostile_tenants = ["con|toso", "a,b", "...", "x" * 300, "\u00fcn\u00efc\u00f8d\u00e9", "contoso\n"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", hostile_tenants)
        instance.add_dynamic_partitions("selections", ["compliance", "com|pliance", "..."])
        for tenant in hostile_tenants:
            key = partition_key(tenant, "compliance")
            if "|" in tenant:
                # Dagster itself cannot parse "<selection>|con|toso" back: the run never starts
                with pytest.raises(dg.DagsterUnknownPartitionError):
                    dg.materialize(
                        [inventory_assets], partition_key=key, instance=instance, resources=dagster_resources
                    )
                continue
            result = dg.materialize(
                [inventory_assets],
                partition_key=key,
                instance=instance,
                resources=dagster_resources,
                raise_on_error=False,
            )
            assert not result.success
            failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
            message = str(failure.event_specific_data.error.to_string())  # type: ignore[union-attr]
            assert f"tenant {tenant!r} is not defined" in message
            assert set(table_counts(engine).values()) == {0}, tenant
        # the registry sensor's next tick deletes every partition the registry does not define
        sensor = registry_sensor(dg.build_sensor_context(instance=instance, resources=dagster_resources))
        deleted = {
            key
            for request in sensor.dynamic_partitions_requests or []
            if isinstance(request, dg.DeleteDynamicPartitionsRequest)
            for key in request.partition_keys
        }
        assert deleted == {*hostile_tenants, "com|pliance", "..."}
