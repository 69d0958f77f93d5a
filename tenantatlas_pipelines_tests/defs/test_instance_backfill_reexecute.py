"""The instance for real: a backfill where two tenants fail, then "Re-execute -> from failure" after the fix.

On the repo's embedded ``dagster.yaml`` (SQLite in a temporary ``DAGSTER_HOME``), with the inventory on a
fresh PostgreSQL database migrated by ``tenantatlas migrate``, ``dagster-webserver`` and
``dagster-daemon run`` as separate processes on the repo's workspace.yaml (as test_instance_backfill.py):

- a registry of 3 simulated tenants x 2 selections in which the first and the last tenant's
  ``client_secret_env`` names an env var holding a wrong secret: their syncs fail with auth_failed,
  the middle tenant's succeed (so the partitions to re-execute are not one contiguous range);
- one backfill of every partition of both assets through GraphQL, as the UI's "Materialize all" does:
  it ends COMPLETED_FAILED, and the backfill page's per-asset counts say which partitions failed;
- the registry is fixed (each run reads it: ``RegistryResource.load()`` in the asset body, and reads the
  secret from the env var it names when it opens the tenant's Graph client), then the backfill is
  re-executed from failure through GraphQL, as the backfill page's Re-execute menu does: the new
  backfill targets the failed partitions only and succeeds;
- in the inventory database a healthy partition was synced once (re-execution did not sync it again),
  the healed ones twice (failed, then success by the re-execution's runs); every partition of
  inventory_items is materialised, and the healed partitions' missing sets follow their new sync
  (the re-execution targets only inventory_items, yet each sync derives its missing set).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from instance_support import (
    ASSETS,
    EMBEDDED_DAGSTER_YAML,
    DatabaseServer,
    Deployment,
    Fleet,
    open_deployment,
    partition_str,
    service_env,
    sync_rows,
    webserver_and_daemon,
    write_fleet,
)

TENANTS = 3  # x 2 selections = 6 partitions
BATCH_SIZE = 3  # partitions per run: the first backfill is 2 runs
BACKFILL_TIMEOUT = 300.0
READY_TIMEOUT = 180.0
ITEMS, MISSING = ASSETS  # inventory_items, inventory_missing_items (its downstream)
WRONG_SECRET = "not-the-right-secret"


@pytest.fixture
def deployment(
    postgres_server: DatabaseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    home = tmp_path / "dagster_home"
    with open_deployment(
        "embedded-sqlite", EMBEDDED_DAGSTER_YAML, False, postgres_server, home, monkeypatch
    ) as d:
        yield d


def _break_tenants(fleet: Fleet, tenants: set[str]) -> tuple[str, dict[str, str]]:
    """Point each tenant at an env var holding a wrong secret; the healthy registry text and those vars."""
    healthy = fleet.registry.read_text()
    registry: dict[str, Any] = yaml.safe_load(healthy)
    stale: dict[str, str] = {}
    for tenant in tenants:
        stale_env = f"{tenant.upper()}_STALE_GRAPH_SECRET"
        registry["tenants"][tenant]["client_secret_env"] = stale_env
        stale[stale_env] = WRONG_SECRET
    fleet.registry.write_text(yaml.safe_dump(registry, sort_keys=False))
    return healthy, stale


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_reexecuting_a_failed_backfill_from_failure_resyncs_only_the_failed_partitions_once_fixed(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write_fleet(tmp_path / "fleet", TENANTS)
    # the first and the last tenant: the partitions to re-execute are not one contiguous range, and
    # the healthy tenant between them must not be synced again
    failing = {fleet.tenants[0], fleet.tenants[2]}
    healthy_registry, stale_secret = _break_tenants(fleet, failing)
    partitions = fleet.partitions
    keys = {partition_str(t, s) for t, s in partitions}
    failed_keys = {partition_str(t, s) for t, s in partitions if t in failing}
    assert len(keys) == 6 and len(failed_keys) == 4
    instance = deployment.instance
    # known before the daemon starts: the registry sensor requests no first sync (see the other test)
    instance.add_dynamic_partitions("tenants", list(fleet.tenants))
    instance.add_dynamic_partitions("selections", list(fleet.selections))

    env = service_env(deployment, fleet, tmp_path / "state", BATCH_SIZE, stale_secret)
    with webserver_and_daemon(env, tmp_path / "logs", READY_TIMEOUT) as (graphql, services):
        # 1. the backfill of every partition: the broken tenants' partitions fail, the backfill with them
        started = time.perf_counter()
        first_id = graphql.launch_backfill_of_all_partitions(ASSETS)
        first = graphql.wait_for_backfill(first_id, services, BACKFILL_TIMEOUT)
        first_wall = time.perf_counter() - started
        assert first["status"] == "COMPLETED_FAILED", f"backfill {first_id}: {first}"
        first_counts = graphql.backfill_asset_statuses(first_id)
        assert first_counts[ITEMS] == {
            "numPartitionsTargeted": 6,
            "numPartitionsInProgress": 0,
            "numPartitionsMaterialized": 2,
            "numPartitionsFailed": 4,
        }, first_counts
        # inventory_missing_items is derived for every partition whatever its sync's status (assets.py),
        # so the failed partitions' runs materialised it too: Dagster counts it materialised everywhere
        # (its failed count excludes what was materialised, though the downstream of a failure)
        assert first_counts[MISSING] == {
            "numPartitionsTargeted": 6,
            "numPartitionsInProgress": 0,
            "numPartitionsMaterialized": 6,
            "numPartitionsFailed": 0,
        }, first_counts
        first_runs = list(instance.get_runs(RunsFilter(tags={"dagster/backfill": first_id})))
        first_run_ids = {run.run_id for run in first_runs}
        assert first_run_ids == {r["id"] for r in first["runs"]}  # GraphQL agrees
        assert len(first_runs) >= 2, [(r.run_id, r.tags) for r in first_runs]  # batched, not one run
        assert DagsterRunStatus.FAILURE in {run.status for run in first_runs}
        assert {run.status for run in first_runs} <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}
        assert instance.get_materialized_partitions(dg.AssetKey(ITEMS)) == keys - failed_keys

        # 2. fix the registry (the next run reads it), then Re-execute -> from failure
        fleet.registry.write_text(healthy_registry)
        started = time.perf_counter()
        second_id = graphql.reexecute_backfill(first_id, "FROM_FAILURE")
        assert second_id != first_id
        second = graphql.wait_for_backfill(second_id, services, BACKFILL_TIMEOUT)
        second_wall = time.perf_counter() - started
        assert second["status"] == "COMPLETED_SUCCESS", f"backfill {second_id}: {second}"
        second_counts = graphql.backfill_asset_statuses(second_id)
        # from failure = the parent's targets minus what it materialised: inventory_items of the failed
        # partitions only; inventory_missing_items was materialised for them (above), so Dagster does
        # not target it; the runs derive it with each sync all the same (below)
        assert second_counts == {
            ITEMS: {
                "numPartitionsTargeted": 4,
                "numPartitionsInProgress": 0,
                "numPartitionsMaterialized": 4,
                "numPartitionsFailed": 0,
            }
        }, second_counts
        second_runs = list(instance.get_runs(RunsFilter(tags={"dagster/backfill": second_id})))
        second_run_ids = {run.run_id for run in second_runs}
        assert second_run_ids == {r["id"] for r in second["runs"]}
        assert second_runs and {run.status for run in second_runs} == {DagsterRunStatus.SUCCESS}
        for run in second_runs:
            assert run.tags.get("dagster/parent_backfill_id") == first_id, run.tags
            assert run.asset_selection == {dg.AssetKey(ITEMS)}, run.asset_selection
        # the backfills' runs are all the runs: the registry sensor launched nothing
        assert instance.get_runs_count() == len(first_runs) + len(second_runs)
        with capsys.disabled():
            print(
                f"\nbackfill {first_id}: {first['status']} in {first_wall:.1f} s, {len(first_runs)} runs, "
                f"{first_counts}\nre-execution {second_id}: {second['status']} in {second_wall:.1f} s, "
                f"{len(second_runs)} runs {[dict(r.tags) for r in second_runs]}, {second_counts}"
            )

        _assert_synced_once_unless_healed(
            deployment.inventory_url, partitions, failing, first_run_ids, second_run_ids
        )
        # every partition materialised now; the re-execution's runs materialised the healed ones only
        assert instance.get_materialized_partitions(dg.AssetKey(ITEMS)) == keys
        assert _materialised_by(instance, ITEMS, keys, second_run_ids) == failed_keys
        # a sync brings its missing set (Steps.for_selection): the healed partitions' missing sets
        # follow their new sync, not the failed one (before, they stayed on it, low confidence)
        assert _materialised_by(instance, MISSING, keys, second_run_ids) == failed_keys
        for key in sorted(failed_keys):
            metadata = _latest_metadata(instance, MISSING, key)
            assert metadata["reference_status"].value == "success", (key, metadata)
            assert metadata["confidence"].value == "high", (key, metadata)


def _assert_synced_once_unless_healed(
    inventory_url: str,
    partitions: list[tuple[str, str]],
    failing: set[str],
    first_run_ids: set[str],
    second_run_ids: set[str],
) -> None:
    by_partition = sync_rows(inventory_url)
    assert set(by_partition) == set(partitions), sorted(set(partitions) ^ set(by_partition))
    for (tenant, selection), syncs in sorted(by_partition.items()):
        statuses = [status for status, _ in syncs]
        if tenant in failing:  # failed in the first backfill, synced again by the re-execution
            assert statuses == ["failed", "success"], f"{selection}|{tenant}: {syncs}"
            assert syncs[0][1] in first_run_ids, f"{selection}|{tenant}: {syncs}"
            assert syncs[1][1] in second_run_ids, f"{selection}|{tenant}: {syncs}"
        else:  # once, by the first backfill: re-executing from failure left it alone
            assert statuses == ["success"], f"{selection}|{tenant}: {syncs}"
            assert syncs[0][1] in first_run_ids, f"{selection}|{tenant}: {syncs}"


def _latest_metadata(instance: dg.DagsterInstance, asset: str, key: str) -> dict[str, Any]:
    """The metadata of the latest materialisation of ``asset``'s partition ``key``."""
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1, ascending=False
    ).records
    materialization = record.asset_materialization
    assert materialization is not None, (asset, key)
    return dict(materialization.metadata)


def _materialised_by(instance: dg.DagsterInstance, asset: str, keys: set[str], run_ids: set[str]) -> set[str]:
    """The partitions of ``asset`` that one of ``run_ids`` materialised."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=sorted(keys)),
        limit=10 * len(keys),
    ).records
    return {str(r.partition_key) for r in records if r.run_id in run_ids}
