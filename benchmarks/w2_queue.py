"""W2 through the run queue and the daemon: one run per tenant, the path a schedule's runs take.

Submits one run per tenant (selection ``all``) to the instance's QueuedRunCoordinator
(the limits of the project's dagster.yaml), runs ``dagster-daemon run`` on the same
instance, and waits until every run has finished. With ``empty`` the runs are of an
asset that does nothing, on the same partitions (Dagster's own floor on this path).
Wall time: from the first submission to the end of the last run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._cli.job import _create_run
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from benchmarks.common import PROJECT_ROOT, SELECTION, write_yaml

DONE = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def work(args: dict[str, Any]) -> dict[str, Any]:
    home = Path(args["home"])
    module = "benchmarks.w2_defs" if args["empty"] else "tenantatlas_pipelines.definitions"
    job_name = "empty_job" if args["empty"] else "inventory_sync"
    workspace = write_yaml(
        home / "workspace.yaml",
        {
            "load_from": [
                {
                    "python_module": {
                        "module_name": module,
                        "attribute": "defs",
                        "working_directory": str(PROJECT_ROOT),
                        "location_name": "bench",
                    }
                }
            ]
        },
    )
    tenants: list[str] = args["tenants"]
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("tenants", tenants)
    instance.add_dynamic_partitions("selections", [SELECTION])
    log = (home / "daemon.log").open("w")
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        request = context.create_request_context()
        location = request.get_code_location("bench")
        repo = next(iter(location.get_repositories().values()))
        remote_job = repo.get_full_job(job_name)
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
        )
        try:
            started = time.perf_counter()
            for tenant in tenants:
                tags = {
                    "dagster/partition": f"{SELECTION}|{tenant}",
                    "dagster/partition/selection": SELECTION,
                    "dagster/partition/tenant": tenant,
                    "tenantatlas/trigger": "benchmark",
                }
                run = _create_run(
                    instance=instance,
                    code_location=location,
                    remote_repo=repo,
                    remote_job=remote_job,
                    run_config={},
                    tags=tags,
                    op_selection=None,
                    run_id=None,
                )
                instance.submit_run(run.run_id, request)
            submitted = time.perf_counter() - started
            deadline = time.monotonic() + args.get("timeout", 1800)
            while instance.get_runs_count(RunsFilter(statuses=DONE)) < len(tenants):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError(f"W2 runs did not finish (daemon log: {home / 'daemon.log'})")
                time.sleep(0.5)
            wall = time.perf_counter() - started
        finally:
            daemon.terminate()
            daemon.wait(30)
            log.close()
    failed = instance.get_runs_count(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED])
    )
    return {
        "runs": len(tenants),
        "failed": failed,
        "status": "all succeeded" if failed == 0 else f"{failed} failed",
        "submit_seconds": submitted,
        "wall_seconds": wall,
    }
