"""The scenario models, the demo scenario file and the generated item shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from simulator_testkit import TENANT_A, TENANT_B, tenant

from tenantatlas_pipelines.inventory.catalog import CATALOG, Category
from tenantatlas_pipelines.inventory.normalize import normalize_item
from tenantatlas_pipelines.simulator import (
    Fault,
    FaultKind,
    Scenario,
    ScenarioError,
    demo_scenario_path,
    items_for,
)

DEMO = {
    "contoso": (
        "0f6a1c2e-4b5d-4e8f-9a01-23456789abcd",
        "3c1e5a7b-0000-4000-8000-00000000c001",
        "contoso-demo-secret",
    ),
    "fabrikam": (
        "1b7e2d3f-5c6a-4f90-8b12-3456789abcde",
        "3c1e5a7b-0000-4000-8000-00000000f002",
        "fabrikam-demo-secret",
    ),
    "northwind": (
        "2c8f3e40-6d7b-4a01-9c23-456789abcdef",
        "3c1e5a7b-0000-4000-8000-00000000a003",
        "northwind-demo-secret",
    ),
}


def test_demo_scenario_matches_the_demo_registry_tenants() -> None:
    scenario = Scenario.from_yaml(demo_scenario_path())
    for tenant_id, client_id, secret in DEMO.values():
        t = scenario.tenant(tenant_id)
        assert (t.client_id, t.client_secret) == (client_id, secret)
        assert (t.removed_per_generation, t.added_per_generation) == (0.1, 0.05)


def test_demo_contoso_is_healthy_with_a_few_hundred_items_over_the_catalog() -> None:
    contoso = Scenario.from_yaml(demo_scenario_path()).tenant(DEMO["contoso"][0])
    assert contoso.faults == []
    assert set(contoso.item_counts) == set(CATALOG)
    assert 200 <= sum(contoso.item_counts.values()) <= 600
    assert 0 in contoso.item_counts.values()


def test_demo_fabrikam_forbids_conditional_access_and_scripts_forever() -> None:
    fabrikam = Scenario.from_yaml(demo_scenario_path()).tenant(DEMO["fabrikam"][0])
    forbidden = {(f.policy_type, f.count) for f in fabrikam.faults if f.kind is FaultKind.FORBIDDEN}
    assert forbidden == {("conditionalAccessPolicy", None), ("deviceManagementScript", None)}


def test_demo_northwind_throttles_apps_with_and_configurations_without_retry_after() -> None:
    northwind = Scenario.from_yaml(demo_scenario_path()).tenant(DEMO["northwind"][0])
    storms = {(f.policy_type, f.count, f.retry_after) for f in northwind.faults_of(FaultKind.THROTTLE)}
    assert storms == {("mobileApp", 3, 0.2), ("deviceConfiguration", 2, None)}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unknown_scenario_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path, f"tenants:\n  - {{tenant_id: {TENANT_A}, client_id: c, client_secret: s, colour: red}}\n"
    )
    with pytest.raises(ScenarioError, match=r"scenario\.yaml.*colour"):
        Scenario.from_yaml(path)


def test_unknown_policy_type_in_item_counts_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"tenants:\n  - {{tenant_id: {TENANT_A}, client_id: c, client_secret: s, "
        "item_counts: {deviceConfigurations: 3}}\n",
    )
    with pytest.raises(ScenarioError, match="deviceConfigurations"):
        Scenario.from_yaml(path)


def test_tenant_id_must_be_a_guid() -> None:
    with pytest.raises(ValueError, match="GUID"):
        tenant("contoso")


def test_tenant_level_fault_with_a_policy_type_is_refused() -> None:
    with pytest.raises(ValueError, match="tenant-level"):
        Fault(kind=FaultKind.WRONG_SECRET, policy_type="mobileApp")


def test_expire_token_after_needs_a_count() -> None:
    with pytest.raises(ValueError, match="count"):
        Fault(kind=FaultKind.EXPIRE_TOKEN_AFTER)


def test_duplicate_tenants_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Scenario(tenants=[tenant(), tenant()])


def test_tenant_lookup_ignores_case_and_unknown_tenant_raises() -> None:
    scenario = Scenario(tenants=[tenant(), tenant(TENANT_B)])
    assert scenario.tenant(TENANT_B.upper()).tenant_id == TENANT_B
    with pytest.raises(KeyError):
        scenario.tenant("cccccccc-3333-4333-8333-cccccccccccc")


def test_secret_is_not_in_the_tenant_repr() -> None:
    assert "very-secret" not in repr(tenant())


def test_items_for_is_deterministic_and_follows_the_seed() -> None:
    t = tenant(item_counts={"deviceConfiguration": 20})
    first = items_for(Scenario(seed=1, tenants=[t]), t, "deviceConfiguration", 1)
    again = items_for(Scenario(seed=1, tenants=[t]), t, "deviceConfiguration", 1)
    other = items_for(Scenario(seed=2, tenants=[t]), t, "deviceConfiguration", 1)
    assert first == again
    assert len(first) == 20
    assert {i["id"] for i in first}.isdisjoint({i["id"] for i in other})


def test_ids_differ_across_tenants_and_types() -> None:
    a, b = (
        tenant(item_counts={"mobileApp": 10, "deviceCategory": 10}),
        tenant(TENANT_B, item_counts={"mobileApp": 10}),
    )
    scenario = Scenario(tenants=[a, b])
    ids = [i["id"] for i in items_for(scenario, a, "mobileApp", 1)]
    ids += [i["id"] for i in items_for(scenario, a, "deviceCategory", 1)]
    ids += [i["id"] for i in items_for(scenario, b, "mobileApp", 1)]
    assert len(set(ids)) == 30


@pytest.mark.parametrize("policy_type", list(CATALOG))
def test_every_type_yields_items_the_normaliser_accepts_at_1_to_3_kb(policy_type: str) -> None:
    row = CATALOG[policy_type]
    t = tenant(item_counts={policy_type: 40})
    items = items_for(Scenario(tenants=[t]), t, policy_type, 1)
    assert len(items) == 40
    platforms = set()
    for item in items:
        size = len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
        if policy_type == "mobileApp":
            assert size > 3072 and "largeIcon" in item  # the icon; $select removes it
        else:
            assert 1000 <= size <= 3072, (policy_type, size)
        assert isinstance(item.get(row.name_field), str) and item[row.name_field]
        assert item.get("@odata.type") not in row.exclude_odata_types
        normalized = normalize_item(row, item)
        assert normalized.external_id == item["id"]
        assert normalized.display_name == item[row.name_field]
        platforms.add(normalized.platform)
    if row.platform_rule.value != "none":
        assert platforms - {None}, policy_type


def test_settings_catalog_items_carry_platforms_technologies_and_template_families() -> None:
    t = tenant(item_counts={"settingsCatalogPolicy": 200})
    items = items_for(Scenario(tenants=[t]), t, "settingsCatalogPolicy", 1)
    assert all(
        {"name", "platforms", "technologies", "templateReference", "settingCount"} <= set(i) for i in items
    )
    assert "displayName" not in items[0]
    categories = {normalize_item(CATALOG["settingsCatalogPolicy"], i).category for i in items}
    assert categories == {Category.CONFIGURATION.value, Category.SECURITY.value}


def test_conditional_access_items_carry_include_platforms_or_none() -> None:
    t = tenant(item_counts={"conditionalAccessPolicy": 100})
    items = items_for(Scenario(tenants=[t]), t, "conditionalAccessPolicy", 1)
    platforms = [i["conditions"]["platforms"] for i in items]
    assert None in platforms
    assert any(p and p["includePlatforms"] == ["android", "iOS"] for p in platforms)
    assert all("modifiedDateTime" in i and "state" in i for i in items)


def test_mobile_apps_carry_publisher_assignment_and_publishing_state() -> None:
    t = tenant(item_counts={"mobileApp": 50})
    items = items_for(Scenario(tenants=[t]), t, "mobileApp", 1)
    assert all({"publisher", "isAssigned", "publishingState"} <= set(i) for i in items)
    assert {i["isAssigned"] for i in items} == {True, False}
    assert len({i["@odata.type"] for i in items}) > 3


def test_device_configurations_span_several_platform_families() -> None:
    t = tenant(item_counts={"deviceConfiguration": 200})
    items = items_for(Scenario(tenants=[t]), t, "deviceConfiguration", 1)
    platforms = {normalize_item(CATALOG["deviceConfiguration"], i).platform for i in items}
    assert {"windows", "iOS", "macOS", "android", "androidWorkProfile", "aosp"} <= platforms


def test_items_for_refuses_unknown_types() -> None:
    t = tenant()
    with pytest.raises(KeyError):
        items_for(Scenario(tenants=[t]), t, "nope", 1)
