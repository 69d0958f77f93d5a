"""Tenants kept apart: work for tenant A never changes B's rows; optional row-level security (PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rel_support import (
    SELECTION,
    TENANT_B,
    service,
    simulator,
    sync,
    tenant_checksum,
    tenant_scenario,
)
from sqlalchemy import event, text
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
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import ConfigError, ErrorCode, SyncFailedError
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.sync.missing import derive_missing


def _both_tenants() -> Any:
    return simulator(tenant_scenario(), tenant_scenario(tenant_id=TENANT_B))


def _work_for_tenant_a(store: InventoryStore, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything the pipeline does to one tenant: sync, missing, partial, crash, lock and lease."""
    sim = _both_tenants()
    assert sync(service(store, sim)).status is RunStatus.SUCCESS
    derive_missing(store, "a", "rel", SELECTION)
    sim.advance()
    storm = Fault(kind=FaultKind.THROTTLE, policy_type="mobileApp", retry_after=0.5)
    partial = simulator(tenant_scenario(faults=[storm]), tenant_scenario(tenant_id=TENANT_B), generation=2)
    assert sync(service(store, partial)).status is RunStatus.PARTIAL
    derive_missing(store, "a", "rel", SELECTION)
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


def test_syncing_deriving_and_failing_for_tenant_a_never_changes_tenant_b(
    store: InventoryStore, engine: Engine, secrets_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = _both_tenants()
    sync(service(store, sim), tenant_key="b", tenant_id=TENANT_B)
    sim.advance()
    sync(service(store, sim), tenant_key="b", tenant_id=TENANT_B)
    derive_missing(store, "b", "rel", SELECTION)
    b_pk = store.tenant_pk("b")
    counts, checksum = tenant_checksum(engine, b_pk)
    assert counts["inventory_items"] > 0 and counts["inventory_missing_items"] > 0
    assert counts["inventory_sync_runs"] == 2

    _work_for_tenant_a(store, engine, monkeypatch)

    assert tenant_checksum(engine, b_pk) == (counts, checksum)
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
        # the whole pipeline works under RLS: the store scopes each transaction to its tenant
        assert sync(service(store, sim)).status is RunStatus.SUCCESS
        assert sync(service(store, sim), tenant_key="b", tenant_id=TENANT_B).status is RunStatus.SUCCESS
        sim.advance()
        assert sync(service(store, sim)).status is RunStatus.SUCCESS
        assert derive_missing(store, "a", "rel", SELECTION).rows
        assert derive_missing(store, "b", "rel", SELECTION).rows == []
        a_pk, b_pk = store.tenant_pk("a"), store.tenant_pk("b")
        b_before = tenant_checksum(owner, b_pk)

        def per_tenant(table: str) -> dict[int, int]:
            with engine.connect() as conn:  # no WHERE tenant_id: the query "forgets" the filter
                rows = conn.execute(text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id"))
                return {int(t): int(n) for t, n in rows}

        for table in TENANT_SCOPED_TABLES:
            with tenant_scope(a_pk):
                assert set(per_tenant(table)) == {a_pk}, table
            with tenant_scope(b_pk):
                assert set(per_tenant(table)) <= {b_pk}, table
            assert per_tenant(table) == {}, table  # no scope: nothing at all
        # the owner (a superuser: RLS does not apply) sees both: the query really has no filter
        with owner.connect() as conn:
            owners_view = conn.execute(text("SELECT DISTINCT tenant_id FROM inventory_items")).scalars()
            assert set(owners_view) == {a_pk, b_pk}

        # an unfiltered write in A's scope touches only A's rows; writing B's rows is refused
        with tenant_scope(a_pk), engine.begin() as conn:
            changed = conn.execute(text("UPDATE inventory_items SET display_name = 'overwritten'")).rowcount
            assert changed == tenant_checksum(owner, a_pk)[0]["inventory_items"]
            conn.execute(text("DELETE FROM inventory_missing_items"))
            conn.rollback()
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
