"""The run queue of the repo's dagster.yaml, driven by Dagster's queued-run-coordinator daemon in-process.

Runs of ``inventory_sync`` are submitted for multi-partitions (Dagster tags them ``dagster/partition``
and ``dagster/partition/tenant``); the daemon dequeues them onto a mocked launcher. The limits are read
from the repo's dagster.yaml, so these tests fail when the file loses one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from runqueue_support import (
    BACKFILL_TAG,
    PARTITION_TAG,
    TENANT_TAG,
    QueueHarness,
    QueueLimits,
    queue_harness,
    repo_dagster_config,
)


@pytest.fixture
def limits() -> QueueLimits:
    return QueueLimits.from_config(repo_dagster_config())


@pytest.fixture
def harness() -> Iterator[QueueHarness]:
    with queue_harness(repo_dagster_config()) as h:
        yield h


def test_the_repo_dagster_yaml_sets_every_run_queue_limit_of_the_contract(limits: QueueLimits) -> None:
    assert limits.max_concurrent_runs >= 1
    partition = limits.one(PARTITION_TAG)
    assert partition.per_unique_value and partition.limit == 1  # one run per tenant+selection
    tenant = limits.one(TENANT_TAG)
    assert tenant.per_unique_value and 1 <= tenant.limit < limits.max_concurrent_runs
    backfill = limits.one(BACKFILL_TAG)
    assert not backfill.per_unique_value and backfill.value is None
    assert 1 <= backfill.limit < limits.max_concurrent_runs  # backfills leave room for other runs
    assert limits.pool_limit is not None and limits.pool_limit >= 1  # the msgraph pool


def _assert_within_limits(harness: QueueHarness, limits: QueueLimits) -> None:
    running = harness.in_progress()
    assert len(running) <= limits.capacity <= limits.max_concurrent_runs
    for key, limit in ((PARTITION_TAG, limits.one(PARTITION_TAG)), (TENANT_TAG, limits.one(TENANT_TAG))):
        per_value = Counter(run.tags[key] for run in running)
        assert max(per_value.values(), default=0) <= limit.limit, (key, per_value)


def test_the_queue_launches_one_run_per_partition_n_per_tenant_and_at_most_the_global_max(
    harness: QueueHarness, limits: QueueLimits
) -> None:
    per_tenant = limits.one(TENANT_TAG).limit
    assert per_tenant >= 2, "with 1 run per tenant the partition limit could never bind on its own"
    assert limits.capacity >= per_tenant + 2, (
        "the global (or msgraph pool) limit leaves no room past a tenant"
    )
    # a partition submitted twice (its tenant stays under the tenant limit) ...
    rerun = [("fabrikam", "all"), ("fabrikam", "all")]
    # ... a tenant with one run more than its limit ...
    busy = [("contoso", f"sel{i}") for i in range(per_tenant + 1)]
    # ... and enough single-partition tenants that the eligible runs exceed the global max
    others = [(f"tenant{i}", "all") for i in range(limits.capacity - per_tenant)]
    planned = rerun + busy + others
    harness.add_partitions((t for t, _ in planned), (s for _, s in planned))
    submitted = [harness.submit(tenant, selection) for tenant, selection in planned]
    ids = dict(zip(submitted, planned, strict=True))
    first_id, duplicate_id = submitted[0], submitted[1]

    queued = harness.queued()
    assert {run_id for run_id, _ in queued} == set(ids)
    for run_id, tags in queued:  # Dagster's tags of our multi-partition, as the limits expect them
        tenant, selection = ids[run_id]
        assert tags[PARTITION_TAG] == f"{selection}|{tenant}" and tags[TENANT_TAG] == tenant

    # every limit of the file binds in this queue: without it, another set would be launched
    expected = limits.launchable(queued, [])
    for name in (PARTITION_TAG, TENANT_TAG):
        assert limits.without(limits.one(name)).launchable(queued, []) != expected, name
    assert limits.unbounded().launchable(queued, []) != expected

    launched = harness.dequeue()
    assert launched == set(expected)
    assert len(launched) == limits.capacity
    assert first_id in launched and duplicate_id not in launched
    assert sum(1 for run_id in launched if ids[run_id][0] == "contoso") == per_tenant
    assert submitted[-1] not in launched  # eligible by every tag limit, cut by the global max
    _assert_within_limits(harness, limits)

    assert harness.dequeue() == set()  # nothing more while the launched runs are in progress

    # as runs finish, the queue drains, never past a limit, until every run was launched
    done = set(launched)
    for _ in range(len(planned)):
        if not harness.queued():
            break
        harness.finish(launched)
        queued = harness.queued()
        expected = limits.launchable(queued, [run.tags for run in harness.in_progress()])
        launched = harness.dequeue()
        assert launched == set(expected) and launched
        _assert_within_limits(harness, limits)
        done |= launched
    assert done == set(ids)


def test_a_running_partition_blocks_its_queued_rerun_but_not_other_partitions(
    harness: QueueHarness, limits: QueueLimits
) -> None:
    harness.add_partitions(["contoso", "fabrikam"], ["all", "compliance"])
    first = harness.submit("contoso", "all")
    assert harness.dequeue() == {first}
    rerun = harness.submit("contoso", "all")
    other_selection = harness.submit("contoso", "compliance")
    other_tenant = harness.submit("fabrikam", "all")
    assert harness.dequeue() == {other_selection, other_tenant}
    harness.finish([first])
    assert harness.dequeue() == {rerun}
    _assert_within_limits(harness, limits)


def test_backfill_runs_leave_room_for_scheduled_runs(harness: QueueHarness, limits: QueueLimits) -> None:
    backfill_limit = limits.one(BACKFILL_TAG).limit
    assert limits.capacity > backfill_limit, (
        "the global (or msgraph pool) limit leaves backfills all the room"
    )
    # more backfill runs than the limit, each of its own tenant (no tenant limit interferes)
    backfill = [(f"bf{i}", "all") for i in range(backfill_limit + 2)]
    scheduled = ("scheduled", "all")
    harness.add_partitions([t for t, _ in [*backfill, scheduled]], ["all"])
    backfill_ids = {harness.submit(t, s, tags={BACKFILL_TAG: "bkf-1"}) for t, s in backfill}
    scheduled_id = harness.submit(*scheduled, tags={"tenantatlas/trigger": "schedule"})

    expected = limits.launchable(harness.queued(), [])
    assert limits.without(limits.one(BACKFILL_TAG)).launchable(harness.queued(), []) != expected
    launched = harness.dequeue()
    assert launched == set(expected)
    assert len(launched & backfill_ids) == backfill_limit
    assert scheduled_id in launched  # queued behind the whole backfill, still launched
    _assert_within_limits(harness, limits)
