from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from tenantatlas_pipelines.definitions import defs
from tenantatlas_pipelines.defs.batching import DEFAULT_BATCH_SIZE

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_validate() -> None:
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {"inventory_items", "inventory_missing_items", "inventory_changes"}
    assert {s.name for s in repo.sensor_defs} == {
        "registry_sensor",
        "inventory_nightly_sweep",
        "inventory_freshness_sensor",
        "sync_run_failure_sensor",
        "sync_run_canceled_sensor",
    }
    assert not repo.schedule_defs  # the nightly sweep is a sensor: it launches a batched backfill
    check_names = {k.name for k in repo.asset_graph.asset_check_keys}
    assert check_names == {"last_sync_succeeded", "inventory_fresh"}


def test_inventory_items_uses_the_msgraph_pool_and_the_contract_partitions() -> None:
    repo = defs.get_repository_def()
    node = repo.asset_graph.get(dg.AssetKey("inventory_items"))
    partitions = node.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    dims = {d.name: d.partitions_def for d in partitions.partitions_defs}
    assert isinstance(dims["tenant"], dg.DynamicPartitionsDefinition) and dims["tenant"].name == "tenants"
    assert (
        isinstance(dims["selection"], dg.DynamicPartitionsDefinition)
        and dims["selection"].name == "selections"
    )
    assets_def = repo.assets_defs_by_key[dg.AssetKey("inventory_items")]
    assert {op.pool for op in assets_def.node_def.iterate_op_defs()} == {"msgraph"}
    policy = assets_def.backfill_policy
    assert policy is not None and policy.max_partitions_per_run == DEFAULT_BATCH_SIZE
    # the missing set and the change history are computed by the same batched step, downstream
    for key, parent in (
        ("inventory_missing_items", "inventory_items"),
        ("inventory_changes", "inventory_missing_items"),
    ):
        assert repo.assets_defs_by_key[dg.AssetKey(key)] is assets_def
        assert repo.asset_graph.get(dg.AssetKey(key)).parent_keys == {dg.AssetKey(parent)}


def test_workspace_and_both_instance_files_load() -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    entry = workspace["load_from"][0]["python_module"]
    assert entry == {
        "module_name": "tenantatlas_pipelines.definitions",
        "location_name": "tenantatlas_pipelines",
    }
    from dagster._core.instance.config import dagster_instance_config

    for folder in (ROOT, ROOT / "deploy"):
        config, _ = dagster_instance_config(str(folder))
        limits = {(lim["key"]) for lim in config["concurrency"]["runs"]["tag_concurrency_limits"]}
        assert limits == {"dagster/partition", "dagster/partition/tenant", "dagster/backfill"}
        assert config["concurrency"]["runs"]["max_concurrent_runs"] > 0
        assert config["concurrency"]["pools"]["default_limit"] > 0


def test_dagster_definitions_validate_passes_on_the_workspace(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout
