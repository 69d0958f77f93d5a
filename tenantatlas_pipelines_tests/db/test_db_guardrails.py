"""Guardrails: the tables a sync may write, secrets never stored, no reach into another tenant."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from db_support import SyncDriver, make_item, selection_hash
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.errors import UnknownRunError
from tenantatlas_pipelines.db.schema import TABLES, tenants
from tenantatlas_pipelines.db.store import InventoryStore, TenantRecord
from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

_WRITE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
_DDL = re.compile(r"^\s*(?:CREATE|DROP|ALTER|TRUNCATE)\b", re.IGNORECASE)


@contextmanager
def _writes(engine: Engine) -> Iterator[list[str]]:
    """Collect the table of every INSERT/UPDATE/DELETE (and flag any DDL) run on ``engine``."""
    written: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        match = _WRITE.match(statement)
        if match:
            written.append(match.group(1).lower())
        elif _DDL.match(statement):
            written.append(f"DDL: {statement[:60]}")

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield written
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def test_a_sync_writes_only_items_runs_and_the_tenant_mirror(
    store: InventoryStore, syncs: SyncDriver
) -> None:
    with _writes(store.engine) as written:
        tenant = store.ensure_tenant(TenantRecord("contoso", "tenant-guid-1", "Contoso", "global"))
        run = syncs.start(tenant)
        syncs.upsert(tenant, run, {"deviceConfiguration": ["a", "b"], "mobileApp": ["m"]})
        store.heartbeat(tenant, run)
        store.finish_run(tenant, run, syncs.outcome({"deviceConfiguration": ["a", "b"], "mobileApp": ["m"]}))
        skipped = syncs.store.start_run(tenant, "all", selection_hash("all"), "{}")
        store.mark_run_failed(skipped.run_id)
        store.derive_missing(tenant, "all", selection_hash("all"), ["deviceConfiguration"])
    assert set(written) == {"tenants", "inventory_sync_runs", "inventory_items"}

    result = store.derive_missing(tenant, "all", selection_hash("all"), ["deviceConfiguration"])
    with _writes(store.engine) as written:
        store.replace_missing(tenant, "all", result)
    assert set(written) == {"inventory_missing_items"}


BEARER = "EwBwA8l6BAAURSN0FHlDW5xN74t6GIlQzT9aKzd1hZq"
JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlX3NpZ25hdHVyZQ"
CLIENT_SECRET = "Zq8Q~pL2vXr9.kT3mW7nB5cY1dF4gH6jK0sA"
PLANTED = (BEARER, JWT, CLIENT_SECRET)


def _leaky_record(policy_type: str | None) -> ErrorRecord:
    record = ErrorRecord(code=ErrorCode.GRAPH_FORBIDDEN, message="placeholder", policy_type=policy_type)
    # planted after construction, so only the store's redaction stands between them and the row
    record.message = (
        f"Authorization: Bearer {BEARER} was refused; token endpoint said client_secret={CLIENT_SECRET}"
    )
    record.path = f"/beta/deviceManagement/intents?client_assertion={JWT}"
    record.graph_code = f"Bearer {BEARER}"
    record.request_id = JWT
    record.scopes = [f'{{"client_secret": "{CLIENT_SECRET}"}}', f"assertion={JWT}"]
    return record


def _raw_row_text(engine: Engine, run_id: int) -> str:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM inventory_sync_runs WHERE id = :id"), {"id": run_id}).one()
    return " ".join(str(value) for value in row)


def test_secrets_in_error_records_never_reach_any_column_of_the_run(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    tenant = tenant_factory()
    run = syncs.start(tenant)
    outcome = RunOutcome(
        status=RunStatus.PARTIAL,
        type_results={
            "mobileApp": TypeResult("mobileApp", TypeOutcome.FAILED, error_code=ErrorCode.GRAPH_FORBIDDEN),
            "deviceConfiguration": TypeResult("deviceConfiguration", TypeOutcome.SUCCESS, items=1),
        },
        errors=[_leaky_record("mobileApp"), _leaky_record(None)],
        had_errors=True,
    )
    store.finish_run(tenant, run, outcome)
    stored = _raw_row_text(store.engine, run)
    assert "[REDACTED]" in stored and "graph_forbidden" in stored
    for secret in PLANTED:
        assert secret not in stored

    crashed = syncs.start(tenant, "other")
    store.mark_run_failed(crashed, message=f"RuntimeError: header Authorization: Bearer {BEARER} jwt {JWT}")
    stored = _raw_row_text(store.engine, crashed)
    assert "unexpected_exception" in stored
    for secret in PLANTED:
        assert secret not in stored


def _checksum(engine: Engine, tenant_pk: int) -> str:
    """A digest of every row of every table that belongs to ``tenant_pk``."""
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for table in TABLES:
            column = table.c.id if table is tenants else table.c.tenant_id
            for row in conn.execute(select(table).where(column == tenant_pk).order_by(table.c.id)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_operations_for_one_tenant_leave_every_row_of_another_unchanged(
    store: InventoryStore, syncs: SyncDriver, tenant_factory: Any
) -> None:
    a, b = tenant_factory("contoso"), tenant_factory("fabrikam")
    syncs.sync(b, {"deviceConfiguration": ["shared-1", "shared-2", "b-only"]})
    b_run = syncs.sync(b, {"deviceConfiguration": ["shared-1"]})
    store.replace_missing(
        b, "all", store.derive_missing(b, "all", selection_hash("all"), ["deviceConfiguration"])
    )
    b_running = syncs.start(b, "compliance")
    before_b, before_a = _checksum(store.engine, b), _checksum(store.engine, a)

    # tenant A: the same external ids, the same selection, every write the store offers
    store.ensure_tenant(TenantRecord("contoso", store.get_tenant(a).tenant_id, "Contoso Renamed", "global"))
    syncs.sync(a, {"deviceConfiguration": ["shared-1", "shared-2"]})
    a_run = syncs.start(a)
    syncs.upsert(a, a_run, {"deviceConfiguration": ["shared-1"]})
    store.heartbeat(a, a_run)
    store.finish_run(a, a_run, syncs.outcome({"deviceConfiguration": ["shared-1"]}))
    store.replace_missing(
        a, "all", store.derive_missing(a, "all", selection_hash("all"), ["deviceConfiguration"])
    )
    a_running = store.start_run(a, "compliance", selection_hash("compliance"), "{}")
    assert a_running.status is RunStatus.RUNNING
    assert store.mark_run_failed(a_running.run_id, message="crashed") == 1
    # and A's tenant id cannot reach B's runs
    with pytest.raises(UnknownRunError):
        store.heartbeat(a, b_running)
    with pytest.raises(UnknownRunError):
        store.finish_run(a, b_running, syncs.outcome({}))
    with pytest.raises(UnknownRunError):
        store.upsert_items(a, b_running, "deviceConfiguration", [make_item("x")], store.now())
    with pytest.raises(UnknownRunError):
        store.get_run(a, b_run)

    assert _checksum(store.engine, a) != before_a  # the operations did write
    assert _checksum(store.engine, b) == before_b
    assert store.count_items(a) == 2 and store.count_items(b) == 3
