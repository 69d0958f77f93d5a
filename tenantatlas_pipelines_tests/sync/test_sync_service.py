from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sync_support import (
    ALL,
    COMPLIANCE,
    SECRET_A,
    TENANT_B,
    entry,
    simulator,
    tenant_scenario,
)

from tenantatlas_pipelines.db.schema import inventory_items, inventory_sync_runs, tenants
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import ErrorCode, SyncFailedError, TenantAtlasError
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus
from tenantatlas_pipelines.registry import RegistryError
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.sync.graph_factory import graph_factory
from tenantatlas_pipelines.sync.missing import derive_missing
from tenantatlas_pipelines.sync.service import SyncRequest, SyncService


def _ids(store: InventoryStore, tenant_key: str, policy_type: str) -> set[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(inventory_items.c.external_id).where(
                inventory_items.c.tenant_id == store.tenant_pk(tenant_key),
                inventory_items.c.policy_type == policy_type,
            )
        )
        return {r[0] for r in rows}


def test_healthy_tenant_syncs_every_type_completely(store: InventoryStore, make_syncer: Callable) -> None:
    sim = simulator()
    result = make_syncer(sim)()
    assert result.status is RunStatus.SUCCESS
    assert result.outcome is not None and not result.outcome.had_errors
    total = 0
    for policy_type in ALL.resolve():
        expected = sim.expected_item_ids(tenant_scenario().tenant_id, policy_type)
        assert _ids(store, "a", policy_type) == expected, policy_type
        total += len(expected)
    assert result.outcome.items_observed == total
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.status is RunStatus.SUCCESS and run.finished_at is not None
    assert run.items_observed_count == total
    assert run.type_results["settingsCatalogPolicy"]["pages"] >= 60 // 25


def test_the_sync_only_reads_from_graph(make_syncer: Callable) -> None:
    sim = simulator()
    make_syncer(sim)()
    writes = [
        (r.method, r.path)
        for r in sim.stats.records
        if r.method != "GET" and not r.path.endswith("/oauth2/v2.0/token")
    ]
    assert sim.stats.total > 10
    assert writes == []


def test_forbidden_type_gives_a_partial_run_and_keeps_the_others(
    store: InventoryStore, make_syncer: Callable
) -> None:
    sim = simulator(
        tenant_scenario(faults=[Fault(kind=FaultKind.FORBIDDEN, policy_type="conditionalAccessPolicy")])
    )
    result = make_syncer(sim)()
    assert result.status is RunStatus.PARTIAL
    assert result.error_codes == ["graph_forbidden"]
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.had_errors
    assert run.type_results["conditionalAccessPolicy"]["outcome"] == "failed"
    assert run.type_results["mobileApp"]["outcome"] == "success"
    assert "conditionalAccessPolicy" in run.error_context
    assert _ids(store, "a", "mobileApp")


def test_unlicensed_tenant_fails_with_one_tenant_level_error(
    store: InventoryStore, make_syncer: Callable
) -> None:
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.UNLICENSED)]))
    result = make_syncer(sim)()
    assert result.status is RunStatus.FAILED
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.error_codes == ["intune_not_licensed"]
    assert run.errors_count == 1
    assert list(run.error_context) == ["_tenant"]


def test_wrong_secret_fails_with_auth_failed_and_the_secret_is_nowhere(
    store: InventoryStore, make_syncer: Callable
) -> None:
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.WRONG_SECRET)]))
    result = make_syncer(sim)()
    assert result.status is RunStatus.FAILED
    assert result.error_codes == ["auth_failed"]
    with store.engine.connect() as conn:
        dump = " ".join(repr(tuple(row)) for row in conn.execute(select(inventory_sync_runs)))
    assert SECRET_A not in dump
    assert "AADSTS" in dump


def test_repeated_items_across_pages_are_stored_once(store: InventoryStore, make_syncer: Callable) -> None:
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.REPEATED_ITEM, policy_type="mobileApp")]))
    result = make_syncer(sim)()
    assert result.status is RunStatus.SUCCESS
    with store.engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(inventory_items)
            .where(inventory_items.c.policy_type == "mobileApp")
        ).scalar_one()
    assert count == len(sim.expected_item_ids(tenant_scenario().tenant_id, "mobileApp"))
    assert result.outcome is not None and result.outcome.type_results["mobileApp"].items == count


def test_an_item_without_id_is_skipped_and_makes_missing_low_confidence(
    store: InventoryStore, make_syncer: Callable
) -> None:
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.ITEM_WITHOUT_ID, policy_type="mobileApp")]))
    result = make_syncer(sim)()
    assert result.status is RunStatus.SUCCESS
    assert result.outcome is not None and result.outcome.had_errors
    assert result.error_codes == ["item_invalid"]
    missing = derive_missing(store, "a", "all", ALL)
    assert missing.confidence is Confidence.LOW


def test_second_generation_reports_removed_items_missing_with_high_confidence(
    store: InventoryStore, make_syncer: Callable
) -> None:
    sim = simulator()
    sync = make_syncer(sim)
    sync()
    before = {t: sim.expected_item_ids(tenant_scenario().tenant_id, t) for t in ALL.resolve()}
    sim.advance()
    second = sync()
    assert second.status is RunStatus.SUCCESS
    missing = derive_missing(store, "a", "all", ALL)
    after = {t: sim.expected_item_ids(tenant_scenario().tenant_id, t) for t in ALL.resolve()}
    expected = {(t, i) for t in before for i in before[t] - after[t]}
    assert expected, "the scenario removes items between generations"
    assert {(r.policy_type, r.external_id) for r in missing.rows} == expected
    assert missing.confidence is Confidence.HIGH
    assert missing.reference_run is not None and missing.reference_run.id == second.run_id


def test_a_partial_reference_run_grades_missing_low_and_names_the_failed_type(
    store: InventoryStore, make_syncer: Callable
) -> None:
    healthy = simulator()
    make_syncer(healthy)()
    broken = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.FORBIDDEN, policy_type="mobileApp")]))
    make_syncer(broken)()
    missing = derive_missing(store, "a", "all", ALL)
    assert missing.confidence is Confidence.LOW
    assert "mobileApp" in missing.confidence_reason
    # the forbidden type was not observed, so its items look missing, but only with low confidence
    assert {r.policy_type for r in missing.rows} == {"mobileApp"}


def test_missing_secret_is_a_config_error_and_nothing_is_written(
    store: InventoryStore, make_syncer: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = make_syncer(simulator())
    monkeypatch.delenv("TA_SECRET_A")
    with pytest.raises(RegistryError, match="TA_SECRET_A"):
        sync()
    with store.engine.connect() as conn:
        for table in (tenants, inventory_items, inventory_sync_runs):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_a_held_lock_skips_the_run_with_lock_contended(store: InventoryStore, make_syncer: Callable) -> None:
    sync = make_syncer(simulator())
    first = sync()
    tenant_pk = store.tenant_pk("a")
    holder = store.start_run(tenant_pk, "all", ALL.hash(), ALL.canonical_json())
    assert holder.status is RunStatus.RUNNING
    skipped = sync()
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.error_codes == [str(ErrorCode.LOCK_CONTENDED)]
    assert store.latest_completed_run(tenant_pk, ALL.hash()).id == first.run_id  # type: ignore[union-attr]


def test_a_database_failure_mid_run_marks_the_run_failed_and_keeps_the_inventory(
    store: InventoryStore, make_syncer: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator()
    sync = make_syncer(sim)
    sync()
    before = _ids(store, "a", "mobileApp")
    calls = {"n": 0}
    original = store.upsert_batches

    def flaky(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("connection lost: Authorization: Bearer leaked-token-123456")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "upsert_batches", flaky)
    sim.advance()
    with pytest.raises(SyncFailedError, match=r"RuntimeError.*connection lost") as raised:
        sync()
    runs = store.runs(store.tenant_pk("a"), ALL.hash())
    crashed = runs[0]
    assert raised.value.run_id == crashed.id and f"sync run {crashed.id} " in str(raised.value)
    assert "leaked-token-123456" not in str(raised.value)
    assert crashed.status is RunStatus.FAILED and crashed.finished_at is not None
    assert crashed.error_codes == ["unexpected_exception"]
    assert "leaked-token-123456" not in str(crashed.error_context)
    assert before <= _ids(store, "a", "mobileApp")  # nothing already stored was lost


def test_syncing_tenant_a_never_changes_tenant_b(store: InventoryStore, make_syncer: Callable) -> None:
    sim = simulator(tenant_scenario(), tenant_scenario(tenant_id=TENANT_B))
    sync = make_syncer(sim)
    sync(tenant_key="b", tenant_id=TENANT_B)

    def snapshot() -> list[tuple[object, ...]]:
        with store.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(inventory_items)
                    .where(inventory_items.c.tenant_id == store.tenant_pk("b"))
                    .order_by(inventory_items.c.id)
                )
            ]

    b_before = snapshot()
    sim.advance()
    sync(tenant_key="a")
    derive_missing(store, "a", "all", ALL)
    assert snapshot() == b_before


def test_selections_are_isolated(store: InventoryStore, make_syncer: Callable) -> None:
    sim = simulator()
    sync = make_syncer(sim)
    sync()
    sim.advance()
    sync(selection_key="compliance", selection=COMPLIANCE)
    # the newer compliance run must not become the reference of "all": nothing is missing yet
    missing = derive_missing(store, "a", "all", ALL)
    assert missing.reference_run is not None
    assert missing.reference_run.selection_hash == ALL.hash()
    assert missing.rows == []
    assert entry().cloud == "simulated"
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from inventory_missing_items")).scalar_one() == 0


def test_a_disabled_tenant_is_refused_and_nothing_is_written(
    store: InventoryStore, secrets_env: None
) -> None:
    disabled = entry().model_copy(update={"enabled": False})
    service = SyncService(store, graph_factory(simulator()))
    with pytest.raises(TenantAtlasError, match="disabled"):
        service.run(SyncRequest("a", disabled, "all", ALL))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inventory_sync_runs)).scalar_one() == 0
