"""Launch a run of the ``inventory_sync`` job the way the webserver does, and wait for it.

The demo uses it so its runs are ordinary runs of the code location: launched through the
workspace (``workspace.yaml``: a code server process, then a run worker process by the
instance's run launcher), with the job's origin, so the UI's Overview timeline, the
runs list and the asset pages show them like any run started from the UI.
``dagster._cli.job._create_run`` is the helper Dagster's own ``dagster job launch`` uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._cli.job import _create_run
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from tenantatlas_pipelines.defs.partitions import inventory_partitions

JOB_NAME = "inventory_sync"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


class Launcher:
    """One workspace (one code server) for several launches."""

    def __init__(self, instance: dg.DagsterInstance, request: BaseWorkspaceRequestContext) -> None:
        self.instance = instance
        self.request = request

    def launch_batch(
        self,
        keys: Sequence[str],
        tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, object] | None = None,
    ) -> dg.DagsterRun:
        """Launch one run of ``inventory_sync`` over the contiguous partition range ``keys``.

        ``keys`` must be a contiguous range of the partitions definition's key order (as a
        backfill's batch is); one key launches a single-partition run with its
        ``dagster/partition`` tags.
        """
        all_keys = inventory_partitions.get_partition_keys(dynamic_partitions_store=self.instance)
        order = [str(key) for key in all_keys]
        positions = sorted(order.index(key) for key in keys)
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise ValueError("launch_batch needs a contiguous range of partition keys")
        first, last = order[positions[0]], order[positions[-1]]
        run_tags = dict(tags or {})
        if first == last:
            run_tags.update(inventory_partitions.get_tags_for_partition_key(first))
            run_tags["dagster/partition"] = first
        else:
            run_tags.update({RANGE_START_TAG: first, RANGE_END_TAG: last})
        location = self.request.get_code_location(self.request.code_location_names[0])
        repo = next(iter(location.get_repositories().values()))
        run = _create_run(
            instance=self.instance,
            code_location=location,
            remote_repo=repo,
            remote_job=repo.get_full_job(JOB_NAME),
            run_config=dict(run_config or {}),
            tags=run_tags,
            op_selection=None,
            run_id=None,
        )
        return self.instance.launch_run(run.run_id, self.request)

    def wait(self, run_id: str, timeout_seconds: float = 600.0) -> dg.DagsterRun:
        deadline = time.monotonic() + timeout_seconds
        while True:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.status in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not finish within {timeout_seconds:g}s")
            time.sleep(0.25)


@contextmanager
def launcher(instance: dg.DagsterInstance, workspace: Path) -> Iterator[Launcher]:
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
        yield Launcher(instance, context.create_request_context())
