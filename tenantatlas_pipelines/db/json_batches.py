"""Bulk writes sent as one JSON document: the item upsert and the missing rows.

The item upsert writes a whole batch (one or more policy types) in one statement.

The batch travels as a single JSON document (``{policy type: [item, ...]}``) that the
database unpacks itself (``json_each`` + ``json_to_recordset`` on PostgreSQL, ``json_each``
on SQLite). One bound parameter per
batch instead of eleven per row: the driver and SQLAlchemy do no per-row work, and
serialising the batch is one call into orjson. Measured against ``unnest`` of five
arrays and against ``COPY`` in benchmarks/README.md.

What a refresh writes: an unchanged item gets its ``last_seen_at`` and
``last_seen_run_id`` (the missing derivation needs them) and keeps ``updated_at``;
``updated_at`` moves only when the name, category, platform or meta changed.
``last_seen_at`` never moves backwards, and ``last_seen_run_id`` follows only a forward
move (``update_assignments``).

Content fingerprints (contract section 5b): ``content_hash`` is the item's sha256
(inventory/fingerprint.py); ``content_changed_at`` and ``content_changed_run_id`` move, with
``updated_at``, only when a stored hash changes. A row without a hash (written before
migration 0004) takes its hash on its next write without counting as changed. The
statement returns one row per item written, classified ``new`` (first written by this run),
``changed`` (its hash moved in this run) or ``unchanged`` (``WRITE_KINDS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Connection, Dialect

from tenantatlas_pipelines.db.records import MissingRow
from tenantatlas_pipelines.db.types import UtcDateTime
from tenantatlas_pipelines.inventory.normalize import NormalizedItem

# what the item says; ``updated_at`` moves only when one of these changes
CONTENT_COLUMNS: Final = ("display_name", "category", "platform", "meta_jsonb")
_INSERTED = (
    "tenant_id, policy_type, external_id, display_name, category, platform, "
    "meta_jsonb, last_seen_at, last_seen_run_id, created_at, updated_at, "
    "content_hash, content_changed_at, created_run_id, content_changed_run_id"
)
# the kinds of write the statement returns, by their code (the RETURNING column)
WRITE_KINDS: Final = ("new", "changed", "unchanged")
_RETURNING = (
    " RETURNING inventory_items.policy_type, CASE "
    "WHEN inventory_items.created_run_id = :run_id THEN 0 "
    "WHEN inventory_items.content_changed_run_id = :run_id THEN 1 ELSE 2 END"
)
_CONFLICT = "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE SET "
# the text fields of a NormalizedItem the statement reads (then ``meta``, as JSON)
_TEXT_FIELDS = ("external_id", "display_name", "category", "platform")
_STORED = "inventory_items."
_NEW = "excluded."


def _same(dialect: str) -> str:
    """The null-safe equality operator of ``dialect``."""
    return " IS NOT DISTINCT FROM " if dialect == "postgresql" else " IS "


def _later(dialect: str, column: str) -> str:
    """The later of the stored and the new value (both non-null timestamps)."""
    function = "GREATEST" if dialect == "postgresql" else "max"  # SQLite: the two-argument scalar max
    return f"{function}({_STORED}{column}, {_NEW}{column})"


def update_assignments(dialect: str) -> dict[str, str]:
    """The ``DO UPDATE SET`` assignments, column -> SQL expression (in statement order).

    - content columns take the new value;
    - ``last_seen_at`` never moves backwards: two runs of different selections of one tenant
      may overlap and write an item in either order; the item keeps the later time
      (contract section 4, "Monotonic last_seen");
    - ``last_seen_run_id`` follows only a strictly later ``last_seen_at``;
    - ``content_hash`` moves when the item's fingerprint differs from a stored one
      (``content_changed_at`` and ``content_changed_run_id`` with it); a stored NULL (a row
      from before migration 0004) just takes the hash: not a change;
    - ``updated_at`` moves only when a content column or the stored hash changed.

    Every right-hand side reads the row as it was before this statement (both dialects).
    Extend by adding entries: ``update_clause`` joins them.
    """
    same = _same(dialect)
    unchanged = " AND ".join(f"{_STORED}{c}{same}{_NEW}{c}" for c in CONTENT_COLUMNS)
    forward = f"{_NEW}last_seen_at > {_STORED}last_seen_at"
    assignments = {c: f"{_NEW}{c}" for c in CONTENT_COLUMNS}
    assignments["last_seen_at"] = _later(dialect, "last_seen_at")
    assignments["last_seen_run_id"] = (
        f"CASE WHEN {forward} THEN {_NEW}last_seen_run_id ELSE {_STORED}last_seen_run_id END"
    )
    moved = (
        f"({_STORED}content_hash IS NOT NULL AND {_NEW}content_hash IS NOT NULL "
        f"AND {_STORED}content_hash <> {_NEW}content_hash)"
    )
    assignments["content_hash"] = f"coalesce({_NEW}content_hash, {_STORED}content_hash)"
    for column in ("content_changed_at", "content_changed_run_id"):
        assignments[column] = f"CASE WHEN {moved} THEN {_NEW}{column} ELSE {_STORED}{column} END"
    assignments["updated_at"] = (
        f"CASE WHEN {unchanged} AND NOT {moved} THEN {_STORED}updated_at ELSE {_NEW}updated_at END"
    )
    return assignments


def update_clause(dialect: str) -> str:
    """The ``DO UPDATE SET`` list of ``update_assignments``."""
    return ", ".join(f"{column} = {value}" for column, value in update_assignments(dialect).items())


def _statement(dialect: str) -> TextClause:
    # per item: its text fields, then meta (JSON) and the content hash, each at its column
    if dialect == "postgresql":
        text_fields = ", ".join(f"s.{f}" for f in _TEXT_FIELDS)
        columns = ", ".join(f"{f} text" for f in (*_TEXT_FIELDS, "content_hash"))
        meta, content_hash = "s.meta", "s.content_hash"
        source = (
            "FROM json_each(CAST(:rows AS json)) AS t, "
            f"json_to_recordset(t.value) AS s({columns}, meta jsonb) "
            # the same lock order in every run (code point order): overlapping runs cannot deadlock
            'ORDER BY t.key COLLATE "C", s.external_id COLLATE "C" '
        )
    else:
        text_fields = ", ".join(f"s.value ->> '$.{f}'" for f in _TEXT_FIELDS)
        meta, content_hash = "s.value -> '$.meta'", "s.value ->> '$.content_hash'"
        # WHERE true: SQLite's upsert after INSERT ... SELECT needs a WHERE to parse
        source = "FROM json_each(:rows) AS t, json_each(t.value) AS s WHERE true ORDER BY 2, 3 "
    source = (
        f"SELECT :tenant, t.key, {text_fields}, {meta}, :seen_at, :run_id, :now, :now, "
        f"{content_hash}, :now, :run_id, :run_id {source}"
    )
    sql = f"INSERT INTO inventory_items ({_INSERTED}) {source}{_CONFLICT}{update_clause(dialect)}{_RETURNING}"
    return text(sql).bindparams(
        bindparam("seen_at", type_=UtcDateTime()), bindparam("now", type_=UtcDateTime())
    )


STATEMENTS: Final[Mapping[str, TextClause]] = {
    "postgresql": _statement("postgresql"),
    "sqlite": _statement("sqlite"),
}


ItemBatch = Mapping[str, Sequence[NormalizedItem]]  # policy type -> its items, each id once


def batch_document(items: ItemBatch) -> str:
    """The batch as one JSON object: ``{policy type: [item, ...]}``.

    orjson writes the ``NormalizedItem`` dataclasses itself (no dict per item in Python);
    the statement reads the fields it needs by name and ignores ``dropped_meta_keys``.
    """
    try:
        return orjson.dumps(items).decode()
    except TypeError:  # an integer beyond 64 bits (Graph sent one): the standard library takes any
        return json.dumps(items, ensure_ascii=False, default=_fields)


def _fields(item: NormalizedItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}  # type: ignore[attr-defined]


def parameters(tenant_pk: int, run_id: int, items: ItemBatch, seen_at: Any, now: Any) -> dict[str, Any]:
    rows = batch_document(items)
    return {"tenant": tenant_pk, "seen_at": seen_at, "run_id": run_id, "now": now, "rows": rows}


@dataclass(slots=True)
class WriteCounts:
    """What one or more item upserts found, per policy type: ``{type: [new, changed, unchanged]}``."""

    per_type: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(map(sum, self.per_type.values()))

    def kind_total(self, kind: str) -> int:
        index = WRITE_KINDS.index(kind)
        return sum(counts[index] for counts in self.per_type.values())

    def add(self, other: WriteCounts) -> None:
        for policy_type, counts in other.per_type.items():
            mine = self.per_type.setdefault(policy_type, [0, 0, 0])
            for index, count in enumerate(counts):
                mine[index] += count


def write_items(
    conn: Connection, tenant_pk: int, run_id: int, items: ItemBatch, seen_at: Any, now: Any
) -> WriteCounts:
    """Run the item upsert of ``items`` (one statement) and count what it returned per type and kind."""
    counts = WriteCounts()
    per_type = counts.per_type
    result = conn.execute(STATEMENTS[conn.dialect.name], parameters(tenant_pk, run_id, items, seen_at, now))
    for policy_type, kind in result:
        row = per_type.get(policy_type)
        if row is None:
            row = per_type[policy_type] = [0, 0, 0]
        row[kind] += 1
    return counts


# -- the missing rows of a partition ------------------------------------------------------------

_MISSING_INSERTED = (
    "tenant_id, selection_key, selection_hash, sync_run_id, inventory_item_id, policy_type, "
    "external_id, display_name, last_seen_at, confidence, confidence_reason, created_at"
)
_MISSING_CONSTANTS = ":tenant, :selection_key, :selection_hash, :run_id"
_MISSING_TAIL = ":confidence, :reason, :now"


def _missing_statement(dialect: str) -> TextClause:
    if dialect == "postgresql":
        source = (
            f"SELECT {_MISSING_CONSTANTS}, s.k, s.t, s.i, s.n, s.l, {_MISSING_TAIL} "
            "FROM json_to_recordset(CAST(:rows AS json)) "
            "AS s(k bigint, t text, i text, n text, l timestamptz)"
        )
    else:
        fields = ", ".join(f"s.value ->> '$.{f}'" for f in "ktinl")
        source = f"SELECT {_MISSING_CONSTANTS}, {fields}, {_MISSING_TAIL} FROM json_each(:rows) AS s"
    sql = f"INSERT INTO inventory_missing_items ({_MISSING_INSERTED}) {source}"
    return text(sql).bindparams(bindparam("now", type_=UtcDateTime()))


MISSING_STATEMENTS: Final[Mapping[str, TextClause]] = {
    "postgresql": _missing_statement("postgresql"),
    "sqlite": _missing_statement("sqlite"),
}


def _stamp(dialect: Dialect) -> Callable[[datetime], str]:
    """A timestamp as the column's own type binds it on ``dialect``, as text for the document.

    SQLite: naive UTC in SQLAlchemy's fixed-width text form; PostgreSQL: aware UTC, which
    ``timestamptz`` reads back exactly.
    """
    process = UtcDateTime().bind_processor(dialect)
    assert process is not None  # a TypeDecorator always has one
    return lambda at: str(process(at))


class MissingBatch:
    """The constant part of a partition's missing rows; ``parameters`` adds one chunk of rows."""

    def __init__(
        self,
        dialect: Dialect,
        tenant_pk: int,
        selection_key: str,
        selection_hash: str,
        run_id: int,
        confidence: str,
        reason: str,
        now: datetime,
    ) -> None:
        self.statement = MISSING_STATEMENTS[dialect.name]
        self._stamp = _stamp(dialect)
        self._constants = {
            "tenant": tenant_pk,
            "selection_key": selection_key,
            "selection_hash": selection_hash,
            "run_id": run_id,
            "confidence": confidence,
            "reason": reason,
            "now": now,
        }

    def parameters(self, rows: Sequence[MissingRow]) -> dict[str, Any]:
        stamp = self._stamp
        document = [
            {
                "k": r.inventory_item_id,
                "t": r.policy_type,
                "i": r.external_id,
                "n": r.display_name,
                "l": stamp(r.last_seen_at),
            }
            for r in rows
        ]
        return {**self._constants, "rows": orjson.dumps(document).decode()}
