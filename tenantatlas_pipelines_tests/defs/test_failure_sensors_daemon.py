"""The run-failure and run-canceled sensors through the daemon, for runs of the implicit asset job.

A run launched from the asset page's Materialize button runs as Dagster's implicit asset job
``__ASSET_JOB``, not as ``inventory_sync``. Here two such runs of one tenant are launched with
the UI's GraphQL mutation on a real instance (the repo's dagster.yaml in a temporary
DAGSTER_HOME); ``dagster-daemon run`` dequeues, launches and watches them while the simulator
keeps every Graph answer of that tenant waiting, so both syncs are mid-run:

- one run worker is killed with SIGKILL: Dagster marks the run FAILURE (the code server sees
  its worker die), and the daemon's run-failure sensor must mark the sync run failed;
- the other worker hangs (SIGSTOP), its run is marked CANCELED (``report_run_canceled``: how
  Dagster's force termination and the run monitor's cancel timeout end a run whose worker does
  not answer) and the hung process is killed; the run-canceled sensor must mark its sync run.

(A worker that answers a termination records its own sync run failed: the sync service's
interrupt handling; the sensors are for the workers that cannot.)

The sync rows are read raw from ``inventory_sync_runs``: each becomes ``failed`` with
``run_abandoned`` within a sensor interval (30 s), not after the 300 s lease; the raw event
log of each Dagster run holds the daemon's "Sensor ... acted on run status" event; then the
next run of each partition takes the lock and syncs (not ``skipped`` as ``lock_contended``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from daemon_support import (
    Daemon,
    event_messages,
    materialize_button,
    run_status,
    sensor_ticks,
    sync_rows,
    wait_for,
    worker_pid,
    workspace,
    write_instance_home,
    write_slow_scenario,
)
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY, DEMO_SECRETS
from tenantatlas_pipelines.registry import load_registry

pytestmark = pytest.mark.slow

TENANT = "contoso"
KILLED = "all"  # the selection of the run whose worker is killed
CANCELED = "compliance"  # the selection of the run marked canceled while its worker hangs
LEASE_SECONDS = 300.0  # InventoryStore's default lease
SENSOR_INTERVAL = 30.0  # the run-status sensors' default minimum interval
MARK_TIMEOUT = 120.0  # a sensor interval, with room for a loaded machine; far below the lease
STARTUP_TIMEOUT = 180.0  # the daemon, its code server and two run workers starting on a loaded machine
RUN_EVENTS = (
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
    dg.DagsterEventType.ENGINE_EVENT,
)
RUN_SENSORS = ("sync_run_failure_sensor", "sync_run_canceled_sensor")


def _key(selection: str) -> str:
    return f"{selection}|{TENANT}"


def _only_row(engine: Engine, run_id: str) -> dict[str, Any] | None:
    rows = sync_rows(engine, run_id)
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def _running(engine: Engine, run_id: str) -> dict[str, Any] | None:
    row = _only_row(engine, run_id)
    return row if row is not None and row["status"] == "running" else None


def _messages(row: dict[str, Any]) -> list[str]:
    return [str(error["message"]) for errors in row["error_context"].values() for error in errors]


@pytest.fixture
def daemon_env(db_url: str, demo_env: None, tmp_path: Path) -> dict[str, str]:
    """The environment of the daemon (its code server and run workers inherit it)."""
    contoso = load_registry(DEMO_REGISTRY).tenants[TENANT]
    scenario = write_slow_scenario(tmp_path / "slow_scenario.yaml", contoso.tenant_id, delay_seconds=600)
    return {
        **os.environ,
        **DEMO_SECRETS,
        "DAGSTER_HOME": str(write_instance_home(tmp_path / "dagster_home")),
        "TENANTATLAS_DATABASE_URL": db_url,
        "TENANTATLAS_REGISTRY": str(DEMO_REGISTRY),
        "TENANTATLAS_STATE_DIR": os.environ["TENANTATLAS_STATE_DIR"],
        "TENANTATLAS_SIMULATOR_SCENARIO": str(scenario),
    }


def _kill_and_cancel(
    instance: dg.DagsterInstance, daemon: Daemon, engine: Engine, runs: dict[str, str]
) -> float:
    """Kill one run's worker, cancel the other's while it hangs; seconds until both rows are marked."""
    for selection, run_id in runs.items():
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "__ASSET_JOB"
        row = wait_for(
            f"the sync run of {_key(selection)} running",
            lambda r=run_id: _running(engine, r),  # type: ignore[misc]
            STARTUP_TIMEOUT,
            on_timeout=daemon.tail,
        )
        assert row["selection_key"] == selection
    pids = {
        selection: wait_for(f"the worker of {run_id}", lambda r=run_id: worker_pid(instance, r), 10)  # type: ignore[misc]
        for selection, run_id in runs.items()
    }
    for pid in pids.values():
        assert daemon.owns(pid), f"pid {pid} is not a run worker of the daemon started here"

    died = time.monotonic()
    os.kill(pids[KILLED], signal.SIGKILL)
    os.kill(pids[CANCELED], signal.SIGSTOP)
    hung = instance.get_run_by_id(runs[CANCELED])
    assert hung is not None
    instance.report_run_canceled(hung, "forcibly terminated: the run worker does not answer")
    os.kill(pids[CANCELED], signal.SIGKILL)

    wait_for(
        "the killed run FAILURE",
        lambda: run_status(instance, runs[KILLED]) is dg.DagsterRunStatus.FAILURE,
        60,
        on_timeout=lambda: f"{event_messages(instance, runs[KILLED], RUN_EVENTS)}\n{daemon.tail()}",
    )
    assert run_status(instance, runs[CANCELED]) is dg.DagsterRunStatus.CANCELED
    wait_for(
        "both sync runs marked (no longer running)",
        lambda: all(_running(engine, r) is None for r in runs.values()),
        MARK_TIMEOUT,
        on_timeout=daemon.tail,
    )
    return time.monotonic() - died


def test_a_killed_or_canceled_materialize_button_run_is_marked_failed_by_the_daemon_and_the_lock_freed(
    db_url: str, engine: Engine, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    registry = load_registry(DEMO_REGISTRY)
    with dg.DagsterInstance.from_config(daemon_env["DAGSTER_HOME"]) as instance:
        # a deployment whose registry sensor already added the partitions (it launches nothing)
        instance.add_dynamic_partitions("tenants", sorted(registry.tenants))
        instance.add_dynamic_partitions("selections", sorted(registry.selections))
        daemon = Daemon.start(daemon_env, tmp_path / "daemon.log")
        try:
            with workspace(instance) as process:
                # a run-status sensor's first tick only sets its cursor: it ticks before the deaths
                for sensor in RUN_SENSORS:
                    wait_for(
                        f"{sensor}'s first tick",
                        lambda s=sensor: sensor_ticks(instance, s),  # type: ignore[misc]
                        STARTUP_TIMEOUT,
                        on_timeout=daemon.tail,
                    )
                runs = {
                    selection: materialize_button(
                        process, "inventory_items", _key(selection), dict(selection=selection, tenant=TENANT)
                    )
                    for selection in (KILLED, CANCELED)
                }
                marked_after = _kill_and_cancel(instance, daemon, engine, runs)
        finally:
            daemon.stop()

        # the daemon's sensors marked each sync run failed (run_abandoned), long before the lease
        print(f"sync runs marked failed {marked_after:.1f} s after the deaths (lease {LEASE_SECONDS:.0f} s)")
        assert marked_after < MARK_TIMEOUT < LEASE_SECONDS
        how = {
            KILLED: ("failed", "sync_run_failure_sensor", "FAILURE"),
            CANCELED: ("was terminated", "sync_run_canceled_sensor", "CANCELED"),
        }
        for selection, run_id in runs.items():
            why, sensor, status = how[selection]
            row = _only_row(engine, run_id)
            assert row is not None
            assert (row["status"], row["error_codes"]) == ("failed", ["run_abandoned"]), row
            assert row["finished_at"] is not None
            assert f"Dagster run {run_id} {why} before the sync finished" in _messages(row), row
            acted = f'ENGINE_EVENT: Sensor "{sensor}" acted on run status {status} of run {run_id}.'
            assert acted in event_messages(instance, run_id, RUN_EVENTS)

        # the next run of each partition takes the lock and syncs
        resources = {
            "database": InventoryDatabase(url=db_url),
            "registry": RegistryResource(path=str(DEMO_REGISTRY)),
        }
        for selection in (KILLED, CANCELED):
            result = dg.materialize(
                [inventory_assets], partition_key=_key(selection), instance=instance, resources=resources
            )
            assert result.success
            rows = sync_rows(engine, result.run_id)
            assert [(r["status"], r["error_codes"]) for r in rows] == [("success", [])], rows
