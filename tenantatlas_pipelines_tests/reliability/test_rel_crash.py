"""Crashes and database faults mid-run: nothing stored is lost, no duplicate, the run says what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rel_support import (
    SELECTION,
    expected_ids,
    service,
    simulator,
    stored_ids,
    sync,
)
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.clock import utcnow
from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.schema import inventory_items, inventory_sync_runs
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import SyncFailedError
from tenantatlas_pipelines.inventory.runs import Confidence, RunStatus
from tenantatlas_pipelines.sync.missing import derive_missing

CHILD = Path(__file__).with_name("rel_sync_child.py")


def _items_of_run(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(inventory_items)
                .where(inventory_items.c.last_seen_run_id == run_id)
            ).scalar_one()
        )


def _running_run(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            select(inventory_sync_runs.c.id).where(inventory_sync_runs.c.status == "running")
        ).scalar_one_or_none()


def _wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the sync process ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_no_duplicates(engine: Engine) -> None:
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids))


def test_a_sync_killed_with_sigkill_mid_run_loses_nothing_and_the_next_run_takes_over_its_lease(
    db_url: str, engine: Engine, secrets_env: None
) -> None:
    sim = simulator()
    first = sync(service(InventoryStore(engine), sim))
    assert first.status is RunStatus.SUCCESS
    gen1 = expected_ids(sim)
    assert set(stored_ids(engine)) == gen1

    proc = subprocess.Popen(
        [sys.executable, str(CHILD), db_url, "crash"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CHILD.parent)},
    )
    try:
        crashed = _wait_for(lambda: _running_run(engine), 30, "the child's run", proc)
        _wait_for(lambda: _items_of_run(engine, crashed) >= 20, 30, "the child's upserts", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # with the normal lease the dead run still holds the lock: the next run is skipped
    assert sync(service(InventoryStore(engine), simulator(generation=2))).status is RunStatus.SKIPPED
    # once its (short) lease has expired, the next run marks it abandoned and takes over
    later = InventoryStore(engine, lease_seconds=1.0, clock=lambda: utcnow() + timedelta(seconds=5))
    sim2 = simulator(generation=2)
    takeover = sync(service(later, sim2))
    assert takeover.status is RunStatus.SUCCESS

    tenant_pk = later.tenant_pk("a")
    dead = later.get_run(tenant_pk, crashed)
    assert dead.status is RunStatus.FAILED and dead.finished_at is not None
    assert dead.error_codes == ["run_abandoned"]
    _assert_no_duplicates(engine)
    gen2 = expected_ids(sim2)
    assert set(stored_ids(engine)) == gen1 | gen2  # nothing lost, nothing invented
    missing = derive_missing(later, "a", "rel", SELECTION)
    assert missing.reference_run is not None and missing.reference_run.id == takeover.run_id
    assert missing.confidence is Confidence.HIGH
    assert {(r.policy_type, r.external_id) for r in missing.rows} == gen1 - gen2


@pytest.mark.postgres
def test_terminating_the_syncs_postgres_session_mid_run_fails_the_run_and_loses_nothing(
    pg_url: str, secrets_env: None
) -> None:
    engine = make_engine(pg_url)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        store = InventoryStore(engine)
        sim = simulator()
        assert sync(service(store, sim)).status is RunStatus.SUCCESS
        gen1 = expected_ids(sim)
        inserts = {"n": 0}
        killed: list[int] = []

        def kill_own_session(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            # upsert_batches renews the lease first, in the same transaction as the item rows
            if statement.lstrip().startswith("UPDATE inventory_sync_runs SET heartbeat_at"):
                inserts["n"] += 1
                if inserts["n"] == 2:
                    pid = cursor.connection.get_backend_pid()
                    with admin.connect() as a:
                        assert a.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
                    killed.append(pid)

        event.listen(engine, "before_cursor_execute", kill_own_session)
        sim.advance()
        with pytest.raises(SyncFailedError, match="unexpected_exception"):
            sync(service(store, sim))
        event.remove(engine, "before_cursor_execute", kill_own_session)
        assert killed, "the sync's session was terminated"

        tenant_pk = store.tenant_pk("a")
        crashed = store.runs(tenant_pk, SELECTION.hash())[0]
        assert crashed.status is RunStatus.FAILED and crashed.finished_at is not None
        assert crashed.error_codes == ["unexpected_exception"]
        assert gen1 <= set(stored_ids(engine))
        _assert_no_duplicates(engine)
        # the reference is the failed run: whatever looks missing is only low confidence
        assert derive_missing(store, "a", "rel", SELECTION).confidence is Confidence.LOW
        # the next run needs no manual repair
        again = sync(service(store, sim))
        assert again.status is RunStatus.SUCCESS
        assert set(stored_ids(engine)) == gen1 | expected_ids(sim)
        _assert_no_duplicates(engine)
    finally:
        admin.dispose()
        engine.dispose()


@pytest.mark.postgres
def test_a_postgres_error_mid_run_fails_the_run_and_keeps_the_inventory(
    pg_url: str, secrets_env: None
) -> None:
    engine = make_engine(pg_url)
    try:
        store = InventoryStore(engine)
        sim = simulator()
        assert sync(service(store, sim)).status is RunStatus.SUCCESS
        gen1 = expected_ids(sim)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION rel_refuse_apps() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER rel_refuse_apps BEFORE INSERT ON inventory_items FOR EACH ROW "
                    "WHEN (NEW.policy_type = 'mobileApp') EXECUTE FUNCTION rel_refuse_apps()"
                )
            )
        try:
            sim.advance()
            with pytest.raises(SyncFailedError, match="No space left"):
                sync(service(store, sim))
        finally:
            with engine.begin() as conn:
                conn.execute(text("DROP TRIGGER rel_refuse_apps ON inventory_items"))
                conn.execute(text("DROP FUNCTION rel_refuse_apps()"))
        tenant_pk = store.tenant_pk("a")
        failed = store.runs(tenant_pk, SELECTION.hash())[0]
        assert failed.status is RunStatus.FAILED and failed.error_codes == ["unexpected_exception"]
        assert "No space left" in str(failed.error_context)
        assert gen1 <= set(stored_ids(engine))
        _assert_no_duplicates(engine)
        missing = derive_missing(store, "a", "rel", SELECTION)
        assert missing.reference_run is not None and missing.reference_run.id == failed.id
        assert missing.confidence is Confidence.LOW
    finally:
        engine.dispose()
