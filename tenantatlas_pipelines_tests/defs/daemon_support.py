"""Helpers of the daemon-path failure-sensor test: a real instance, `dagster-daemon run`, and runs
launched as the UI's Materialize button launches them.

- The instance: the repo's ``dagster.yaml`` in a temporary ``DAGSTER_HOME`` (SQLite run, event-log
  and schedule storage), only the run monitoring poll shortened.
- The daemon: the installed ``dagster-daemon run`` on the repo's ``workspace.yaml``, in its own
  process group (its code server and the run workers it launches included), output in a file.
- A launch: the GraphQL ``launchPipelineExecution`` mutation the asset page's Materialize button
  sends (the implicit asset job ``__ASSET_JOB``, an asset selection, the partition tags),
  executed in-process on the schema the webserver serves; the run is queued and the daemon's run
  queue launches it (the default run launcher: a run worker process under the daemon's code server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import psutil
import yaml
from dagster._core.scheduler.instigation import InstigatorType
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.test.utils import execute_dagster_graphql
from sqlalchemy import select
from sqlalchemy.engine import Engine

import tenantatlas_pipelines
from tenantatlas_pipelines.db.schema import inventory_sync_runs
from tenantatlas_pipelines.defs.checks import INVENTORY_FRESH, LAST_SYNC_SUCCEEDED
from tenantatlas_pipelines.inventory.settings import DEMO_SCENARIO

REPO_ROOT = Path(tenantatlas_pipelines.__file__).resolve().parent.parent
WORKSPACE = REPO_ROOT / "workspace.yaml"
DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
DAEMON = Path(sys.executable).parent / "dagster-daemon"
LOCATION = "tenantatlas_pipelines"
REPOSITORY = "__repository__"
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
ITEMS_CHECKS = (LAST_SYNC_SUCCEEDED, INVENTORY_FRESH)  # the checks of inventory_items

# what LaunchAssetExecutionButton sends for one partition of one asset (with its checks)
LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, *, on_timeout: Callable[[], str] = str
) -> T:
    """Poll ``probe`` until it returns something truthy; TimeoutError naming ``what`` and ``on_timeout()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s\n{on_timeout()}")
        time.sleep(0.25)


def write_instance_home(home: Path, monitoring_poll_seconds: int = 2) -> Path:
    """The repo's dagster.yaml in ``home`` (a DAGSTER_HOME), with a shorter run monitoring poll."""
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    assert isinstance(config, dict), f"{DAGSTER_YAML} is not a mapping"
    monitoring = config.setdefault("run_monitoring", {})
    monitoring.update({"enabled": True, "poll_interval_seconds": monitoring_poll_seconds})
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def write_slow_scenario(path: Path, tenant_id: str, delay_seconds: float) -> Path:
    """The demo scenario with every list request of one tenant answered after ``delay_seconds``."""
    scenario = yaml.safe_load(DEMO_SCENARIO.read_text())
    tenants = [t for t in scenario["tenants"] if t["tenant_id"] == tenant_id]
    assert len(tenants) == 1, f"tenant {tenant_id} is not in {DEMO_SCENARIO}"
    tenants[0]["faults"] = [*tenants[0].get("faults", []), {"kind": "slow", "delay_seconds": delay_seconds}]
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


@dataclass
class Daemon:
    """``dagster-daemon run`` in its own process group (code server and run workers below it)."""

    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, env: Mapping[str, str], log: Path) -> Daemon:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(DAEMON), "run", "-w", str(WORKSPACE)],
                cwd=REPO_ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc, log)

    def tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no output)"
        head = f"----- dagster-daemon (exit {self.proc.poll()}), last {chars} chars of {self.log} -----"
        return f"{head}\n{text[-chars:]}"

    def descendants(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a process this daemon started (a code server or a run worker)."""
        return pid in {p.pid for p in self.descendants()}

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the group, SIGKILL what outlives ``timeout`` (descendants that left the group too)."""
        descendants = self.descendants()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        _, alive = psutil.wait_procs(descendants, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def workspace(instance: dg.DagsterInstance) -> Iterator[WorkspaceProcessContext]:
    """The repo's workspace.yaml as the webserver loads it (a code server of its own)."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as context:
        yield context


def _graphql(context: WorkspaceRequestContext, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    result = execute_dagster_graphql(context, query, dict(variables))
    assert not result.errors, result.errors
    data = result.data
    assert isinstance(data, dict)
    return data


def materialize_button(
    process: WorkspaceProcessContext, asset: str, partition: str, dimensions: Mapping[str, str]
) -> str:
    """Launch one partition of ``asset`` as the asset page's Materialize button does; the run id."""
    tags = [{"key": "dagster/partition", "value": partition}] + [
        {"key": f"dagster/partition/{dim}", "value": value} for dim, value in dimensions.items()
    ]
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "pipelineName": IMPLICIT_ASSET_JOB,
            "assetSelection": [{"path": [asset]}],
            "assetCheckSelection": [{"assetKey": {"path": [asset]}, "name": name} for name in ITEMS_CHECKS],
        },
        "mode": "default",
        "executionMetadata": {"tags": tags},
    }
    data = _graphql(process.create_request_context(), LAUNCH, {"executionParams": params})
    result = data["launchPipelineExecution"]
    assert result["__typename"] == "LaunchRunSuccess", f"run not launched: {result}"
    return str(result["run"]["runId"])


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker process, from its "Started process for run (pid: N)." engine event."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is None or not (record.message or "").startswith("Started process for run"):
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(str(pid.value))
    return None


def sensor_ticks(instance: dg.DagsterInstance, sensor: str) -> list[Any]:
    """The ticks the daemon recorded for ``sensor`` (newest first)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100))
    return []


def sync_rows(engine: Engine, dagster_run_id: str) -> list[dict[str, Any]]:
    """The raw inventory_sync_runs rows a Dagster run wrote."""
    runs = inventory_sync_runs
    with engine.connect() as conn:
        rows = conn.execute(select(runs).where(runs.c.dagster_run_id == dagster_run_id).order_by(runs.c.id))
        return [dict(row) for row in rows.mappings()]


def run_status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None, f"no Dagster run {run_id}"
    return run.status


def event_messages(
    instance: dg.DagsterInstance, run_id: str, types: Sequence[dg.DagsterEventType]
) -> list[str]:
    """``TYPE: message`` of the run's raw events of these types."""
    return [
        f"{record.dagster_event.event_type_value}: {record.message}"
        for record in instance.all_logs(run_id)
        if record.dagster_event is not None and record.dagster_event.event_type in types
    ]
