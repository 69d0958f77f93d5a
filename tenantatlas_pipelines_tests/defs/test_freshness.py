"""inventory_fresh is judged on its own clock against success/partial runs, so staleness shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.partitions import apply_partition_requests
from tenantatlas_pipelines.defs.sensors import inventory_freshness_sensor, registry_sensor
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY
from tenantatlas_pipelines.registry import load_registry
from tenantatlas_pipelines.sync.health import assess_freshness

WINDOW = timedelta(hours=26)


def _past_run(engine: Engine, tenant: str, selection: str, status: RunStatus, hours_ago: float) -> None:
    """A completed sync run of ``tenant`` x ``selection`` that ran ``hours_ago``."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    store = InventoryStore(engine, clock=lambda: at)
    sel = load_registry(DEMO_REGISTRY).selection(selection)
    start = store.start_run(store.tenant_pk(tenant), selection, sel.hash(), sel.canonical_json())
    store.finish_run(store.tenant_pk(tenant), start.run_id, RunOutcome(status=status))


def _evaluate(instance: dg.DagsterInstance, resources: dict, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    result = inventory_freshness_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_partition_whose_syncs_failed_for_a_day_or_never_ran_is_not_fresh(
    instance: dg.DagsterInstance, resources: dict, engine: Engine
) -> None:
    registered = registry_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(registered, dg.SensorResult)
    apply_partition_requests(instance, registered)
    _past_run(engine, "contoso", "all", RunStatus.SUCCESS, hours_ago=30)
    _past_run(engine, "contoso", "all", RunStatus.FAILED, hours_ago=2)  # completed, but not usable
    _past_run(engine, "contoso", "all", RunStatus.FAILED, hours_ago=1)
    _past_run(engine, "fabrikam", "all", RunStatus.PARTIAL, hours_ago=3)  # fresh
    _past_run(engine, "northwind", "all", RunStatus.SUCCESS, hours_ago=1)  # fresh

    first = _evaluate(instance, resources, cursor=None)
    verdicts = {e.partition: e for e in first.asset_events if isinstance(e, dg.AssetCheckEvaluation)}
    assert {key: e.passed for key, e in verdicts.items()} == {
        "all|contoso": False,  # failed syncs for a day: stale
        "compliance|contoso": False,  # never ran
        "compliance|fabrikam": False,
        "compliance|northwind": False,
    }
    assert all(
        e.check_name == "inventory_fresh" and e.severity is dg.AssetCheckSeverity.ERROR
        for e in verdicts.values()
    )
    assert "30.0 h ago" in (verdicts["all|contoso"].description or "")

    # nothing changed: nothing is reported again
    second = _evaluate(instance, resources, cursor=first.cursor)
    assert not second.asset_events

    # a successful sync of a stale partition turns it green on the next evaluation
    _past_run(engine, "contoso", "all", RunStatus.SUCCESS, hours_ago=0.1)
    third = _evaluate(instance, resources, cursor=second.cursor)
    assert [(e.partition, e.passed) for e in third.asset_events] == [("all|contoso", True)]  # type: ignore[union-attr]


def test_freshness_counts_success_and_partial_runs_only() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert assess_freshness(now - timedelta(hours=25), now, WINDOW).fresh
    assert not assess_freshness(now - timedelta(hours=27), now, WINDOW).fresh
    assert not assess_freshness(None, now, WINDOW).fresh
