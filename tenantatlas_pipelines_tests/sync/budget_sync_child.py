"""One sync of the shared tenant in its own process, for the Graph budget test (not a test module).

``python budget_sync_child.py <db_url> <base_url> <selection_key> <ledger> <go_file> <settings_json>``

``ledger`` is ``database`` (the deployment's budget, kept in the inventory database) or
``process`` (a budget of this process alone: what every run had before). The child
prints ``ready``, waits for ``go_file`` (both children start together), syncs, and
prints its status.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from sync_support import CLIENT_A, SECRET_A, TENANT_A

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.graph.limits import GraphBudget
from tenantatlas_pipelines.graph.retry import RetryPolicy
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import TenantEntry
from tenantatlas_pipelines.sync.graph_factory import database_graph_budget, graph_factory
from tenantatlas_pipelines.sync.service import SyncRequest, SyncService, SyncSettings

SELECTIONS = {
    "one": ["deviceConfiguration", "mobileApp", "conditionalAccessPolicy"],
    "two": ["deviceCompliancePolicy", "settingsCatalogPolicy", "conditionalAccessPolicy"],
}


def main(argv: list[str]) -> int:
    url, base, selection_key, ledger, go = argv[:5]
    settings = json.loads(argv[5])
    settings["rates"] = {key: tuple(rate) for key, rate in settings["rates"].items()}
    os.environ["TA_SECRET_A"] = SECRET_A
    engine = make_engine(url)
    budget = database_graph_budget(engine, **settings) if ledger == "database" else GraphBudget(**settings)
    factory = graph_factory(budget=budget, retry=RetryPolicy(max_attempts=3, max_total=30.0))
    tenant = TenantEntry(
        tenant_id=TENANT_A,
        client_id=CLIENT_A,
        client_secret_env="TA_SECRET_A",
        cloud="simulated",
        graph_endpoint=base,
        login_endpoint=base,
    )
    service = SyncService(InventoryStore(engine), factory, SyncSettings(batch_size=50))
    selection = Selection.parse({"policy_types": SELECTIONS[selection_key]})
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    result = service.run(SyncRequest("a", tenant, selection_key, selection))
    print(f"status {result.status.value} {','.join(result.error_codes)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
