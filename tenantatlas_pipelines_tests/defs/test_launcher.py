"""The demo's runs are launched through the workspace like UI runs, so the UI's timeline shows them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV, DEMO_REGISTRY, REGISTRY_ENV
from tenantatlas_pipelines.launcher import launcher

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_launched_batch_is_a_run_of_the_code_location_with_its_job_origin(
    db_url: str, store: InventoryStore, demo_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, db_url)  # the code server and the run worker inherit it
    monkeypatch.setenv(REGISTRY_ENV, str(DEMO_REGISTRY))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("tenants", ["contoso", "northwind"])
        instance.add_dynamic_partitions("selections", ["compliance"])
        with launcher(instance, ROOT / "workspace.yaml") as run:
            launched = run.launch_batch(["compliance|contoso", "compliance|northwind"])
            finished = run.wait(launched.run_id, timeout_seconds=240)
        assert finished.status is dg.DagsterRunStatus.SUCCESS
        # what the Overview timeline groups runs by: the job's origin in the code location
        assert finished.job_name == "inventory_sync"
        assert finished.remote_job_origin is not None
        assert finished.remote_job_origin.location_name == "tenantatlas_pipelines"
        assert finished.tags["dagster/asset_partition_range_start"] == "compliance|contoso"
        materialised = instance.get_materialized_partitions(dg.AssetKey("inventory_items"))
        assert materialised == {"compliance|contoso", "compliance|northwind"}
    for tenant in ("contoso", "northwind"):
        (sync,) = store.runs(store.tenant_pk(tenant))
        assert sync.dagster_run_id == launched.run_id


def test_a_launch_refuses_keys_that_are_not_one_contiguous_range(tmp_path: Path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("tenants", ["a", "b", "c"])
        instance.add_dynamic_partitions("selections", ["all"])
        from tenantatlas_pipelines.launcher import Launcher

        with pytest.raises(ValueError, match="contiguous"):
            Launcher(instance, request=None).launch_batch(["all|a", "all|c"])  # type: ignore[arg-type]
