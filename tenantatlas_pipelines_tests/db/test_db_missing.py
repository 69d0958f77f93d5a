"""The missing derivation: reference run, selection isolation, confidence, atomic replacement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from db_support import SyncDriver, make_item, selection_hash
from sqlalchemy import event

from tenantatlas_pipelines.db.store import InventoryStore, MissingResult
from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus

DC, CP, APP = "deviceConfiguration", "deviceCompliancePolicy", "mobileApp"
ALL = selection_hash("all")


def _missing(store: InventoryStore, tenant: int, types: tuple[str, ...] = (DC, CP)) -> MissingResult:
    return store.derive_missing(tenant, "all", ALL, types)


def _ids(result: MissingResult) -> list[tuple[str, str]]:
    return [(row.policy_type, row.external_id) for row in result.rows]


def test_removed_items_are_missing_and_re_observed_ones_are_not(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b", "c"], CP: ["p", "q"]})
    latest = syncs.sync(tenant, {DC: ["a", "c"], CP: ["q"]})
    result = _missing(store, tenant)
    assert _ids(result) == [(CP, "p"), (DC, "b")]
    assert result.reference_run is not None and result.reference_run.id == latest
    assert result.confidence is Confidence.HIGH
    assert result.counts_by_policy_type() == {CP: 1, DC: 1}
    assert all(row.last_seen_at < result.reference_run.started_at for row in result.rows)

    syncs.sync(tenant, {DC: ["a", "b", "c"], CP: ["p", "q"]})  # they came back
    assert _missing(store, tenant).rows == []


def test_types_outside_the_selection_are_never_missing(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a"], APP: ["old-app"]})
    syncs.sync(tenant, {DC: ["a"]})
    assert _missing(store, tenant, (DC,)).rows == []
    assert _ids(_missing(store, tenant, (DC, APP))) == [(APP, "old-app")]


def test_without_a_completed_run_nothing_is_missing_and_the_reason_says_so(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a"]}, selection="compliance")  # another selection's run
    run = syncs.start(tenant)  # still running
    syncs.upsert(tenant, run, {DC: ["b"]})
    result = _missing(store, tenant)
    assert result.reference_run is None and result.rows == [] and result.confidence is None
    assert "no completed sync run" in result.confidence_reason


def test_a_newer_run_of_another_selection_never_changes_the_reference(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b"], CP: ["p"]})
    reference = syncs.sync(tenant, {DC: ["a"], CP: ["p"]})
    before = _missing(store, tenant)
    other = syncs.sync(tenant, {CP: ["p"]}, selection="compliance", failed_types=[DC])  # newer, partial
    after = _missing(store, tenant)
    assert after.reference_run is not None and after.reference_run.id == reference != other
    assert _ids(after) == _ids(before) == [(DC, "b")]
    assert after.confidence is Confidence.HIGH


def test_running_and_skipped_runs_are_never_the_reference(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b"]})
    reference = syncs.sync(tenant, {DC: ["a"]})
    running = syncs.start(tenant)
    syncs.upsert(tenant, running, {DC: ["a"]})
    skipped = store.start_run(tenant, "all", ALL, "{}")
    assert skipped.status is RunStatus.SKIPPED
    result = _missing(store, tenant)
    assert result.reference_run is not None and result.reference_run.id == reference
    assert _ids(result) == [(DC, "b")]
    assert store.latest_completed_run(tenant, ALL) == result.reference_run


@pytest.mark.parametrize(
    ("kind", "expected_confidence", "reason_parts"),
    [
        ("success", Confidence.HIGH, ["high", "succeeded"]),
        ("partial", Confidence.LOW, ["low", "is partial", f"failed to fetch policy types: {CP}"]),
        ("failed", Confidence.LOW, ["low", "is failed", f"failed to fetch policy types: {CP}, {DC}"]),
        ("had_errors", Confidence.LOW, ["low", "had errors (item_invalid)"]),
    ],
)
def test_confidence_is_low_when_the_reference_is_partial_failed_or_had_errors(
    store: InventoryStore,
    syncs: SyncDriver,
    tenant_factory: Any,
    kind: str,
    expected_confidence: Confidence,
    reason_parts: list[str],
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b"], CP: ["p"]})
    if kind == "success":
        syncs.sync(tenant, {DC: ["a"], CP: ["p"]})
    elif kind == "partial":
        syncs.sync(tenant, {DC: ["a"]}, failed_types=[CP])
    elif kind == "failed":
        syncs.sync(tenant, {}, failed_types=[DC, CP], status=RunStatus.FAILED)
    else:
        skipped_item = ErrorRecord(code=ErrorCode.ITEM_INVALID, message="item id is missing", policy_type=DC)
        syncs.sync(tenant, {DC: ["a"], CP: ["p"]}, errors=[skipped_item])
    result = _missing(store, tenant)
    assert result.confidence is expected_confidence
    for part in reason_parts:
        assert part in result.confidence_reason
    if expected_confidence is Confidence.HIGH:
        assert "failed to fetch" not in result.confidence_reason


def test_replace_missing_replaces_only_its_partition(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b", "c"]})
    syncs.sync(tenant, {DC: ["a"]})
    assert store.replace_missing(tenant, "all", _missing(store, tenant)) == 2
    store.replace_missing(tenant, "other", _missing(store, tenant))
    rows = store.missing_rows(tenant, "all")
    assert [(r["external_id"], r["confidence"]) for r in rows] == [("b", "high"), ("c", "high")]

    syncs.sync(tenant, {DC: ["a", "b"]})  # b is back
    assert store.replace_missing(tenant, "all", _missing(store, tenant)) == 1
    assert [r["external_id"] for r in store.missing_rows(tenant, "all")] == ["c"]
    assert [r["external_id"] for r in store.missing_rows(tenant, "other")] == ["b", "c"]


class _Boom(RuntimeError):
    pass


def test_replace_missing_is_atomic_when_an_insert_fails_midway(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    syncs.sync(tenant, {DC: ["a", "b", "c", "d"]})
    syncs.sync(tenant, {DC: ["a", "b"]})
    store.replace_missing(tenant, "all", _missing(store, tenant))
    previous = store.missing_rows(tenant, "all")
    assert [r["external_id"] for r in previous] == ["c", "d"]

    syncs.sync(tenant, {DC: ["a"]})
    fresh = _missing(store, tenant)
    assert len(fresh.rows) == 3
    store.missing_batch_size = 1
    inserts = 0

    def fail_second_insert(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        nonlocal inserts
        if statement.lstrip().upper().startswith("INSERT INTO INVENTORY_MISSING_ITEMS"):
            inserts += 1
            if inserts == 2:
                raise _Boom("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_second_insert)
    try:
        with pytest.raises(_Boom):
            store.replace_missing(tenant, "all", fresh)
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_second_insert)
    assert inserts == 2
    assert store.missing_rows(tenant, "all") == previous
    assert store.replace_missing(tenant, "all", fresh) == 3


def test_replace_missing_refuses_a_reference_run_of_another_tenant(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    a, b = tenant_factory("contoso"), tenant_factory("fabrikam")
    syncs.sync(b, {DC: ["x"]})
    syncs.sync(b, {DC: []})
    result = store.derive_missing(b, "all", ALL, (DC,))
    with pytest.raises(ValueError, match="another tenant"):
        store.replace_missing(a, "all", result)


def test_missing_summary_reports_the_stored_partition(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    assert store.missing_summary(tenant, "all").count == 0
    syncs.sync(tenant, {DC: ["a", "b"], CP: ["p", "q", "r"]})
    reference = syncs.sync(tenant, {DC: ["a"], CP: ["p"]}, failed_types=[APP])
    store.replace_missing(tenant, "all", _missing(store, tenant))
    summary = store.missing_summary(tenant, "all")
    assert summary.count == 3 and summary.counts_by_policy_type == {CP: 2, DC: 1}
    assert summary.confidence is Confidence.LOW and summary.reference_run_id == reference
    assert APP in summary.confidence_reason
    empty = store.missing_summary(tenant, "other")
    assert (empty.count, empty.confidence, empty.reference_run_id) == (0, None, None)


def test_stored_missing_rows_are_exactly_the_derived_rows(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    seen_at = datetime(2026, 1, 5, 7, 59, 58, 123456, tzinfo=UTC)  # microseconds survive
    quoted = make_item('q"uote', 'Zürich \u2013 "quoted" \\ tab\t')
    nameless = make_item("nameless")
    nameless.display_name = None
    store.upsert_items(tenant, run, DC, [quoted, nameless, make_item("kept")], seen_at)
    store.finish_run(tenant, run, syncs.outcome({DC: ['q"uote', "nameless", "kept"]}))
    syncs.sync(tenant, {DC: ["kept"]})
    result = _missing(store, tenant)
    assert store.replace_missing(tenant, "all", result) == 2

    stored = {r["external_id"]: r for r in store.missing_rows(tenant, "all")}
    assert set(stored) == {'q"uote', "nameless"}
    for row in result.rows:
        got = stored[row.external_id]
        assert got["inventory_item_id"] == row.inventory_item_id
        assert got["policy_type"] == row.policy_type
        assert got["display_name"] == row.display_name
        assert got["last_seen_at"] == row.last_seen_at == seen_at
        assert got["sync_run_id"] == result.reference_run.id  # type: ignore[union-attr]
        assert got["confidence"] == str(result.confidence)
    assert stored['q"uote']["display_name"] == 'Zürich \u2013 "quoted" \\ tab\t'
    assert stored["nameless"]["display_name"] is None
