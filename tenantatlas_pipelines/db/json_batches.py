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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Dialect

from tenantatlas_pipelines.db.records import MissingRow
from tenantatlas_pipelines.db.types import UtcDateTime
from tenantatlas_pipelines.inventory.normalize import NormalizedItem

# what the item says; ``updated_at`` moves only when one of these changes
CONTENT_COLUMNS: Final = ("display_name", "category", "platform", "meta_jsonb")
_INSERTED = (
    "tenant_id, policy_type, external_id, display_name, category, platform, "
    "meta_jsonb, last_seen_at, last_seen_run_id, created_at, updated_at"
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
    - ``updated_at`` moves only when a content column changed.

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
    assignments["updated_at"] = f"CASE WHEN {unchanged} THEN {_STORED}updated_at ELSE {_NEW}updated_at END"
    return assignments


def update_clause(dialect: str) -> str:
    """The ``DO UPDATE SET`` list of ``update_assignments``."""
    return ", ".join(f"{column} = {value}" for column, value in update_assignments(dialect).items())


def _statement(dialect: str) -> TextClause:
    if dialect == "postgresql":
        fields = ", ".join(f"s.{f}" for f in _TEXT_FIELDS)
        columns = ", ".join(f"{f} text" for f in _TEXT_FIELDS)
        source = (
            f"SELECT :tenant, t.key, {fields}, s.meta, :seen_at, :run_id, :now, :now "
            "FROM json_each(CAST(:rows AS json)) AS t, "
            f"json_to_recordset(t.value) AS s({columns}, meta jsonb) "
            # the same lock order in every run (code point order): overlapping runs cannot deadlock
            'ORDER BY t.key COLLATE "C", s.external_id COLLATE "C" '
        )
    else:
        fields = ", ".join(f"s.value ->> '$.{f}'" for f in _TEXT_FIELDS)
        source = (
            f"SELECT :tenant, t.key, {fields}, s.value -> '$.meta', :seen_at, :run_id, :now, :now "
            # WHERE true: SQLite's upsert after INSERT ... SELECT needs a WHERE to parse
            "FROM json_each(:rows) AS t, json_each(t.value) AS s WHERE true ORDER BY 2, 3 "
        )
    sql = f"INSERT INTO inventory_items ({_INSERTED}) {source}{_CONFLICT}{update_clause(dialect)}"
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
