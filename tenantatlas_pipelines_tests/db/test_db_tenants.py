"""The tenants mirror: upsert by key, disable (never delete) the ones gone from the registry."""

from __future__ import annotations

from typing import Any

import pytest
from db_support import SyncDriver
from sqlalchemy import select

from tenantatlas_pipelines.db.errors import UnknownTenantError
from tenantatlas_pipelines.db.schema import tenants
from tenantatlas_pipelines.db.store import InventoryStore, TenantRecord
from tenantatlas_pipelines.inventory.errors import ConfigError

CONTOSO = TenantRecord("contoso", "0f6a1c2e-0000-4000-8000-000000000001", "Contoso", "global")
FABRIKAM = TenantRecord("fabrikam", "0f6a1c2e-0000-4000-8000-000000000002", "Fabrikam", "usgov")


def _rows(store: InventoryStore) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(tenants)).mappings()}


def test_mirror_upserts_by_key_and_disables_tenants_gone_from_the_registry(
    store: InventoryStore, syncs: SyncDriver
) -> None:
    ids = store.mirror_tenants([CONTOSO, FABRIKAM])
    assert set(ids) == {"contoso", "fabrikam"}
    syncs.sync(ids["fabrikam"], {"deviceConfiguration": ["a"]})

    renamed = TenantRecord(CONTOSO.key, CONTOSO.tenant_id, "Contoso Ltd", "global")
    assert store.mirror_tenants([renamed]) == {"contoso": ids["contoso"]}
    rows = _rows(store)
    assert rows["contoso"]["display_name"] == "Contoso Ltd" and rows["contoso"]["enabled"]
    assert not rows["fabrikam"]["enabled"]  # kept, with its history
    assert store.count_items(ids["fabrikam"]) == 1
    assert store.tenant_pk("fabrikam") == ids["fabrikam"]

    assert store.mirror_tenants([renamed, FABRIKAM])["fabrikam"] == ids["fabrikam"]
    assert _rows(store)["fabrikam"]["enabled"]
    assert store.get_tenant(ids["fabrikam"]) == FABRIKAM


def test_an_unchanged_tenant_keeps_its_updated_at(store: InventoryStore) -> None:
    store.mirror_tenants([CONTOSO])
    before = _rows(store)["contoso"]
    store.mirror_tenants([CONTOSO])
    store.ensure_tenant(CONTOSO)
    assert _rows(store)["contoso"] == before
    store.ensure_tenant(TenantRecord(CONTOSO.key, CONTOSO.tenant_id, CONTOSO.display_name, "china"))
    after = _rows(store)["contoso"]
    assert after["cloud"] == "china" and after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]


def test_ensure_tenant_leaves_other_tenants_alone(store: InventoryStore) -> None:
    store.mirror_tenants([CONTOSO])
    store.ensure_tenant(FABRIKAM)
    assert {k: r["enabled"] for k, r in _rows(store).items()} == {"contoso": True, "fabrikam": True}


def test_an_unknown_tenant_key_is_a_key_error_naming_the_key(store: InventoryStore) -> None:
    with pytest.raises(KeyError) as info:
        store.tenant_pk("nowhere")
    assert isinstance(info.value, UnknownTenantError)
    assert str(info.value).startswith("tenant 'nowhere' is not in the tenants table")


def test_one_entra_tenant_under_two_keys_is_refused_and_nothing_is_written(
    store: InventoryStore, tenant_factory: Any
) -> None:
    store.mirror_tenants([CONTOSO])
    before = _rows(store)
    clash = TenantRecord("contoso-eu", CONTOSO.tenant_id, "Contoso EU", "global")
    with pytest.raises(
        ConfigError, match=f"tenant_id {CONTOSO.tenant_id} of 'contoso-eu' is already mirrored"
    ):
        store.mirror_tenants([CONTOSO, FABRIKAM, clash])
    assert _rows(store) == before
    with pytest.raises(ConfigError, match="under key 'contoso'"):
        store.ensure_tenant(clash)
    with pytest.raises(ConfigError, match="given more than once"):
        store.mirror_tenants([CONTOSO, CONTOSO])


def _racing_upsert(store: InventoryStore, monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """Make the first ``failures`` tenant upserts hit a unique violation, as a concurrent inserter can."""
    from sqlalchemy.exc import IntegrityError

    calls = [0]
    original = store._upsert_tenants

    def racing(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] <= failures:
            raise IntegrityError("INSERT INTO tenants", {}, Exception("duplicate key on tenant_id"))
        original(*args, **kwargs)

    monkeypatch.setattr(store, "_upsert_tenants", racing)
    return calls


def test_a_concurrent_insert_of_the_same_tenant_is_retried_not_reported_as_a_clash(
    store: InventoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _racing_upsert(store, monkeypatch, failures=1)
    pk = store.ensure_tenant(CONTOSO)
    assert calls[0] == 2
    assert store.tenant_pk("contoso") == pk
    assert store.mirror_tenants([CONTOSO, FABRIKAM])["contoso"] == pk


def test_a_unique_violation_that_persists_is_a_clash(
    store: InventoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _racing_upsert(store, monkeypatch, failures=2)
    with pytest.raises(ConfigError, match="one key only"):
        store.ensure_tenant(CONTOSO)
    assert calls[0] == 2
    assert _rows(store) == {}
