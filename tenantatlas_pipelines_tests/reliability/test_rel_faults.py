"""Graph faults end to end through the sync service, asserting what is stored afterwards.

Each case: a healthy first run (generation 1), then Graph moves on (generation 2)
and the second run meets the fault. Nothing stored is lost, no duplicate
appears, the run record names the failure, and the missing set of an incomplete
run is never graded high.
"""

from __future__ import annotations

from typing import Any

import pytest
from rel_support import (
    SELECTION,
    TYPES,
    FaultySimulator,
    Rule,
    expected_ids,
    path_of,
    service,
    simulator,
    stored_ids,
    sync,
    tenant_scenario,
)
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.simulator.server import serve_loopback
from tenantatlas_pipelines.sync.missing import derive_missing

APPS = "mobileApp"

FAILING_TYPE_CASES = {
    "throttle_storm_beyond_the_budget": (
        [Fault(kind=FaultKind.THROTTLE, policy_type=APPS, retry_after=1.0)],
        "graph_throttled",
    ),
    "service_unavailable_503": ([Fault(kind=FaultKind.UNAVAILABLE, policy_type=APPS)], "graph_transient"),
    "gateway_timeout_504": ([Fault(kind=FaultKind.GATEWAY_TIMEOUT, policy_type=APPS)], "graph_transient"),
    "malformed_json_page": (
        [Fault(kind=FaultKind.MALFORMED_JSON, policy_type=APPS, page=1)],
        "graph_invalid_response",
    ),
    "not_a_page": ([Fault(kind=FaultKind.NOT_A_PAGE, policy_type=APPS, page=2)], "graph_invalid_response"),
    "nextlink_loop": (
        [Fault(kind=FaultKind.NEXTLINK_LOOP, policy_type=APPS, page=2)],
        "graph_invalid_response",
    ),
    "foreign_nextlink": (
        [Fault(kind=FaultKind.FOREIGN_NEXTLINK, policy_type=APPS, page=1)],
        "graph_invalid_response",
    ),
}


def _assert_nothing_lost_no_duplicates(engine: Engine, before: set[tuple[str, str]]) -> None:
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids)), "a duplicate item was stored"
    assert before <= set(ids), "an item stored before the fault was lost"


def _first_run(store: InventoryStore) -> set[tuple[str, str]]:
    sim = simulator()
    assert sync(service(store, sim)).status is RunStatus.SUCCESS
    return expected_ids(sim)


def _assert_partial_with_low_confidence(
    store: InventoryStore, run_id: int, code: str, failed: str = APPS
) -> None:
    run = store.get_run(store.tenant_pk("a"), run_id)
    assert run.status is RunStatus.PARTIAL and run.had_errors and run.finished_at is not None
    assert run.error_codes == [code]
    assert run.type_results[failed]["outcome"] == "failed"
    assert run.type_results[failed]["error_code"] == code
    assert all(run.type_results[t]["outcome"] == "success" for t in TYPES if t != failed)
    missing = derive_missing(store, "a", "rel", SELECTION)
    assert missing.reference_run is not None and missing.reference_run.id == run_id
    assert missing.confidence is Confidence.LOW
    assert failed in missing.confidence_reason
    # items of the failed type on pages never read look missing, but only with low confidence
    stored = {i for i in stored_ids(store.engine) if i[0] == failed}
    looks_missing = {(r.policy_type, r.external_id) for r in missing.rows if r.policy_type == failed}
    assert looks_missing and looks_missing <= stored


@pytest.mark.parametrize("case", sorted(FAILING_TYPE_CASES))
def test_a_graph_fault_on_one_type_gives_a_partial_run_and_low_confidence_missing(
    case: str, store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    faults, code = FAILING_TYPE_CASES[case]
    before = _first_run(store)
    sim = simulator(tenant_scenario(faults=faults), generation=2)
    result = sync(service(store, sim))
    assert result.status is RunStatus.PARTIAL
    _assert_partial_with_low_confidence(store, result.run_id, code)
    _assert_nothing_lost_no_duplicates(engine, before)
    # the healthy types were refreshed to generation 2
    fresh = expected_ids(sim, types=[t for t in TYPES if t != APPS])
    assert fresh <= set(stored_ids(engine))


def test_a_throttle_storm_on_every_type_fails_the_run_and_keeps_the_inventory(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    before = _first_run(store)
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.THROTTLE, retry_after=0.5)]), generation=2)
    result = sync(service(store, sim))
    assert result.status is RunStatus.FAILED
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.error_codes == ["graph_throttled"] and run.finished_at is not None
    assert set(stored_ids(engine)) == before
    missing = derive_missing(store, "a", "rel", SELECTION)
    assert missing.confidence is Confidence.LOW
    assert {(r.policy_type, r.external_id) for r in missing.rows} == before  # all unseen, all low


def test_a_connection_reset_mid_page_is_retried_and_the_run_completes(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    before = _first_run(store)
    sim = simulator(generation=2)
    faulty = FaultySimulator(sim, Rule(path_of(APPS), "reset", count=2))
    result = sync(service(store, faulty))
    assert faulty.rules[0].fired == 2
    assert result.status is RunStatus.SUCCESS
    assert set(stored_ids(engine)) == before | expected_ids(sim)
    _assert_nothing_lost_no_duplicates(engine, before)
    assert derive_missing(store, "a", "rel", SELECTION).confidence is Confidence.HIGH


def test_connection_resets_beyond_the_retries_fail_the_type_as_transient(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    before = _first_run(store)
    faulty = FaultySimulator(simulator(generation=2), Rule(path_of(APPS), "reset"))
    result = sync(service(store, faulty))
    assert result.status is RunStatus.PARTIAL
    _assert_partial_with_low_confidence(store, result.run_id, "graph_transient")
    _assert_nothing_lost_no_duplicates(engine, before)
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert "ReadError" in str(run.error_context)


def test_a_token_expiring_mid_run_is_refreshed_and_the_run_succeeds(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    before = _first_run(store)
    sim = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.EXPIRE_TOKEN_AFTER, count=3)]), generation=2)
    result = sync(service(store, sim))
    assert result.status is RunStatus.SUCCESS and result.error_codes == []
    assert len(sim.issued_tokens) == 2  # the expired token was replaced once
    assert set(stored_ids(engine)) == before | expected_ids(sim)
    assert derive_missing(store, "a", "rel", SELECTION).confidence is Confidence.HIGH


@pytest.mark.parametrize("slow_type", [APPS])
def test_graph_slower_than_the_timeout_over_loopback_fails_the_type_as_transient(
    slow_type: str, store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    before = _first_run(store)
    sim = simulator(
        tenant_scenario(faults=[Fault(kind=FaultKind.SLOW, policy_type=slow_type, delay_seconds=1.0)]),
        generation=2,
    )
    options: dict[str, Any] = {"timeout": 0.2}
    with serve_loopback(sim) as base:
        result = sync(service(store, None, **options), graph_endpoint=base, login_endpoint=base)
    assert result.status is RunStatus.PARTIAL
    _assert_partial_with_low_confidence(store, result.run_id, "graph_transient", failed=slow_type)
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert "Timeout" in str(run.error_context)
    _assert_nothing_lost_no_duplicates(engine, before)
