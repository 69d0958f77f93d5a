"""The sync hashes each item as its page arrives (sync/service.py ``_fingerprints``), once, and stores
the hash of the object exactly as Graph served it (raw stored rows, both databases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sync_support import tenant_scenario

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory import normalize as normalize_module
from tenantatlas_pipelines.inventory.fingerprint import content_hash
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Scenario, items_for
from tenantatlas_pipelines.sync import service as service_module

COUNTS = {
    "mobileApp": 60,
    "deviceConfiguration": 30,
    "settingsCatalogPolicy": 20,
    "windowsDriverUpdateProfile": 5,
}


def _sim() -> GraphSimulator:
    tenant = tenant_scenario(item_counts=COUNTS, page_size=25)
    return GraphSimulator(Scenario(seed=11, tenants=[tenant]), generation=1)


def _served_hashes(sim: GraphSimulator) -> dict[tuple[str, str], str]:
    """Every item's hash computed here from the simulator's objects, as its pages serve them ($select)."""
    tenant = sim.scenario.tenants[0]
    return {
        (key, raw["id"]): content_hash(key, raw)
        for key in COUNTS
        for raw in items_for(sim.scenario, tenant, key, 1, as_synced=True)
    }


def test_each_item_is_hashed_once_as_its_page_arrives_and_stored_as_served(
    store: InventoryStore, make_syncer: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"on_arrival": 0, "in_normalize": 0}

    def counting(where: str) -> Callable[[str, Any], str]:
        def hashed(policy_type: str, raw: Any) -> str:
            calls[where] += 1
            return content_hash(policy_type, raw)

        return hashed

    monkeypatch.setattr(service_module, "content_hash", counting("on_arrival"))
    monkeypatch.setattr(normalize_module, "content_hash", counting("in_normalize"))
    sim = _sim()

    result = make_syncer(sim)()

    assert result.status is RunStatus.SUCCESS
    assert calls == {"on_arrival": sum(COUNTS.values()), "in_normalize": 0}
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT policy_type, external_id, content_hash FROM inventory_items"))
        stored = {(r[0], r[1]): r[2] for r in rows}
    assert stored == _served_hashes(sim)
