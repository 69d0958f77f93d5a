"""Limit D, the database floor: write W1's normalised rows with the best bulk upsert the database offers.

Every method below is timed on the same rows, first load (all inserts) and reload
(every row conflicts), each in one transaction; the floor is the fastest of them:

- PostgreSQL ``copy``: ``COPY`` into a temporary table, then one ``INSERT ... SELECT ...
  ON CONFLICT DO UPDATE``;
- PostgreSQL ``json``: one ``INSERT ... SELECT FROM json_to_recordset(document) ON CONFLICT``
  for all rows (the statement the store sends per batch, here for all 100,000 at once);
- ``json_1000`` (both databases): the same statement per 1,000 rows, in one transaction;
- SQLite ``executemany``: ``INSERT ... ON CONFLICT DO UPDATE`` per row on the raw driver;
- SQLite ``json``: the same one statement over ``json_each(document)``.

All use the store's own conflict clause (what a refresh writes). Building the rows
(simulator items through ``normalize_item``) is not timed; serialising them for the
database (CSV for COPY, the JSON document) is.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import text

from benchmarks.common import machine_busy_seconds
from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.json_batches import STATEMENTS, parameters, update_clause
from tenantatlas_pipelines.db.records import TenantRecord
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.normalize import NormalizedItem, normalize_item
from tenantatlas_pipelines.simulator.scenario import Scenario, items_for

COLUMNS = (
    "tenant_id", "policy_type", "external_id", "display_name", "category", "platform",
    "meta_jsonb", "last_seen_at", "last_seen_run_id", "created_at", "updated_at",
)  # fmt: skip


class Rows:
    """W1's normalised rows, and what each method needs to write them."""

    def __init__(self, scenario_file: str, tenant_pk: int, run_id: int, now: datetime) -> None:
        scenario = Scenario.from_yaml(scenario_file)
        tenant = scenario.tenants[0]
        self.tenant_pk, self.run_id, self.now = tenant_pk, run_id, now
        self.by_type: dict[str, list[NormalizedItem]] = {}
        for key, policy_type in CATALOG.items():
            items = {}
            for raw in items_for(scenario, tenant, key, 1):
                item = normalize_item(policy_type, raw)
                items[item.external_id] = item
            self.by_type[key] = list(items.values())
        self.count = sum(map(len, self.by_type.values()))

    def chunks(self, size: int) -> list[dict[str, list[NormalizedItem]]]:
        """The rows in chunks of ``size`` (a chunk may span policy types)."""
        flat = [(key, item) for key, items in self.by_type.items() for item in items]
        out: list[dict[str, list[NormalizedItem]]] = []
        for start in range(0, len(flat), size):
            chunk: dict[str, list[NormalizedItem]] = {}
            for key, item in flat[start : start + size]:
                chunk.setdefault(key, []).append(item)
            out.append(chunk)
        return out

    def tuples(self) -> list[tuple[Any, ...]]:
        now, run = self.now, self.run_id
        return [
            (self.tenant_pk, key, item.external_id, item.display_name, item.category, item.platform,
             json.dumps(item.meta), now, run, now, now)
            for key, items in self.by_type.items() for item in items
        ]  # fmt: skip


def _postgres_copy(engine: Any, rows: Rows, tuples: Any) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("CREATE TEMP TABLE bench_stage (LIKE inventory_items INCLUDING DEFAULTS) ON COMMIT DROP")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in tuples:
            writer.writerow([r.isoformat() if isinstance(r, datetime) else r for r in row])
        buffer.seek(0)
        cur.copy_expert(f"COPY bench_stage ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buffer)
        cur.execute(
            f"INSERT INTO inventory_items ({', '.join(COLUMNS)}) "
            f"SELECT {', '.join(COLUMNS)} FROM bench_stage "
            "ORDER BY policy_type, external_id "
            "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE SET " + update_clause("postgresql")
        )
        raw.commit()
    finally:
        raw.close()


def _sqlite_tuples(rows: Rows) -> list[tuple[Any, ...]]:
    return [
        tuple(r.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(r, datetime) else r for r in row)
        for row in rows.tuples()
    ]


def _sqlite_executemany(engine: Any, rows: Rows, tuples: Any) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.executemany(
            f"INSERT INTO inventory_items ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE SET " + update_clause("sqlite"),
            tuples,
        )
        cur.execute("COMMIT")
    finally:
        raw.close()


def _json_statement(engine: Any, rows: Rows, _prepared: Any) -> None:
    with engine.begin() as conn:  # the JSON document is built inside the timing
        conn.execute(
            STATEMENTS[engine.dialect.name],
            parameters(rows.tenant_pk, rows.run_id, rows.by_type, rows.now, rows.now),
        )


def _json_batches(engine: Any, rows: Rows, chunks: Any) -> None:
    with engine.begin() as conn:
        for batch in chunks:
            conn.execute(
                STATEMENTS[engine.dialect.name],
                parameters(rows.tenant_pk, rows.run_id, batch, rows.now, rows.now),
            )


def _chunks(rows: Rows) -> list[dict[str, list[NormalizedItem]]]:
    return rows.chunks(BATCH)


def _nothing(_rows: Rows) -> None:
    return None


BATCH = 1000
Prepare = Callable[[Rows], Any]  # not timed: the rows as the driver takes them
Load = Callable[[Any, Rows, Any], None]  # timed
METHODS: dict[str, dict[str, tuple[Prepare, Load]]] = {
    "postgresql": {
        "copy": (Rows.tuples, _postgres_copy),
        "json": (_nothing, _json_statement),
        "json_1000": (_chunks, _json_batches),
    },
    "sqlite": {
        "executemany": (_sqlite_tuples, _sqlite_executemany),
        "json": (_nothing, _json_statement),
        "json_1000": (_chunks, _json_batches),
    },
}


def _timed(load: Load, engine: Any, rows: Rows, prepared: Any) -> tuple[float, float]:
    busy = machine_busy_seconds()
    started = time.perf_counter()
    load(engine, rows, prepared)
    return time.perf_counter() - started, machine_busy_seconds() - busy


def work(args: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(args["url"])
    store = InventoryStore(engine)
    tenant_pk = store.ensure_tenant(TenantRecord("limit-d", args["tenant_id"], "limit D", "global", True))
    start = store.start_run(tenant_pk, "all", "0" * 64, "{}")
    rows = Rows(args["scenario"], tenant_pk, start.run_id, store.now())
    methods: dict[str, dict[str, float]] = {}
    for name, (prepare, load) in METHODS[engine.dialect.name].items():
        prepared = prepare(rows)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM inventory_items"))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE inventory_items"))
        first, first_cpu = _timed(load, engine, rows, prepared)
        reload, reload_cpu = _timed(load, engine, rows, prepared)
        with engine.connect() as conn:
            count = int(conn.execute(text("SELECT count(*) FROM inventory_items")).scalar_one())
        assert count == rows.count, (name, count)
        methods[name] = {
            "first_seconds": first,
            "first_machine_cpu_seconds": first_cpu,
            "reload_seconds": reload,
            "reload_machine_cpu_seconds": reload_cpu,
        }
    best_first = min(methods, key=lambda m: methods[m]["first_seconds"])
    best_reload = min(methods, key=lambda m: methods[m]["reload_seconds"])
    n = rows.count
    return {
        "items": n,
        "stored": n,
        "methods": methods,
        "first_method": best_first,
        "reload_method": best_reload,
        "first_seconds": methods[best_first]["first_seconds"],
        "first_machine_cpu_seconds": methods[best_first]["first_machine_cpu_seconds"],
        "reload_seconds": methods[best_reload]["reload_seconds"],
        "reload_machine_cpu_seconds": methods[best_reload]["reload_machine_cpu_seconds"],
        "first_items_per_s": n / methods[best_first]["first_seconds"],
        "reload_items_per_s": n / methods[best_reload]["reload_seconds"],
    }
