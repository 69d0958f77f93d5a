"""The change history of a partition (tenant, selection): ``inventory_change_events``.

After each completed sync run R of a tenant and selection hash, ``ChangeHistory.record``
appends what happened since the previous completed run P of the same tenant and selection
hash (contract section 5b), for the selection's policy types:

- ``appeared``: seen since R started, first written after P finished (so P did not see it);
- ``changed``: seen since R started, not appeared, its content hash last moved after P
  finished (a hash that P itself moved was already P's change);
- ``disappeared``: the missing rule (reference R) reports it now, it was seen at or after P
  started (so P's missing set did not hold it), and the history does not already hold it as
  disappeared; the event keeps the confidence of the missing set;
- ``reappeared``: the history holds it as disappeared (its latest disappeared/reappeared
  event in this partition is ``disappeared``) and it has been seen since R started.

No previous completed run: R is the partition's baseline and nothing is recorded (there is
nothing to compare with). Rows written before migration 0004 have no hash: they are never
``changed`` until a hash of theirs moves.

Runs of one selection never overlap (the lock), so R's writes all come after P finished.
Runs of other selections of the tenant share the catalog rows and may overlap P: an item
such a run first wrote (or whose hash it moved) after P finished counts for this partition
too, since P did not see it; one it wrote while P ran is taken as seen by P, which misses
only an item created or edited in Graph during P after P listed its type.

Append-only and idempotent per run: the unique key (tenant, selection hash, run, kind, policy
type, external id) with ``ON CONFLICT DO NOTHING`` stores each finding once, however often
the partition is re-materialised for the same reference run. Old events are pruned per
tenant on write (``retention``). No payload and no meta ever enter the table: only the
item's identity and display name (the same text ``inventory_items`` already holds).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tenantatlas_pipelines.db.records import MissingResult, SyncRunRow
from tenantatlas_pipelines.db.rls import tenant_scope
from tenantatlas_pipelines.db.schema import (
    inventory_change_events,
    inventory_items,
    inventory_sync_runs,
)
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import COMPLETED_STATUSES

APPEARED: Final = "appeared"
CHANGED: Final = "changed"
DISAPPEARED: Final = "disappeared"
REAPPEARED: Final = "reappeared"
KINDS: Final = (APPEARED, CHANGED, DISAPPEARED, REAPPEARED)
BASELINE_NOTE: Final = "first completed run of this selection: the baseline, nothing to compare with"
NO_RUN_NOTE: Final = "no completed sync run of this selection yet: nothing recorded"
_LOOKUP_CHUNK = 500  # ids per IN list
_INSERT_CHUNK = 1000  # events per INSERT

_events = inventory_change_events
_items = inventory_items
_runs = inventory_sync_runs
_COMPLETED = sorted(s.value for s in COMPLETED_STATUSES)
_UNIQUE = ["tenant_id", "selection_hash", "sync_run_id", "kind", "policy_type", "external_id"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One finding of a run (one row of ``inventory_change_events`` without its bookkeeping)."""

    kind: str
    policy_type: str
    external_id: str
    display_name: str | None
    confidence: str | None = None


@dataclass(slots=True)
class ChangeResult:
    """What ``record`` found for a partition's latest completed run."""

    selection_key: str
    selection_hash: str
    sync_run_id: int | None  # R, the latest completed run (None: no completed run yet)
    previous_sync_run_id: int | None  # P, the completed run before it (None: R is the baseline)
    events: list[ChangeEvent] = field(default_factory=list)
    inserted: int = 0  # rows this call added (0 on a re-materialisation of the same run)
    pruned: int = 0  # rows of the tenant older than the retention, deleted by this call
    note: str = ""

    def counts(self) -> dict[str, int]:
        """Events per kind, every kind present (0 when none)."""
        found = {kind: 0 for kind in KINDS}
        for event in self.events:
            found[event.kind] += 1
        return found

    def counts_by_policy_type(self) -> dict[str, dict[str, int]]:
        """``{policy type: {kind: count}}`` for the types with events."""
        out: dict[str, dict[str, int]] = {}
        for event in self.events:
            per_kind = out.setdefault(event.policy_type, {kind: 0 for kind in KINDS})
            per_kind[event.kind] += 1
        return dict(sorted(out.items()))


class ChangeHistory:
    """Writes and reads ``inventory_change_events`` for one store (every call is tenant-scoped)."""

    def __init__(self, store: InventoryStore, *, retention: timedelta = timedelta(days=90)) -> None:
        if retention <= timedelta(0):
            raise ValueError("the change retention must be positive")
        self.store = store
        self.retention = retention

    def record(
        self, tenant_pk: int, selection_key: str, selection_hash: str, policy_types: Collection[str]
    ) -> ChangeResult:
        """Append the partition's changes found by its latest completed run (idempotent per run)."""
        types = sorted(set(policy_types))
        missing = self.store.derive_missing(tenant_pk, selection_key, selection_hash, types)
        reference = missing.reference_run
        result = ChangeResult(selection_key, selection_hash, None, None)
        with tenant_scope(tenant_pk), self.store.engine.begin() as conn:
            now = self.store.now()
            result.pruned = self._prune(conn, tenant_pk, now)
            if reference is None:
                result.note = NO_RUN_NOTE
                return result
            result.sync_run_id = reference.id
            previous = self._previous_completed(conn, reference)
            if previous is None:
                result.note = BASELINE_NOTE
                return result
            result.previous_sync_run_id = previous.id
            result.events = self._find(conn, reference, previous, types, missing)
            result.inserted = self._insert(conn, tenant_pk, selection_key, reference, previous, result, now)
            result.note = (
                f"changes of sync run {reference.id} since sync run {previous.id} "
                f"(started {previous.started_at.isoformat(timespec='seconds')})"
            )
        return result

    # -- finding ------------------------------------------------------------------------------

    @staticmethod
    def _previous_completed(conn: Connection, reference: SyncRunRow) -> SyncRunRow | None:
        row = (
            conn.execute(
                select(_runs)
                .where(
                    _runs.c.tenant_id == reference.tenant_id,
                    _runs.c.selection_hash == reference.selection_hash,
                    _runs.c.status.in_(_COMPLETED),
                    _runs.c.finished_at.is_not(None),
                    or_(
                        _runs.c.started_at < reference.started_at,
                        and_(_runs.c.started_at == reference.started_at, _runs.c.id < reference.id),
                    ),
                )
                .order_by(_runs.c.started_at.desc(), _runs.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        return SyncRunRow.from_mapping(row) if row is not None else None

    def _find(
        self,
        conn: Connection,
        reference: SyncRunRow,
        previous: SyncRunRow,
        types: Sequence[str],
        missing: MissingResult,
    ) -> list[ChangeEvent]:
        if not types:
            return []
        tenant_pk = reference.tenant_id
        seen_now = and_(
            _items.c.tenant_id == tenant_pk,
            _items.c.policy_type.in_(types),
            _items.c.last_seen_at >= reference.started_at,
        )
        # P's own writes end by its finished_at; a write of another selection's run while P ran
        # is taken as one P saw too (P listed the same types at about the same time)
        assert previous.finished_at is not None  # a completed run
        created_since = _items.c.created_at >= previous.finished_at
        changed_since = and_(
            _items.c.content_changed_at >= previous.finished_at,
            _items.c.content_changed_run_id.is_not(None),
        )
        identity = (_items.c.policy_type, _items.c.external_id, _items.c.display_name)
        order = (_items.c.policy_type, _items.c.external_id)
        events = [
            ChangeEvent(APPEARED, t, i, n)
            for t, i, n in conn.execute(select(*identity).where(seen_now, created_since).order_by(*order))
        ]
        events += [
            ChangeEvent(CHANGED, t, i, n)
            for t, i, n in conn.execute(
                select(*identity).where(seen_now, changed_since, ~created_since).order_by(*order)
            )
        ]
        held_missing = self._held_missing(conn, reference, types)
        confidence = str(missing.confidence) if missing.confidence is not None else None
        events += [
            ChangeEvent(DISAPPEARED, row.policy_type, row.external_id, row.display_name, confidence)
            for row in missing.rows
            if row.last_seen_at >= previous.started_at
            and (row.policy_type, row.external_id) not in held_missing
        ]
        events += [
            ChangeEvent(REAPPEARED, t, i, n)
            for t, i, n in self._seen_among(conn, seen_now, identity, sorted(held_missing))
        ]
        return events

    @staticmethod
    def _held_missing(conn: Connection, reference: SyncRunRow, types: Sequence[str]) -> set[tuple[str, str]]:
        """Items whose latest disappeared/reappeared event (before run R) is ``disappeared``."""
        rows = conn.execute(
            select(_events.c.policy_type, _events.c.external_id, _events.c.kind)
            .where(
                _events.c.tenant_id == reference.tenant_id,
                _events.c.selection_hash == reference.selection_hash,
                _events.c.kind.in_((DISAPPEARED, REAPPEARED)),
                _events.c.sync_run_id != reference.id,
                _events.c.policy_type.in_(types),
            )
            .order_by(_events.c.id)
        )
        latest: dict[tuple[str, str], str] = {}
        for policy_type, external_id, kind in rows:
            latest[policy_type, external_id] = kind
        return {key for key, kind in latest.items() if kind == DISAPPEARED}

    @staticmethod
    def _seen_among(
        conn: Connection, seen_now: Any, identity: Any, keys: Sequence[tuple[str, str]]
    ) -> Iterable[tuple[str, str, str | None]]:
        wanted = set(keys)
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            ids = sorted({external_id for _, external_id in keys[start : start + _LOOKUP_CHUNK]})
            rows = conn.execute(select(*identity).where(seen_now, _items.c.external_id.in_(ids)))
            yield from sorted((t, i, n) for t, i, n in rows if (t, i) in wanted)

    # -- writing --------------------------------------------------------------------------------

    def _insert(
        self,
        conn: Connection,
        tenant_pk: int,
        selection_key: str,
        reference: SyncRunRow,
        previous: SyncRunRow,
        result: ChangeResult,
        now: datetime,
    ) -> int:
        rows = [
            {
                "tenant_id": tenant_pk,
                "selection_key": selection_key,
                "selection_hash": reference.selection_hash,
                "kind": e.kind,
                "policy_type": e.policy_type,
                "external_id": e.external_id,
                "display_name": e.display_name,
                "sync_run_id": reference.id,
                "previous_sync_run_id": previous.id,
                "confidence": e.confidence,
                "recorded_at": now,
            }
            for e in result.events
        ]
        if not rows:
            return 0
        dialect = conn.dialect.name
        insert = postgresql.insert(_events) if dialect == "postgresql" else sqlite.insert(_events)
        statement = insert.on_conflict_do_nothing(index_elements=_UNIQUE)
        before = self._count_run(conn, tenant_pk, reference)
        for start in range(0, len(rows), _INSERT_CHUNK):
            conn.execute(statement, rows[start : start + _INSERT_CHUNK])
        return self._count_run(conn, tenant_pk, reference) - before

    @staticmethod
    def _count_run(conn: Connection, tenant_pk: int, reference: SyncRunRow) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(_events)
                .where(
                    _events.c.tenant_id == tenant_pk,
                    _events.c.selection_hash == reference.selection_hash,
                    _events.c.sync_run_id == reference.id,
                )
            ).scalar_one()
        )

    def _prune(self, conn: Connection, tenant_pk: int, now: datetime) -> int:
        result = conn.execute(
            delete(_events).where(
                _events.c.tenant_id == tenant_pk, _events.c.recorded_at < now - self.retention
            )
        )
        return int(result.rowcount)

    # -- reading ----------------------------------------------------------------------------------

    def events(
        self, tenant_pk: int, selection_hash: str | None = None, sync_run_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's stored events (of one selection hash / run if given), oldest first."""
        stmt = select(_events).where(_events.c.tenant_id == tenant_pk)
        if selection_hash is not None:
            stmt = stmt.where(_events.c.selection_hash == selection_hash)
        if sync_run_id is not None:
            stmt = stmt.where(_events.c.sync_run_id == sync_run_id)
        with tenant_scope(tenant_pk), self.store.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt.order_by(_events.c.id)).mappings()]
