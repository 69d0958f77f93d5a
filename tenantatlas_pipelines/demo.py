"""`make demo`: sync the bundled simulated tenants through Dagster and print what happened.

1. applies the migrations to the embedded SQLite database (a fresh one each demo),
2. evaluates the registry sensor (mirrors tenants, registers the partitions),
3. materialises inventory_items and inventory_missing_items for every partition in one batched
   Dagster run, launched through the workspace like a UI run (it shows on the Overview timeline),
4. advances the simulator to its second generation (items removed, added and edited) and syncs
   again; after each sync, inventory_changes records each partition's change history,
5. prints a table per partition: status, items, new, missing, appeared, changed, disappeared,
   reappeared, confidence, error codes.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter

import dagster as dg
import pandas as pd

from tenantatlas_pipelines.db.changes import ChangeHistory
from tenantatlas_pipelines.db.migrate import upgrade_to_head
from tenantatlas_pipelines.db.schema import CHANGE_KINDS
from tenantatlas_pipelines.definitions import defs
from tenantatlas_pipelines.defs.partitions import (
    apply_partition_requests,
    inventory_partitions,
    partition_dimensions,
)
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.defs.sensors import registry_sensor
from tenantatlas_pipelines.inventory.errors import exit_code
from tenantatlas_pipelines.inventory.settings import (
    DAGSTER_HOME_ENV,
    DATABASE_URL_ENV,
    DEMO_REGISTRY,
    DEMO_SECRETS,
    REGISTRY_ENV,
    dagster_home,
    default_database_url,
    project_root,
    registry_path,
    state_dir,
)
from tenantatlas_pipelines.launcher import Launcher, launcher
from tenantatlas_pipelines.sync.graph_factory import set_simulator_generation
from tenantatlas_pipelines.sync.missing import latest_completed_run

# the demo prints its own summary; Dagster's console logger only speaks up for warnings
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_environment(*, fresh_database: bool) -> None:
    """DAGSTER_HOME with dagster.yaml, the demo secrets (demo registry only), a migrated database."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    instance_file = project_root() / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and instance_file.exists():
        shutil.copyfile(instance_file, home / "dagster.yaml")
    os.environ[DAGSTER_HOME_ENV] = str(home)
    if not os.environ.get(REGISTRY_ENV) or registry_path() == DEMO_REGISTRY:
        for name, value in DEMO_SECRETS.items():
            os.environ.setdefault(name, value)
    if fresh_database and not os.environ.get(DATABASE_URL_ENV):
        db_file = state_dir() / "inventory.db"
        for suffix in ("", "-wal", "-shm"):
            db_file.with_name(db_file.name + suffix).unlink(missing_ok=True)
    state_dir().mkdir(parents=True, exist_ok=True)
    url = os.environ.get(DATABASE_URL_ENV) or default_database_url()
    upgrade_to_head(url)
    print(f"database: migrated to head ({url.split('@')[-1]})")


def _register_partitions(instance: dg.DagsterInstance) -> list[str]:
    resources = defs.resources or {}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = registry_sensor(context)
    assert isinstance(result, dg.SensorResult)
    before = _partition_keys(instance)
    apply_partition_requests(instance, result)
    keys = _partition_keys(instance)
    print(f"registry sensor: {len(keys)} partitions ({len(set(keys) - set(before))} new)")
    return keys


def _partition_keys(instance: dg.DagsterInstance) -> list[str]:
    return [str(key) for key in inventory_partitions.get_partition_keys(dynamic_partitions_store=instance)]


def _sync_all(run: Launcher, keys: list[str], label: str) -> bool:
    """One batched run of every partition, launched like a UI run (it shows on the timeline)."""
    started = time.monotonic()
    launched = run.launch_batch(keys, tags={"tenantatlas/trigger": "demo"}, run_config=QUIET)
    finished = run.wait(launched.run_id)
    ok = finished.status is dg.DagsterRunStatus.SUCCESS
    print(
        f"  {label}: {len(keys)} partitions in one Dagster run {launched.run_id[:8]} "
        f"{'ok' if ok else str(finished.status.value)} ({time.monotonic() - started:.1f}s)"
    )
    return ok


def _report(keys: list[str]) -> pd.DataFrame:
    resources = defs.resources or {}
    database = resources["database"]
    registry = resources["registry"]
    assert isinstance(database, InventoryDatabase) and isinstance(registry, RegistryResource)
    store, reg = database.store(), registry.load()
    rows = []
    for key in keys:
        tenant_key, selection_key = partition_dimensions(key)
        selection = reg.selection(selection_key)
        tenant_pk = store.tenant_pk(tenant_key)
        run = latest_completed_run(store, tenant_key, selection)
        missing = store.missing_summary(tenant_pk, selection_key)
        changes = ChangeHistory(store).events(tenant_pk, selection.hash(), run.id) if run else []
        kinds = Counter(str(e["kind"]) for e in changes)
        rows.append(
            {
                "partition": key,
                "status": str(run.status) if run else "none",
                "items": run.items_observed_count if run else 0,
                "new": store.count_items_created_since(tenant_pk, run.started_at, selection.resolve())
                if run
                else 0,
                "missing": missing.count,
                **{kind: kinds[kind] for kind in CHANGE_KINDS},
                "confidence": missing.confidence or "-",
                "retries": sum(int(r.get("retries", 0)) for r in (run.type_results or {}).values())
                if run
                else 0,
                "error_codes": ",".join(run.error_codes or []) if run else "",
            }
        )
    return pd.DataFrame(rows)


def main() -> int:
    prepare_environment(fresh_database=True)
    instance = dg.DagsterInstance.get()
    keys = _register_partitions(instance)
    with launcher(instance, project_root() / "workspace.yaml") as run:
        set_simulator_generation(1)
        print("generation 1: first sync of every partition")
        _sync_all(run, keys, "sync")
        set_simulator_generation(2)
        print("generation 2: the simulator removed, added and edited items; syncing again")
        _sync_all(run, keys, "resync")
    table = _report(keys)
    print()
    print(table.to_string(index=False))
    print()
    print("Open the Dagster UI on the same instance with `make dev`.")
    failed = table["status"].isin(["none"]).any()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(exit_code(main))
