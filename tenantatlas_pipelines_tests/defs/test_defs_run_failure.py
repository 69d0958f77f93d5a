"""The run-failure and run-canceled sensors: a sync run whose Dagster run died is marked failed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.sensors import sync_run_canceled_sensor, sync_run_failure_sensor
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

JOB = "inventory_sync"


@dataclass(frozen=True)
class Death:
    """How a Dagster run dies: the instance report and the sensor that reacts to it."""

    name: str
    sensor: dg.SensorDefinition
    report: Callable[[dg.DagsterInstance, dg.DagsterRun], dg.DagsterEvent]
    status: dg.DagsterRunStatus
    failure_context: bool


DEATHS = [
    Death(
        "failed",
        sync_run_failure_sensor,
        lambda instance, run: instance.report_run_failed(run, "step crashed"),
        dg.DagsterRunStatus.FAILURE,
        True,
    ),
    Death(
        "terminated",
        sync_run_canceled_sensor,
        lambda instance, run: instance.report_run_canceled(run, "terminated from the UI"),
        dg.DagsterRunStatus.CANCELED,
        False,
    ),
]


def _hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _start_sync(store: InventoryStore, tenant_pk: int, selection: str, dagster_run_id: str) -> int:
    start = store.start_run(
        tenant_pk, selection, _hash(selection), f'{{"name":"{selection}"}}', dagster_run_id=dagster_run_id
    )
    assert start.status is RunStatus.RUNNING
    return start.run_id


def _dagster_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    run = create_run_for_test(instance, job_name=JOB, status=dg.DagsterRunStatus.STARTED)
    assert isinstance(run, dg.DagsterRun)
    return run


def _kill_and_sense(instance: dg.DagsterInstance, run: dg.DagsterRun, death: Death, resources: dict) -> None:
    event = death.report(instance, run)
    dead = instance.get_run_by_id(run.run_id)
    assert dead is not None and dead.status is death.status
    context = dg.build_run_status_sensor_context(
        sensor_name=death.sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=dead,
        resources={"database": resources["database"]},
    )
    death.sensor(context.for_run_failure() if death.failure_context else context)


@pytest.fixture(params=DEATHS, ids=[d.name for d in DEATHS])
def death(request: pytest.FixtureRequest) -> Death:
    return request.param  # type: ignore[no-any-return]


def test_the_sync_run_of_a_dead_dagster_run_is_marked_failed_run_abandoned(
    death: Death,
    instance: dg.DagsterInstance,
    resources: dict,
    store: InventoryStore,
    tenant_factory: Callable,
) -> None:
    contoso, fabrikam = tenant_factory("contoso"), tenant_factory("fabrikam")
    dying, alive = _dagster_run(instance), _dagster_run(instance)
    victim = _start_sync(store, contoso, "all", dying.run_id)
    bystander = _start_sync(store, contoso, "compliance", alive.run_id)
    other_tenant = _start_sync(store, fabrikam, "all", alive.run_id)

    _kill_and_sense(instance, dying, death, resources)

    row = store.get_run(contoso, victim)
    assert row.status is RunStatus.FAILED
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.error_codes == ["run_abandoned"] and row.had_errors
    messages = [e["message"] for errors in row.error_context.values() for e in errors]
    assert any(dying.run_id in m for m in messages), messages
    for tenant_pk, run_id in ((contoso, bystander), (fabrikam, other_tenant)):
        untouched = store.get_run(tenant_pk, run_id)
        assert untouched.status is RunStatus.RUNNING and untouched.finished_at is None
        assert untouched.error_codes == []
    # the lock of the dead run's partition is free again: the next sync runs
    assert store.start_run(contoso, "all", _hash("all"), '{"name":"all"}').status is RunStatus.RUNNING


def test_a_sync_run_that_already_finished_is_not_changed(
    death: Death,
    instance: dg.DagsterInstance,
    resources: dict,
    store: InventoryStore,
    tenant_factory: Callable,
) -> None:
    contoso = tenant_factory("contoso")
    run = _dagster_run(instance)
    sync_id = _start_sync(store, contoso, "all", run.run_id)
    outcome = RunOutcome(
        status=RunStatus.SUCCESS,
        type_results={"deviceCategory": TypeResult("deviceCategory", TypeOutcome.SUCCESS, items=3, pages=1)},
        items_observed=3,
        items_upserted=3,
    )
    store.finish_run(contoso, sync_id, outcome)
    before = store.get_run(contoso, sync_id)

    _kill_and_sense(instance, run, death, resources)

    after = store.get_run(contoso, sync_id)
    assert after == before
    assert after.status is RunStatus.SUCCESS and after.error_codes == []
