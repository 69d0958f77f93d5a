"""Tenants kept apart: work for tenant A never changes B's rows; optional row-level security (PostgreSQL)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rel_support import (
    SELECTION,
    TENANT_A,
    TENANT_B,
    service,
    simulator,
    sync,
    tenant_checksum,
    tenant_scenario,
)
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tenantatlas_pipelines.db.clock import utcnow
from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.migrate import upgrade_to_head
from tenantatlas_pipelines.db.rls import (
    ALL_TENANTS,
    TENANT_SCOPED_TABLES,
    current_scope,
    enable_row_level_security,
    install_tenant_scoping,
    tenant_scope,
)
from tenantatlas_pipelines.db.schema import TABLES, inventory_change_events, tenants
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import ConfigError, ErrorCode, SyncFailedError
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.sync.changes import record_changes
from tenantatlas_pipelines.sync.missing import derive_missing


def _both_tenants() -> Any:
    return simulator(tenant_scenario(), tenant_scenario(tenant_id=TENANT_B))


def _tenant_tables() -> list[str]:
    """The tables holding a tenant's rows: a ``tenant_id`` referencing ``tenants.id``."""
    return sorted(
        table.name
        for table in TABLES
        if "tenant_id" in table.c and any(fk.column is tenants.c.id for fk in table.c.tenant_id.foreign_keys)
    )


def _history(engine: Engine, tenant_pk: int) -> tuple[int, str]:
    """Row count and a sha256 over every column of one tenant's ``inventory_change_events`` rows."""
    table = inventory_change_events
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant_pk).order_by(table.c.id)).all()
    return len(rows), hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()


def _sync_and_record(
    store: InventoryStore, sim: Any, tenant_key: str = "a", tenant_id: str = TENANT_A
) -> int:
    """One sync of the partition, its missing set and its change history (the batched asset's path)."""
    status = sync(service(store, sim), tenant_key=tenant_key, tenant_id=tenant_id).status
    assert status in {RunStatus.SUCCESS, RunStatus.PARTIAL}, status
    derive_missing(store, tenant_key, "rel", SELECTION)
    return record_changes(store, tenant_key, "rel", SELECTION).inserted


def _work_for_tenant_a(store: InventoryStore, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything the pipeline does to one tenant: sync, missing, changes, partial, crash, lock and lease."""
    sim = _both_tenants()
    assert sync(service(store, sim)).status is RunStatus.SUCCESS
    derive_missing(store, "a", "rel", SELECTION)
    assert record_changes(store, "a", "rel", SELECTION).previous_sync_run_id is None  # the baseline
    sim.advance()
    storm = Fault(kind=FaultKind.THROTTLE, policy_type="mobileApp", retry_after=0.5)
    partial = simulator(tenant_scenario(faults=[storm]), tenant_scenario(tenant_id=TENANT_B), generation=2)
    assert sync(service(store, partial)).status is RunStatus.PARTIAL
    derive_missing(store, "a", "rel", SELECTION)
    assert record_changes(store, "a", "rel", SELECTION).inserted > 0
    original = store.upsert_batches

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(store, "upsert_batches", broken)
    with pytest.raises(SyncFailedError, match="database went away"):
        sync(service(store, sim))
    monkeypatch.setattr(store, "upsert_batches", original)
    tenant_pk = store.tenant_pk("a")
    held = store.start_run(
        tenant_pk, "rel", SELECTION.hash(), SELECTION.canonical_json(), dagster_run_id="d-1"
    )
    assert sync(service(store, sim)).status is RunStatus.SKIPPED
    later = InventoryStore(engine, lease_seconds=1.0, clock=lambda: utcnow() + timedelta(seconds=5))
    assert sync(service(later, sim)).status is RunStatus.SUCCESS  # takes over the stale lease
    assert later.get_run(tenant_pk, held.run_id).error_codes == [str(ErrorCode.RUN_ABANDONED)]
    store.mark_run_failed(dagster_run_id="d-1")
    derive_missing(store, "a", "rel", SELECTION)
    record_changes(store, "a", "rel", SELECTION)
    # a prune of A's history that would delete every event of B too, were it not filtered by tenant
    assert record_changes(later, "a", "rel", SELECTION, retention=timedelta(seconds=1)).pruned > 0


def test_syncing_deriving_and_failing_for_tenant_a_never_changes_tenant_b(
    store: InventoryStore, engine: Engine, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = _both_tenants()
    _sync_and_record(store, sim, "b", TENANT_B)
    sim.advance()
    assert _sync_and_record(store, sim, "b", TENANT_B) > 0
    b_pk = store.tenant_pk("b")
    counts, checksum = tenant_checksum(engine, b_pk)
    history = _history(engine, b_pk)
    assert counts["inventory_items"] > 0 and counts["inventory_missing_items"] > 0
    assert counts["inventory_sync_runs"] == 2

    _work_for_tenant_a(store, engine, monkeypatch)

    assert tenant_checksum(engine, b_pk) == (counts, checksum)
    assert _history(engine, b_pk) == history
    a_counts, _ = tenant_checksum(engine, store.tenant_pk("a"))
    assert a_counts["inventory_sync_runs"] == 6  # the work above really happened


# -- row-level security (PostgreSQL) -----------------------------------------------------------


@pytest.fixture
def rls_urls(postgres_server: Any) -> Iterator[tuple[str, str]]:
    """(owner URL, role name): a scratch database with RLS enabled and a plain role to use it."""
    url = postgres_server.create_database("tenantatlas_rls")
    role = f"tenantatlas_rls_{uuid.uuid4().hex[:10]}"
    owner = make_engine(url)
    try:
        upgrade_to_head(owner)
        enable_row_level_security(owner)
        with owner.begin() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS'))
            conn.execute(
                text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
            )
            conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
            conn.execute(text(f'GRANT TEMPORARY ON DATABASE "{owner.url.database}" TO "{role}"'))
        yield url, role
    finally:
        owner.dispose()
        postgres_server.drop_database(url)
        with make_engine(postgres_server.admin_url.render_as_string(hide_password=False)).begin() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def _role_engine(url: str, role: str) -> Engine:
    """An engine whose sessions run as ``role`` (subject to RLS), each transaction tenant-scoped."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _as_role(dbapi_connection: Any, _: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET ROLE "{role}"')
        dbapi_connection.commit()

    return install_tenant_scoping(engine)


@pytest.mark.postgres
def test_row_level_security_blocks_a_query_that_forgets_the_tenant_filter(
    rls_urls: tuple[str, str], secrets_env: None
) -> None:
    url, role = rls_urls
    engine = _role_engine(url, role)
    owner = make_engine(url)
    try:
        store = InventoryStore(engine)
        sim = _both_tenants()
        # the whole pipeline works under RLS: the store scopes each transaction to its tenant;
        # two syncs per tenant, so the second one's change history has events for both
        _sync_and_record(store, sim)
        _sync_and_record(store, sim, "b", TENANT_B)
        sim.advance()
        assert _sync_and_record(store, sim, "b", TENANT_B) > 0
        a_pk, b_pk = store.tenant_pk("a"), store.tenant_pk("b")
        b_before, b_history = tenant_checksum(owner, b_pk), _history(owner, b_pk)
        assert b_before[0]["inventory_missing_items"] > 0 and b_history[0] > 0
        # A's sync, missing set, change recording and history prune under RLS leave B's rows alone
        assert _sync_and_record(store, sim) > 0
        assert derive_missing(store, "a", "rel", SELECTION).rows
        later = InventoryStore(engine, clock=lambda: utcnow() + timedelta(seconds=5))
        assert record_changes(later, "a", "rel", SELECTION, retention=timedelta(seconds=1)).pruned > 0
        assert _history(owner, a_pk)[0] > 0
        assert _history(owner, b_pk) == b_history

        def per_tenant(table: str) -> dict[int, int]:
            with engine.connect() as conn:  # no WHERE tenant_id: the query "forgets" the filter
                rows = conn.execute(text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"))
                return {int(t): int(n) for t, n in rows}

        # every table with a tenant_id column holds rows of both tenants (the owner sees them all)
        scoped = _tenant_tables()
        assert "inventory_change_events" in scoped
        with owner.connect() as conn:
            for table in scoped:
                owners_view = conn.execute(text(f"SELECT DISTINCT tenant_id FROM {table}")).scalars()
                assert set(owners_view) == {a_pk, b_pk}, table
        for table in scoped:
            with tenant_scope(a_pk):
                assert set(per_tenant(table)) == {a_pk}, table
            with tenant_scope(b_pk):
                assert set(per_tenant(table)) == {b_pk}, table
            assert per_tenant(table) == {}, table  # no scope: nothing at all
            with tenant_scope(ALL_TENANTS):  # the explicit cross-tenant scope of maintenance reads
                assert set(per_tenant(table)) == {a_pk, b_pk}, table

        # an unfiltered write in A's scope touches only A's rows; writing B's rows is refused
        with tenant_scope(a_pk), engine.begin() as conn:
            changed = conn.execute(text("UPDATE inventory_items SET display_name = 'overwritten'")).rowcount
            assert changed == tenant_checksum(owner, a_pk)[0]["inventory_items"]
            conn.execute(text("DELETE FROM inventory_missing_items"))
            pruned = conn.execute(text("DELETE FROM inventory_change_events")).rowcount
            assert pruned == _history(owner, a_pk)[0]
            conn.rollback()
        with (
            tenant_scope(a_pk),
            pytest.raises(DBAPIError, match="row-level security"),
            engine.begin() as conn,
        ):
            conn.execute(
                text(
                    "INSERT INTO inventory_change_events (tenant_id, selection_key, selection_hash, kind, "
                    "policy_type, external_id, sync_run_id, recorded_at) SELECT :b, 'rel', selection_hash, "
                    "'appeared', 'mobileApp', 'planted', id, now() FROM inventory_sync_runs LIMIT 1"
                ),
                {"b": b_pk},
            )
        with (
            tenant_scope(a_pk),
            pytest.raises(DBAPIError, match="row-level security"),
            engine.begin() as conn,
        ):
            conn.execute(
                text(
                    "INSERT INTO inventory_items (tenant_id, policy_type, external_id, category, "
                    "meta_jsonb, last_seen_at, created_at, updated_at) "
                    "VALUES (:b, 'mobileApp', 'planted', 'apps', '{}', now(), now(), now())"
                ),
                {"b": b_pk},
            )
        # the run-failure sensor's cross-tenant lookup by Dagster run id still works
        run = store.start_run(a_pk, "other", "f" * 64, "{}", dagster_run_id="dagster-run-9")
        assert store.mark_run_failed(dagster_run_id="dagster-run-9") == 1
        assert store.get_run(a_pk, run.run_id).status is RunStatus.FAILED
        assert tenant_checksum(owner, b_pk) == b_before
        assert _history(owner, b_pk) == b_history
    finally:
        engine.dispose()
        owner.dispose()


def test_row_level_security_is_refused_on_sqlite_and_a_scope_is_a_tenant_id(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ConfigError, match="PostgreSQL"):
            install_tenant_scoping(engine)
        with pytest.raises(ConfigError, match="PostgreSQL"):
            enable_row_level_security(engine)
    finally:
        engine.dispose()
    for bad in ("1 OR 1=1", "", "-1", "a"):
        with pytest.raises(ValueError, match="tenant scope"), tenant_scope(bad):
            pass  # pragma: no cover
    assert current_scope() == ""
    with tenant_scope(7):
        assert current_scope() == "7"
        with tenant_scope(ALL_TENANTS):
            assert current_scope() == ALL_TENANTS
        assert current_scope() == "7"
    assert current_scope() == ""


def test_every_table_with_a_tenant_id_is_under_row_level_security() -> None:
    tenant_tables = _tenant_tables()
    assert "inventory_change_events" in tenant_tables and len(tenant_tables) == 4
    assert sorted(TENANT_SCOPED_TABLES) == tenant_tables
