"""Helpers of the run-queue tests: the repo's dagster.yaml limits, runs submitted through a workspace
of the real code location, and an independent model of which queued runs may be launched.

The instance is built from the repo's ``dagster.yaml`` itself (only the run launcher is swapped for
Dagster's ``MockedRunLauncher``, so a dequeued run is only recorded as launched, never executed).
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES, DagsterRunStatus, RunsFilter
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

import tenantatlas_pipelines
from tenantatlas_pipelines.defs.partitions import partition_key

REPO_ROOT = Path(tenantatlas_pipelines.__file__).resolve().parent.parent
DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
JOB_NAME = "inventory_sync"
PARTITION_TAG = "dagster/partition"
TENANT_TAG = "dagster/partition/tenant"
BACKFILL_TAG = "dagster/backfill"
MOCKED_LAUNCHER = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}


def repo_dagster_config() -> dict[str, Any]:
    """The repo's dagster.yaml, as the instance loads it."""
    config = yaml.safe_load(DAGSTER_YAML.read_text())
    assert isinstance(config, dict), f"{DAGSTER_YAML} is not a mapping"
    return config


@dataclass(frozen=True)
class TagLimit:
    key: str
    limit: int
    value: str | None = None  # one value only
    per_unique_value: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> TagLimit:
        value = raw.get("value")
        if isinstance(value, Mapping):
            return cls(raw["key"], int(raw["limit"]), None, bool(value.get("applyLimitPerUniqueValue")))
        return cls(raw["key"], int(raw["limit"]), value, False)

    def bucket(self, tags: Mapping[str, str]) -> tuple[str, ...] | None:
        """The counter a run with ``tags`` counts against, or None when the limit ignores it."""
        if self.key not in tags or (self.value is not None and tags[self.key] != self.value):
            return None
        return (self.key, tags[self.key]) if self.per_unique_value else (self.key,)


@dataclass(frozen=True)
class QueueLimits:
    """The run-queue limits of a dagster.yaml.

    ``pool_limit`` is the default pool limit, the one of the ``msgraph`` pool: every inventory_sync
    run has one root step in that pool, and a launched (STARTING) run holds its slot, so the queue
    also launches at most that many such runs at a time.
    """

    max_concurrent_runs: int
    tag_limits: tuple[TagLimit, ...]
    pool_limit: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QueueLimits:
        concurrency = config.get("concurrency") or {}
        runs = concurrency.get("runs") or {}
        assert "max_concurrent_runs" in runs, f"{DAGSTER_YAML}: no concurrency.runs.max_concurrent_runs"
        pool_limit = (concurrency.get("pools") or {}).get("default_limit")
        return cls(
            int(runs["max_concurrent_runs"]),
            tuple(TagLimit.parse(raw) for raw in runs.get("tag_concurrency_limits") or []),
            int(pool_limit) if pool_limit is not None else None,
        )

    @property
    def capacity(self) -> int:
        """How many inventory_sync runs may be in progress at once (global and pool limit)."""
        return min(x for x in (self.max_concurrent_runs, self.pool_limit) if x is not None)

    def one(self, key: str) -> TagLimit:
        found = [limit for limit in self.tag_limits if limit.key == key]
        assert len(found) == 1, f"{DAGSTER_YAML}: expected one tag concurrency limit on {key!r}, got {found}"
        return found[0]

    def without(self, limit: TagLimit) -> QueueLimits:
        kept = tuple(x for x in self.tag_limits if x != limit)
        return QueueLimits(self.max_concurrent_runs, kept, self.pool_limit)

    def unbounded(self) -> QueueLimits:
        """Without the global limit (and without the pool limit, which is as large)."""
        return QueueLimits(-1, self.tag_limits, None)

    def launchable(
        self, queued: Sequence[tuple[str, Mapping[str, str]]], in_progress: Iterable[Mapping[str, str]]
    ) -> list[str]:
        """Which of the FIFO ``queued`` (run id, tags) may start next to the ``in_progress`` runs."""
        running = list(in_progress)
        counts: Counter[tuple[str, ...]] = Counter()
        for tags in running:
            for limit in self.tag_limits:
                if (bucket := limit.bucket(tags)) is not None:
                    counts[(limit.key, *bucket)] += 1
        picked: list[str] = []
        for run_id, tags in queued:
            buckets = [(limit, limit.bucket(tags)) for limit in self.tag_limits]
            if any(b is not None and counts[(limit.key, *b)] >= limit.limit for limit, b in buckets):
                continue
            for limit, b in buckets:  # as Dagster does, before (and whether or not) the pool blocks
                if b is not None:
                    counts[(limit.key, *b)] += 1
            if self.pool_limit is not None and len(running) + len(picked) >= self.pool_limit:
                continue
            picked.append(run_id)
        if self.max_concurrent_runs >= 0:
            picked = picked[: max(0, self.max_concurrent_runs - len(running))]
        return picked


@dataclass
class QueueHarness:
    """A queued-run-coordinator instance (the repo's dagster.yaml) with the real code location."""

    instance: dg.DagsterInstance
    process_context: WorkspaceProcessContext
    daemon: QueuedRunCoordinatorDaemon

    def add_partitions(self, tenants: Iterable[str], selections: Iterable[str]) -> None:
        self.instance.add_dynamic_partitions("tenants", sorted(set(tenants)))
        self.instance.add_dynamic_partitions("selections", sorted(set(selections)))

    @functools.cached_property
    def _code(self) -> tuple[Any, Any, Any, Any]:
        """The job definition, repository, remote job and execution plan (one per harness)."""
        from tenantatlas_pipelines.definitions import defs

        context = self.process_context.create_request_context()
        location = next(iter(context.get_code_location_entries().values())).code_location
        assert location is not None
        repository = next(iter(location.get_repositories().values()))
        remote_job = repository.get_full_job(JOB_NAME)
        plan = location.get_execution_plan(
            remote_job, {}, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        return defs.resolve_job_def(JOB_NAME), repository, remote_job, plan.execution_plan_snapshot

    def submit(self, tenant: str, selection: str, tags: Mapping[str, str] | None = None) -> str:
        """Create and submit a run of inventory_sync for one partition, as a sensor or the UI would."""
        job_def, repository, remote_job, plan_snapshot = self._code
        request = dg.RunRequest(partition_key=str(partition_key(tenant, selection)), tags=dict(tags or {}))
        request = request.with_resolved_tags_and_config(
            target_definition=job_def, dynamic_partitions_requests=[], dynamic_partitions_store=self.instance
        )
        assert not request.run_config  # the plan above was made for the empty run config
        run = self.instance.create_run(
            job_name=JOB_NAME,
            run_id=None,
            run_config=request.run_config,
            resolved_op_selection=None,
            step_keys_to_execute=None,
            status=DagsterRunStatus.NOT_STARTED,
            op_selection=None,
            root_run_id=None,
            parent_run_id=None,
            tags=dict(request.tags),
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )
        submitted = self.instance.submit_run(run.run_id, self.process_context.create_request_context())
        assert submitted.status is DagsterRunStatus.QUEUED, submitted.status
        return run.run_id

    def queued(self) -> list[tuple[str, Mapping[str, str]]]:
        runs = self.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED]), ascending=True)
        return [(run.run_id, run.tags) for run in runs]

    def in_progress(self) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(RunsFilter(statuses=list(ACTIVE_RUN_STATUSES))))

    def dequeue(self) -> set[str]:
        """One iteration of the queued-run-coordinator daemon; returns the ids it launched."""
        launcher: Any = self.instance.run_launcher
        before = {run.run_id for run in launcher.queue()}
        list(self.daemon.run_iteration(self.process_context))
        return {run.run_id for run in launcher.queue()} - before

    def finish(self, run_ids: Iterable[str]) -> None:
        """Report launched runs as succeeded (they leave the in-progress set)."""
        for run_id in run_ids:
            event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=JOB_NAME)
            self.instance.report_dagster_event(event, run_id=run_id)


@contextmanager
def queue_harness(config: Mapping[str, Any]) -> Iterator[QueueHarness]:
    overrides = {**config, "run_launcher": MOCKED_LAUNCHER}
    with dg.instance_for_test(overrides=overrides) as instance:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name="tenantatlas_pipelines.definitions",
                working_directory=str(REPO_ROOT),
            )
        )
        with (
            WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process_context,
            QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon,
        ):
            yield QueueHarness(instance, process_context, daemon)
