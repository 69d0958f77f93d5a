"""The inventory store: tenants mirror, sync runs and their lock, item upserts, missing sets.

Every method is scoped to one tenant (its ``tenants.id``, "tenant_pk") and opens
its own short transaction. The store writes only the four inventory tables,
and ``inventory_missing_items`` only in ``replace_missing``. No ORM objects:
Core statements and plain records (see ``db/records.py``).
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from tenantatlas_pipelines.db.clock import Clock, as_utc, utcnow
from tenantatlas_pipelines.db.engine import READ_ONLY
from tenantatlas_pipelines.db.errors import (
    RunNotRunningError,
    StoreError,
    UnknownRunError,
    UnknownTenantError,
)
from tenantatlas_pipelines.db.json_batches import MissingBatch, WriteCounts, write_items
from tenantatlas_pipelines.db.missing import NO_REFERENCE_REASON, assess_confidence
from tenantatlas_pipelines.db.records import (
    MissingResult,
    MissingRow,
    MissingSummary,
    RunStart,
    SyncRunRow,
    TenantRecord,
)
from tenantatlas_pipelines.db.rls import ALL_TENANTS, current_scope, tenant_scope
from tenantatlas_pipelines.db.schema import (
    inventory_items,
    inventory_missing_items,
    inventory_sync_runs,
    tenants,
)
from tenantatlas_pipelines.inventory.errors import ConfigError, ErrorCode, ErrorRecord
from tenantatlas_pipelines.inventory.normalize import NormalizedItem
from tenantatlas_pipelines.inventory.redaction import redact_value
from tenantatlas_pipelines.inventory.runs import (
    COMPLETED_STATUSES,
    USABLE_STATUSES,
    Confidence,
    RunOutcome,
    RunStatus,
)

__all__ = [
    "InventoryStore",
    "MissingResult",
    "MissingRow",
    "MissingSummary",
    "RunStart",
    "SyncRunRow",
    "TenantRecord",
]

TENANT_CONTEXT_KEY = "_tenant"  # error_context key of errors that belong to no policy type
MISSING_INSERT_BATCH = 1000
_ACTIVE = (RunStatus.RUNNING.value, RunStatus.PENDING.value)
_runs = inventory_sync_runs
_items = inventory_items
_missing = inventory_missing_items

_Upsertable = postgresql.Insert | sqlite.Insert


def _native_insert(dialect: str, table: Any) -> _Upsertable:
    """The dialect's own INSERT (the one that knows ON CONFLICT)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _scoped(
    method: Callable[Concatenate[InventoryStore, int, _P], _R],
) -> Callable[Concatenate[InventoryStore, int, _P], _R]:
    """Run a tenant's method in that tenant's scope (what row-level security keys on, db/rls.py)."""

    @functools.wraps(method)
    def scoped(self: InventoryStore, tenant_pk: int, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with tenant_scope(tenant_pk):
            return method(self, tenant_pk, *args, **kwargs)

    return scoped


class InventoryStore:
    """Reads and writes of the inventory database for the sync service and the Dagster assets."""

    def __init__(self, engine: Engine, *, lease_seconds: float = 300.0, clock: Clock = utcnow) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.missing_batch_size = MISSING_INSERT_BATCH
        self._clock = clock
        self._dialect = engine.dialect.name

    # -- time and transactions ------------------------------------------------------------

    @staticmethod
    def tenant_scope(tenant_pk: int | str) -> contextlib.AbstractContextManager[None]:
        """The scope row-level security keys on (db/rls.py); tenant methods set it themselves."""
        return tenant_scope(tenant_pk)

    def now(self) -> datetime:
        """The store clock's current time (aware UTC); use it for ``seen_at``."""
        return as_utc(self._clock())

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only connection (on SQLite: a deferred transaction, no write lock)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn

    # -- tenants ---------------------------------------------------------------------------

    def mirror_tenants(self, tenants_: Sequence[TenantRecord]) -> dict[str, int]:
        """Upsert the registry's tenants by key; disable (never delete) the ones gone from it.

        Returns ``key -> tenants.id`` for the given tenants.
        """
        keys = [t.key for t in tenants_]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ConfigError(f"tenant key(s) {', '.join(duplicated)} given more than once")
        now = self.now()

        def mirror(conn: Connection) -> dict[str, int]:
            if tenants_:
                self._upsert_tenants(conn, tenants_, now)
            conn.execute(
                update(tenants)
                .where(tenants.c.enabled.is_(True), tenants.c.key.not_in(keys))
                .values(enabled=False, updated_at=now)
            )
            rows = conn.execute(select(tenants.c.key, tenants.c.id).where(tenants.c.key.in_(keys)))
            return {key: int(pk) for key, pk in rows}

        return self._tenant_write(tenants_, mirror)

    def ensure_tenant(self, tenant: TenantRecord) -> int:
        """Upsert one tenant by key (other tenants untouched); return its ``tenants.id``."""
        now = self.now()

        def ensure(conn: Connection) -> int:
            self._upsert_tenants(conn, [tenant], now)
            return int(conn.execute(select(tenants.c.id).where(tenants.c.key == tenant.key)).scalar_one())

        return self._tenant_write([tenant], ensure)

    def _tenant_write(self, records: Sequence[TenantRecord], write: Callable[[Connection], _R]) -> _R:
        """Run a tenants upsert; a unique violation is retried once, then reported as a clash.

        Two processes inserting the same new tenant at once can trip PostgreSQL's unique index
        on ``tenant_id`` (not the ON CONFLICT arbiter, ``key``) although nothing is wrong: on
        the retry the row exists and the upsert takes its conflict path. A second violation is
        a real clash (one Entra tenant under two keys).
        """
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    return write(conn)
            except IntegrityError:
                if attempt == 2:
                    raise self._tenant_conflict(records) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def tenant_pk(self, key: str) -> int:
        """``tenants.id`` of the tenant ``key``; ``UnknownTenantError`` (a KeyError) if not mirrored."""
        with self._read() as conn:
            pk = conn.execute(select(tenants.c.id).where(tenants.c.key == key)).scalar_one_or_none()
        if pk is None:
            raise UnknownTenantError(
                f"tenant {key!r} is not in the tenants table: add it to the registry and let the "
                "registry sensor mirror it (or call mirror_tenants)"
            )
        return int(pk)

    def get_tenant(self, tenant_pk: int) -> TenantRecord:
        with self._read() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_pk)).mappings().one_or_none()
        if row is None:
            raise UnknownTenantError(f"no tenant with id {tenant_pk} in the tenants table")
        return TenantRecord(
            key=row["key"],
            tenant_id=row["tenant_id"],
            display_name=row["display_name"],
            cloud=row["cloud"],
            enabled=bool(row["enabled"]),
        )

    def _upsert_tenants(self, conn: Connection, records: Sequence[TenantRecord], now: datetime) -> None:
        stmt = _native_insert(self._dialect, tenants)
        changed = [tenants.c[name].is_distinct_from(stmt.excluded[name]) for name in _TENANT_FIELDS]
        stmt = stmt.on_conflict_do_update(
            index_elements=[tenants.c.key],
            set_={**{name: stmt.excluded[name] for name in _TENANT_FIELDS}, "updated_at": now},
            where=or_(*changed),
        )
        conn.execute(
            stmt,
            [
                {
                    "key": r.key,
                    "tenant_id": r.tenant_id,
                    "display_name": r.display_name,
                    "cloud": r.cloud,
                    "enabled": r.enabled,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in records
            ],
        )

    def _tenant_conflict(self, records: Sequence[TenantRecord]) -> ConfigError:
        by_guid = {r.tenant_id: r.key for r in records}
        with self._read() as conn:
            rows = conn.execute(
                select(tenants.c.key, tenants.c.tenant_id).where(tenants.c.tenant_id.in_(list(by_guid)))
            ).all()
        clashes = [
            f"tenant_id {guid} of {by_guid[guid]!r} is already mirrored under key {key!r}"
            for key, guid in rows
            if by_guid.get(guid) != key
        ]
        detail = "; ".join(clashes) or "a tenant_id appears under two keys"
        return ConfigError(f"{detail}: each Entra tenant may appear under one key only; fix the registry")

    def _require_tenant(self, conn: Connection, tenant_pk: int) -> None:
        if conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_pk)).first() is None:
            raise UnknownTenantError(f"no tenant with id {tenant_pk} in the tenants table")

    # -- runs and the lock -----------------------------------------------------------------

    @_scoped
    def start_run(
        self,
        tenant_pk: int,
        selection_key: str,
        selection_hash: str,
        selection_payload: str,
        *,
        correlation_id: str | None = None,
        dagster_run_id: str | None = None,
    ) -> RunStart:
        """Take the (tenant, selection hash) lock and record a running run, or record a skipped one.

        A running run with a fresh heartbeat lease holds the lock: we insert a ``skipped``
        run (``lock_contended``). A running run whose lease expired is marked ``failed``
        (``run_abandoned``) and we take over. Two starters racing past the check are settled
        by the partial unique index: the loser records a skipped run.
        """
        if len(selection_hash) != 64:
            raise ValueError("selection_hash must be the 64 hex sha256 of the canonical selection")
        base: dict[str, Any] = {
            "tenant_id": tenant_pk,
            "selection_key": selection_key,
            "selection_hash": selection_hash,
            "selection_payload": selection_payload,
            "correlation_id": correlation_id or str(uuid.uuid4()),
            "dagster_run_id": dagster_run_id,
        }
        try:
            with self.engine.begin() as conn:
                self._require_tenant(conn, tenant_pk)
                now = self.now()
                holder = self._lock_holder(conn, tenant_pk, selection_hash)
                abandoned: list[int] = []
                if holder is not None:
                    if self._lease_alive(holder, now):
                        return self._skipped(conn, base, now, holder)
                    self._abandon(conn, holder, now)
                    abandoned.append(holder.id)
                run_id = self._insert_run(
                    conn, base, now, status=RunStatus.RUNNING, heartbeat_at=now, finished_at=None
                )
                return RunStart(run_id, RunStatus.RUNNING, abandoned)
        except IntegrityError:
            # lost the race for the partial unique index: somebody else holds the lock now
            with self.engine.begin() as conn:
                now = self.now()
                holder = self._lock_holder(conn, tenant_pk, selection_hash)
                if holder is None:
                    raise
                return self._skipped(conn, base, now, holder)

    def _lock_holder(self, conn: Connection, tenant_pk: int, selection_hash: str) -> SyncRunRow | None:
        row = (
            conn.execute(
                select(_runs)
                .where(
                    _runs.c.tenant_id == tenant_pk,
                    _runs.c.selection_hash == selection_hash,
                    _runs.c.status == RunStatus.RUNNING.value,
                )
                .order_by(_runs.c.id)
                .limit(1)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        return SyncRunRow.from_mapping(row) if row is not None else None

    def _lease_alive(self, run: SyncRunRow, now: datetime) -> bool:
        last = run.heartbeat_at or run.started_at
        return now - last < self.lease

    def _insert_run(
        self,
        conn: Connection,
        base: dict[str, Any],
        now: datetime,
        *,
        status: RunStatus,
        heartbeat_at: datetime | None,
        finished_at: datetime | None,
        errors: Sequence[ErrorRecord] = (),
    ) -> int:
        context: dict[str, list[dict[str, Any]]] = {}
        for error in errors:
            context.setdefault(error.policy_type or TENANT_CONTEXT_KEY, []).append(error.to_dict())
        values = {
            **base,
            "status": status.value,
            "had_errors": bool(errors),
            "error_codes": sorted({str(e.code) for e in errors}),
            "error_context": redact_value(context),
            "type_results": {},
            "items_observed_count": 0,
            "items_upserted_count": 0,
            "errors_count": len(errors),
            "started_at": now,
            "finished_at": finished_at,
            "heartbeat_at": heartbeat_at,
            "created_at": now,
            "updated_at": now,
        }
        run_id = conn.execute(_runs.insert().returning(_runs.c.id), values).scalar_one()
        return int(run_id)

    def _skipped(self, conn: Connection, base: dict[str, Any], now: datetime, holder: SyncRunRow) -> RunStart:
        return RunStart(self._insert_skipped(conn, base, now, holder), RunStatus.SKIPPED, lock_holder=holder)

    def _insert_skipped(
        self, conn: Connection, base: dict[str, Any], now: datetime, holder: SyncRunRow
    ) -> int:
        last = holder.heartbeat_at or holder.started_at
        error = ErrorRecord(
            code=ErrorCode.LOCK_CONTENDED,
            message=(
                f"sync run {holder.id} holds the lock of this tenant and selection "
                f"(last heartbeat {last.isoformat()}, lease {self.lease.total_seconds():g}s): skipped"
            ),
        )
        return self._insert_run(
            conn, base, now, status=RunStatus.SKIPPED, heartbeat_at=None, finished_at=now, errors=[error]
        )

    def _abandon(self, conn: Connection, holder: SyncRunRow, now: datetime) -> None:
        last = holder.heartbeat_at or holder.started_at
        error = ErrorRecord(
            code=ErrorCode.RUN_ABANDONED,
            message=(
                f"no heartbeat since {last.isoformat()} (lease {self.lease.total_seconds():g}s): "
                "the run's process died; a later run took over the lock"
            ),
        )
        self._fail_row(conn, holder, error, now)

    def _fail_row(self, conn: Connection, run: SyncRunRow, error: ErrorRecord, now: datetime) -> int:
        """Mark a running or pending run failed with ``error`` added to its record."""
        context = {key: list(value) for key, value in run.error_context.items()}
        context.setdefault(error.policy_type or TENANT_CONTEXT_KEY, []).append(error.to_dict())
        result = conn.execute(
            update(_runs)
            .where(_runs.c.id == run.id, _runs.c.status.in_(_ACTIVE))
            .values(
                status=RunStatus.FAILED.value,
                had_errors=True,
                error_codes=sorted({*run.error_codes, str(error.code)}),
                error_context=redact_value(context),
                errors_count=run.errors_count + 1,
                finished_at=now,
                updated_at=now,
            )
        )
        return int(result.rowcount)

    @_scoped
    def heartbeat(self, tenant_pk: int, run_id: int) -> None:
        """Renew the run's lease; ``RunNotRunningError`` if it is no longer running (lock lost)."""
        with self.engine.begin() as conn:
            self._touch(conn, tenant_pk, run_id, self.now())

    def _touch(self, conn: Connection, tenant_pk: int, run_id: int, now: datetime) -> None:
        result = conn.execute(
            update(_runs)
            .where(
                _runs.c.id == run_id,
                _runs.c.tenant_id == tenant_pk,
                _runs.c.status == RunStatus.RUNNING.value,
            )
            .values(heartbeat_at=now, updated_at=now)
        )
        if result.rowcount != 1:
            raise self._not_running(conn, tenant_pk, run_id)

    def _not_running(self, conn: Connection, tenant_pk: int, run_id: int) -> StoreError:
        status = conn.execute(
            select(_runs.c.status).where(_runs.c.id == run_id, _runs.c.tenant_id == tenant_pk)
        ).scalar_one_or_none()
        if status is None:
            return UnknownRunError(f"no sync run {run_id} for tenant id {tenant_pk}")
        return RunNotRunningError(
            f"sync run {run_id} is {status}, not running (finished, marked failed, or taken over "
            "after its heartbeat lease expired): it may not write any more"
        )

    @_scoped
    def finish_run(self, tenant_pk: int, run_id: int, outcome: RunOutcome) -> None:
        """Record the outcome of a running run: status, errors (redacted), per-type results, counts."""
        status = RunStatus(outcome.status)
        if status not in COMPLETED_STATUSES:
            raise ValueError(f"a run finishes as success, partial or failed, not {status.value}")
        now = self.now()
        values = {
            "status": status.value,
            "had_errors": bool(outcome.had_errors or outcome.errors or status is not RunStatus.SUCCESS),
            "error_codes": outcome.error_codes,
            "error_context": redact_value(outcome.error_context()),
            "type_results": redact_value({k: v.to_dict() for k, v in outcome.type_results.items()}),
            "items_observed_count": outcome.items_observed,
            "items_upserted_count": outcome.items_upserted,
            "items_new_count": outcome.items_new,
            "items_changed_count": outcome.items_changed,
            "items_unchanged_count": outcome.items_unchanged,
            "errors_count": len(outcome.errors),
            "finished_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            result = conn.execute(
                update(_runs)
                .where(_runs.c.id == run_id, _runs.c.tenant_id == tenant_pk, _runs.c.status.in_(_ACTIVE))
                .values(**values)
            )
            if result.rowcount != 1:
                raise self._not_running(conn, tenant_pk, run_id)

    def mark_run_failed(
        self,
        run_id: int | None = None,
        *,
        dagster_run_id: str | None = None,
        code: ErrorCode = ErrorCode.UNEXPECTED_EXCEPTION,
        message: str = "",
    ) -> int:
        """Mark a still running/pending run failed (by its id and/or its Dagster run id).

        Returns the number of runs changed (0 when it had already finished).
        """
        if run_id is None and dagster_run_id is None:
            raise ValueError("mark_run_failed needs run_id or dagster_run_id")
        conditions: list[ColumnElement[bool]] = [_runs.c.status.in_(_ACTIVE)]
        if run_id is not None:
            conditions.append(_runs.c.id == run_id)
        if dagster_run_id is not None:
            conditions.append(_runs.c.dagster_run_id == dagster_run_id)
        error = ErrorRecord(code=ErrorCode(code), message=message or f"the run was marked failed ({code})")
        # found by id across tenants (the run-failure sensor): under RLS this needs the explicit
        # all-tenants scope unless a tenant's scope is already set
        with tenant_scope(current_scope() or ALL_TENANTS), self.engine.begin() as conn:
            now = self.now()
            rows = conn.execute(select(_runs).where(and_(*conditions)).with_for_update()).mappings().all()
            changed = [self._fail_row(conn, SyncRunRow.from_mapping(row), error, now) for row in rows]
            return sum(changed)

    @_scoped
    def get_run(self, tenant_pk: int, run_id: int) -> SyncRunRow:
        with self._read() as conn:
            row = (
                conn.execute(select(_runs).where(_runs.c.id == run_id, _runs.c.tenant_id == tenant_pk))
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise UnknownRunError(f"no sync run {run_id} for tenant id {tenant_pk}")
        return SyncRunRow.from_mapping(row)

    @_scoped
    def runs(self, tenant_pk: int, selection_hash: str | None = None, limit: int = 50) -> list[SyncRunRow]:
        """The tenant's runs (of one selection hash if given), newest first."""
        stmt = select(_runs).where(_runs.c.tenant_id == tenant_pk)
        if selection_hash is not None:
            stmt = stmt.where(_runs.c.selection_hash == selection_hash)
        stmt = stmt.order_by(_runs.c.started_at.desc(), _runs.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [SyncRunRow.from_mapping(row) for row in conn.execute(stmt).mappings()]

    @_scoped
    def latest_completed_run(
        self, tenant_pk: int, selection_hash: str, statuses: Collection[RunStatus] = COMPLETED_STATUSES
    ) -> SyncRunRow | None:
        """The newest completed run with ``finished_at`` set (by default success/partial/failed:
        the missing reference); ``statuses`` narrows it, e.g. to the usable ones for freshness."""
        with self._read() as conn:
            return self._latest_completed(conn, tenant_pk, selection_hash, statuses)

    def latest_finish_times(
        self, statuses: Collection[RunStatus] = USABLE_STATUSES
    ) -> dict[tuple[str, str], datetime]:
        """(tenant key, selection hash) -> the newest ``finished_at`` of a run in ``statuses``.

        One grouped query over every tenant (the freshness sensor reads the whole fleet at once).
        """
        stmt = (
            select(tenants.c.key, _runs.c.selection_hash, func.max(_runs.c.finished_at))
            .join(tenants, tenants.c.id == _runs.c.tenant_id)
            .where(_runs.c.status.in_(sorted(s.value for s in statuses)), _runs.c.finished_at.is_not(None))
            .group_by(tenants.c.key, _runs.c.selection_hash)
        )
        with tenant_scope(current_scope() or ALL_TENANTS), self._read() as conn:
            return {(key, sel): as_utc(at) for key, sel, at in conn.execute(stmt)}

    def _latest_completed(
        self,
        conn: Connection,
        tenant_pk: int,
        selection_hash: str,
        statuses: Collection[RunStatus] = COMPLETED_STATUSES,
    ) -> SyncRunRow | None:
        row = (
            conn.execute(
                select(_runs)
                .where(
                    _runs.c.tenant_id == tenant_pk,
                    _runs.c.selection_hash == selection_hash,
                    _runs.c.status.in_(sorted(s.value for s in statuses)),
                    _runs.c.finished_at.is_not(None),
                )
                .order_by(_runs.c.started_at.desc(), _runs.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        return SyncRunRow.from_mapping(row) if row is not None else None

    # -- items -----------------------------------------------------------------------------

    def upsert_items(
        self,
        tenant_pk: int,
        run_id: int,
        policy_type: str,
        items: Sequence[NormalizedItem],
        seen_at: datetime,
    ) -> int:
        """Insert or refresh a batch of one policy type in one statement; returns distinct items written.

        Duplicate ids in the batch collapse (the last one wins). The run must be running
        (its lease is renewed in the same transaction), else ``RunNotRunningError``.
        """
        return self.upsert_batches(tenant_pk, run_id, {policy_type: items}, seen_at)

    @_scoped
    def upsert_batches(
        self,
        tenant_pk: int,
        run_id: int,
        batches: Mapping[str, Sequence[NormalizedItem]],
        seen_at: datetime,
        *,
        counts: WriteCounts | None = None,
    ) -> int:
        """``upsert_items`` for several policy types at once: one statement, one transaction.

        ``counts``, when given, gains what the statement found per type: new, changed and
        unchanged items (contract section 5b).
        """
        # each id once per type: the last one wins
        latest = {
            key: list({i.external_id: i for i in items}.values()) for key, items in batches.items() if items
        }
        if not latest:
            return 0
        seen_at = as_utc(seen_at)
        now = self.now()
        with self.engine.begin() as conn:
            self._touch(conn, tenant_pk, run_id, now)
            found = write_items(conn, tenant_pk, run_id, latest, seen_at, now)
        if counts is not None:
            counts.add(found)
        return found.total

    @_scoped
    def count_items(self, tenant_pk: int, policy_types: Collection[str] | None = None) -> int:
        stmt = select(func.count()).select_from(_items).where(_items.c.tenant_id == tenant_pk)
        if policy_types is not None:
            stmt = stmt.where(_items.c.policy_type.in_(sorted(set(policy_types))))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- missing ---------------------------------------------------------------------------

    @_scoped
    def derive_missing(
        self,
        tenant_pk: int,
        selection_key: str,
        selection_hash: str,
        policy_types: Collection[str],
    ) -> MissingResult:
        """Items of the selection's types not observed since the latest completed run R started.

        ``selection_key`` names the partition (kept for symmetry with ``replace_missing``);
        the reference is chosen by ``selection_hash`` only.
        """
        types = sorted(set(policy_types))
        with self._read() as conn:
            reference = self._latest_completed(conn, tenant_pk, selection_hash)
            if reference is None:
                return MissingResult(None, [], None, NO_REFERENCE_REASON, selection_hash)
            rows = (
                conn.execute(
                    select(
                        _items.c.id,
                        _items.c.policy_type,
                        _items.c.external_id,
                        _items.c.display_name,
                        _items.c.last_seen_at,
                    )
                    .where(
                        _items.c.tenant_id == tenant_pk,
                        _items.c.policy_type.in_(types),
                        _items.c.last_seen_at < reference.started_at,
                    )
                    .order_by(_items.c.policy_type, _items.c.external_id)
                ).all()
                if types
                else []
            )
        confidence, reason, failed = assess_confidence(reference, types)
        return MissingResult(
            reference_run=reference,
            rows=[MissingRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows],
            confidence=confidence,
            confidence_reason=reason,
            selection_hash=selection_hash,
            failed_policy_types=failed,
        )

    @_scoped
    def replace_missing(self, tenant_pk: int, selection_key: str, result: MissingResult) -> int:
        """Replace the partition's rows of ``inventory_missing_items`` in one transaction."""
        reference = result.reference_run
        if reference is not None and reference.tenant_id != tenant_pk:
            raise ValueError(f"the reference run {reference.id} belongs to another tenant")
        if result.rows and (reference is None or result.confidence is None):
            raise ValueError("missing rows need a reference run and a confidence")
        with self.engine.begin() as conn:
            conn.execute(
                delete(_missing).where(
                    _missing.c.tenant_id == tenant_pk, _missing.c.selection_key == selection_key
                )
            )
            if reference is None or result.confidence is None or not result.rows:
                return 0
            batch = MissingBatch(
                self.engine.dialect,
                tenant_pk,
                selection_key,
                reference.selection_hash,
                reference.id,
                str(result.confidence),
                result.confidence_reason,
                self.now(),
            )
            size = self.missing_batch_size
            for start in range(0, len(result.rows), size):
                conn.execute(batch.statement, batch.parameters(result.rows[start : start + size]))
        return len(result.rows)

    @_scoped
    def missing_summary(self, tenant_pk: int, selection_key: str) -> MissingSummary:
        """Count, confidence and reference run of the partition's stored missing set."""
        stmt = (
            select(
                _missing.c.policy_type,
                _missing.c.confidence,
                _missing.c.sync_run_id,
                _missing.c.confidence_reason,
                func.count(),
            )
            .where(_missing.c.tenant_id == tenant_pk, _missing.c.selection_key == selection_key)
            .group_by(
                _missing.c.policy_type,
                _missing.c.confidence,
                _missing.c.sync_run_id,
                _missing.c.confidence_reason,
            )
            .order_by(_missing.c.policy_type)
        )
        with self._read() as conn:
            groups = conn.execute(stmt).all()
        if not groups:
            return MissingSummary(0, None, None, "no missing rows stored for this partition")
        counts: dict[str, int] = {}
        for policy_type, _, _, _, count in groups:
            counts[policy_type] = counts.get(policy_type, 0) + int(count)
        _, confidence, run_id, reason, _ = groups[0]
        return MissingSummary(sum(counts.values()), Confidence(confidence), int(run_id), reason, counts)

    @_scoped
    def count_items_created_since(
        self, tenant_pk: int, since: datetime, policy_types: Collection[str] | None = None
    ) -> int:
        """Items of the tenant first seen at or after ``since`` (new in a run that started then)."""
        stmt = (
            select(func.count())
            .select_from(_items)
            .where(_items.c.tenant_id == tenant_pk, _items.c.created_at >= as_utc(since))
        )
        if policy_types is not None:
            stmt = stmt.where(_items.c.policy_type.in_(sorted(set(policy_types))))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    @_scoped
    def missing_rows(self, tenant_pk: int, selection_key: str) -> list[dict[str, Any]]:
        """The partition's stored missing rows (for checks and the UI)."""
        with self._read() as conn:
            rows = conn.execute(
                select(_missing)
                .where(_missing.c.tenant_id == tenant_pk, _missing.c.selection_key == selection_key)
                .order_by(_missing.c.policy_type, _missing.c.external_id)
            ).mappings()
            return [dict(row) for row in rows]


_TENANT_FIELDS = ("tenant_id", "display_name", "cloud", "enabled")
