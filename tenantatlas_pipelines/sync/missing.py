"""The missing derivation of one partition (tenant, selection)."""

from __future__ import annotations

from tenantatlas_pipelines.db.store import InventoryStore, MissingResult, SyncRunRow
from tenantatlas_pipelines.inventory.selection import Selection


def derive_missing(
    store: InventoryStore, tenant_key: str, selection_key: str, selection: Selection
) -> MissingResult:
    """Derive the partition's missing items and replace its rows in one transaction."""
    tenant_pk = store.tenant_pk(tenant_key)
    result = store.derive_missing(tenant_pk, selection_key, selection.hash(), selection.resolve())
    store.replace_missing(tenant_pk, selection_key, result)
    return result


def latest_completed_run(store: InventoryStore, tenant_key: str, selection: Selection) -> SyncRunRow | None:
    """The partition's latest completed run: the missing reference, what the checks grade."""
    return store.latest_completed_run(store.tenant_pk(tenant_key), selection.hash())
