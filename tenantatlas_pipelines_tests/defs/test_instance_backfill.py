"""The instance for real: a UI-style backfill of every partition through the webserver and the daemon.

On the production instance (``deploy/dagster.yaml`` on a fresh PostgreSQL database: dagster-postgres
run, event-log and schedule storage; the repo's embedded ``dagster.yaml`` runs the same path in
test_instance_backfill_reexecute.py), with the inventory on a fresh PostgreSQL database migrated by
``tenantatlas migrate``:

- a registry of simulated tenants x 2 selections (few items each: Dagster's path is under test);
- ``dagster-webserver`` and ``dagster-daemon run`` as separate processes on the repo's workspace.yaml;
- the dynamic partitions are added through the instance API *before* the daemon starts, so the
  registry sensor's first tick finds every partition known and requests no first sync: the
  backfill's runs are the only runs, whatever the sensor's interval;
- one backfill of every partition of both assets, launched through GraphQL as the UI's
  "Materialize all" dialog does; waited for through GraphQL;
- every partition has exactly one ``inventory_sync_runs`` row, ``success``, written by one of the
  backfill's runs, and a materialisation of both assets from one of the backfill's runs.

The number of runs the backfill launched is printed (and recorded as a junit property), not asserted:
one run per partition today, fewer with batched runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from instance_support import (
    ASSETS,
    DEPLOY_DAGSTER_YAML,
    SUCCEEDED_BACKFILL,
    DatabaseServer,
    Deployment,
    open_deployment,
    partition_str,
    service_env,
    sync_rows,
    webserver_and_daemon,
    write_fleet,
)

TENANTS = 10  # x 2 selections = 20 partitions
# partitions per run once the assets are batched (BackfillPolicy.multi_run): below the 20 partitions,
# so the backfill is split into several batch runs; ignored by unbatched assets
BATCH_SIZE = 8
BACKFILL_TIMEOUT = 480.0  # about 2 min per instance today on 2 idle cores
READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class InstanceCase:
    dagster_yaml: Path
    postgres_storage: bool  # the yaml reads DAGSTER_PG_* for a database of its own


# the repo's embedded dagster.yaml (SQLite) runs a backfill that fails, then its re-execution, which
# succeeds, in test_instance_backfill_reexecute.py: a third webserver, daemon and backfill here
# would add about 85 s to the suite for the same path
CASES = [
    pytest.param(InstanceCase(DEPLOY_DAGSTER_YAML, True), id="deploy-postgres"),
]


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    postgres_server: DatabaseServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployment]:
    case: InstanceCase = request.param
    label = request.node.callspec.id
    with open_deployment(
        label,
        case.dagster_yaml,
        case.postgres_storage,
        postgres_server,
        tmp_path / "dagster_home",
        monkeypatch,
    ) as deployment:
        yield deployment


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(720)
@pytest.mark.parametrize("deployment", CASES, indirect=True)
def test_a_ui_backfill_of_every_partition_syncs_and_materialises_each_through_webserver_and_daemon(
    deployment: Deployment,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = write_fleet(tmp_path / "fleet", TENANTS)
    partitions = fleet.partitions
    assert len(partitions) >= 20
    instance = deployment.instance
    instance.add_dynamic_partitions("tenants", list(fleet.tenants))
    instance.add_dynamic_partitions("selections", list(fleet.selections))

    env = service_env(deployment, fleet, tmp_path / "state", BATCH_SIZE)
    with webserver_and_daemon(env, tmp_path / "logs", READY_TIMEOUT) as (graphql, services):
        started = time.perf_counter()
        backfill_id = graphql.launch_backfill_of_all_partitions(ASSETS)
        state = graphql.wait_for_backfill(backfill_id, services, BACKFILL_TIMEOUT)
        wall = time.perf_counter() - started
        assert state["status"] in SUCCEEDED_BACKFILL, (
            f"backfill {backfill_id} ended {state['status']}: {state}"
        )

        runs = list(instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id})))
        run_ids = {run.run_id for run in runs}
        with capsys.disabled():  # in `make test`'s output, passed or not
            print(
                f"\nbackfill {backfill_id} ({deployment.label}): {len(partitions)} partitions "
                f"x {len(ASSETS)} assets, {len(runs)} runs launched, {wall:.1f} s"
            )
        record_property("backfill_partitions", len(partitions))
        record_property("backfill_runs", len(runs))
        record_property("backfill_seconds", round(wall, 1))
        # batched: a run carries up to TENANTATLAS_BATCH_SIZE partitions, not one each
        assert 0 < len(runs) <= math.ceil(len(partitions) / BATCH_SIZE) + 1, len(runs)
        assert {run.run_id for run in runs} == {r["id"] for r in state["runs"]}  # GraphQL agrees
        assert {run.status for run in runs} == {DagsterRunStatus.SUCCESS}, [
            (r.run_id, r.status) for r in runs
        ]
        # the sensor found every partition known and launched nothing: the backfill's runs are all
        assert instance.get_runs_count() == len(runs)

        _assert_one_successful_sync_per_partition(deployment.inventory_url, partitions, run_ids)
        _assert_both_assets_materialised_per_partition(instance, partitions, run_ids)


def _assert_one_successful_sync_per_partition(
    inventory_url: str, partitions: list[tuple[str, str]], run_ids: set[str]
) -> None:
    by_partition = sync_rows(inventory_url)
    assert set(by_partition) == set(partitions), sorted(set(partitions) ^ set(by_partition))
    for partition, syncs in sorted(by_partition.items()):
        assert len(syncs) == 1, f"{partition}: {syncs}"
        status, dagster_run_id = syncs[0]
        assert status == "success", f"{partition}: sync run {status}"
        assert dagster_run_id in run_ids, (
            f"{partition}: sync run of Dagster run {dagster_run_id}, not the backfill's"
        )


def _assert_both_assets_materialised_per_partition(
    instance: dg.DagsterInstance, partitions: list[tuple[str, str]], run_ids: set[str]
) -> None:
    keys = {partition_str(tenant, selection) for tenant, selection in partitions}
    for asset in ASSETS:
        asset_key = dg.AssetKey(asset)
        assert instance.get_materialized_partitions(asset_key) == keys, asset
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=sorted(keys)), limit=10 * len(keys)
        ).records
        by_partition: dict[str | None, set[str]] = {}
        for record in records:
            by_partition.setdefault(record.partition_key, set()).add(record.run_id)
        assert set(by_partition) == keys, f"{asset}: {sorted(keys ^ set(k for k in by_partition if k))}"
        for key, materialised_by in sorted(by_partition.items(), key=lambda kv: str(kv[0])):
            assert materialised_by <= run_ids, f"{asset} {key}: materialised by {materialised_by - run_ids}"
