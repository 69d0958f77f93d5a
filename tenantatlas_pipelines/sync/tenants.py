"""The registry's tenants as the store mirrors them."""

from __future__ import annotations

from tenantatlas_pipelines.db.store import TenantRecord
from tenantatlas_pipelines.registry import Registry, TenantEntry


def tenant_record(key: str, tenant: TenantEntry) -> TenantRecord:
    return TenantRecord(
        key=key,
        tenant_id=tenant.tenant_id,
        display_name=tenant.display_name or key,
        cloud=tenant.cloud,
        enabled=tenant.enabled,
    )


def tenant_records(registry: Registry) -> list[TenantRecord]:
    return [tenant_record(key, tenant) for key, tenant in registry.tenants.items()]
