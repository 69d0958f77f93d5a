"""Limit D, the database floor: write W1's normalised rows with the best bulk upsert the database offers.

PostgreSQL: ``COPY`` into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT
(tenant_id, policy_type, external_id) DO UPDATE`` per policy type, in one transaction.
SQLite: ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` in one transaction on the
raw driver. Timed twice: first load (all inserts) and reload (every row conflicts).
The rows are built in memory first (from the simulator's own item generator and
``normalize_item``) and are not timed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import text

from benchmarks.common import machine_busy_seconds
from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.records import TenantRecord
from tenantatlas_pipelines.db.store import ITEM_UPDATE_COLUMNS, InventoryStore
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.normalize import normalize_item
from tenantatlas_pipelines.simulator.scenario import Scenario, items_for

COLUMNS = (
    "tenant_id", "policy_type", "external_id", "display_name", "category", "platform",
    "meta_jsonb", "last_seen_at", "last_seen_run_id", "created_at", "updated_at",
)  # fmt: skip
UPDATED = ITEM_UPDATE_COLUMNS  # what the store refreshes on a conflict


def build_rows(scenario_file: str, tenant_pk: int, run_id: int, now: datetime) -> list[tuple[Any, ...]]:
    scenario = Scenario.from_yaml(scenario_file)
    tenant = scenario.tenants[0]
    rows: list[tuple[Any, ...]] = []
    for key, policy_type in CATALOG.items():
        for raw in items_for(scenario, tenant, key, 1):
            item = normalize_item(policy_type, raw)
            rows.append(
                (tenant_pk, key, item.external_id, item.display_name, item.category, item.platform,
                 json.dumps(item.meta), now, run_id, now, now)
            )  # fmt: skip
    return rows


def _postgres_load(engine: Any, rows: list[tuple[Any, ...]]) -> float:
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        cur = raw.cursor()
        cur.execute("CREATE TEMP TABLE bench_stage (LIKE inventory_items INCLUDING DEFAULTS) ON COMMIT DROP")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow([r.isoformat() if isinstance(r, datetime) else r for r in row])
        buffer.seek(0)
        cur.copy_expert(f"COPY bench_stage ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buffer)
        cur.execute(
            f"INSERT INTO inventory_items ({', '.join(COLUMNS)}) "
            f"SELECT {', '.join(COLUMNS)} FROM bench_stage "
            "ORDER BY policy_type, external_id "
            "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in UPDATED)
        )
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def _sqlite_load(engine: Any, rows: list[tuple[Any, ...]]) -> float:
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.executemany(
            f"INSERT INTO inventory_items ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT (tenant_id, policy_type, external_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in UPDATED),
            [
                tuple(r.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(r, datetime) else r for r in row)
                for row in rows
            ],
        )
        cur.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        raw.close()


def work(args: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(args["url"])
    store = InventoryStore(engine)
    tenant_pk = store.ensure_tenant(TenantRecord("limit-d", args["tenant_id"], "limit D", "global", True))
    start = store.start_run(tenant_pk, "all", "0" * 64, "{}")
    rows = build_rows(args["scenario"], tenant_pk, start.run_id, store.now())
    load = _postgres_load if engine.dialect.name == "postgresql" else _sqlite_load
    busy = machine_busy_seconds()
    first = load(engine, rows)
    first_cpu = machine_busy_seconds() - busy
    busy = machine_busy_seconds()
    second = load(engine, rows)
    second_cpu = machine_busy_seconds() - busy
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM inventory_items")).scalar_one()
    return {
        "items": len(rows),
        "stored": int(count),
        "first_seconds": first,
        "first_machine_cpu_seconds": first_cpu,
        "reload_machine_cpu_seconds": second_cpu,
        "reload_seconds": second,
        "first_items_per_s": len(rows) / first,
        "reload_items_per_s": len(rows) / second,
    }
