"""Helpers for sync tests: scenarios, registry entries, simulators."""

from __future__ import annotations

from typing import Any

from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import TenantEntry
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, Scenario, TenantScenario

TENANT_A = "0f6a1c2e-4b5d-4e8f-9a01-23456789abcd"
TENANT_B = "1b7e2d3f-5c6a-4f90-8b12-3456789abcde"
CLIENT_A = "3c1e5a7b-0000-4000-8000-00000000c001"
CLIENT_B = "3c1e5a7b-0000-4000-8000-00000000f002"
SECRET_A = "canary-secret-A-9f8e7d6c5b4a"
SECRET_B = "canary-secret-B-1a2b3c4d5e6f"

SMALL_COUNTS = {
    "deviceConfiguration": 30,
    "windowsUpdateRing": 4,
    "settingsCatalogPolicy": 60,
    "deviceCompliancePolicy": 12,
    "compliancePolicyV2": 5,
    "mobileApp": 120,
    "conditionalAccessPolicy": 6,
    "roleScopeTag": 3,
}
ALL = Selection.parse(
    {
        "categories": ["configuration", "compliance", "apps", "security", "updates"],
        "include_foundations": True,
    }
)
COMPLIANCE = Selection.parse({"policy_types": ["deviceCompliancePolicy", "compliancePolicyV2"]})


def tenant_scenario(
    tenant_id: str = TENANT_A, faults: list[Fault] | None = None, **kw: Any
) -> TenantScenario:
    client_id, secret = (CLIENT_A, SECRET_A) if tenant_id == TENANT_A else (CLIENT_B, SECRET_B)
    return TenantScenario(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=secret,
        item_counts=kw.pop("item_counts", SMALL_COUNTS),
        faults=faults or [],
        **kw,
    )


def entry(tenant_id: str = TENANT_A) -> TenantEntry:
    client_id, env = (CLIENT_A, "TA_SECRET_A") if tenant_id == TENANT_A else (CLIENT_B, "TA_SECRET_B")
    return TenantEntry(tenant_id=tenant_id, client_id=client_id, client_secret_env=env, cloud="simulated")


async def _no_sleep(_: float) -> None:
    return None


def simulator(*tenants: TenantScenario) -> GraphSimulator:
    return GraphSimulator(Scenario(seed=7, tenants=list(tenants) or [tenant_scenario()]))
