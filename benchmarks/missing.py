"""The missing derivation of a synced tenant: ``sync.missing.derive_missing`` (query + replace).

Before timing, one item in ten is made "not seen since the reference run started"
(its ``last_seen_at`` moved a day back), so the derivation finds and writes 10% of
the items: the query must use the (tenant, policy type, last_seen_at) index and the
work must grow linearly with the missing set, not with the catalog.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from benchmarks.common import SELECTION
from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.registry import load_registry
from tenantatlas_pipelines.sync.missing import derive_missing


def work(args: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(args["url"])
    store = InventoryStore(engine)
    registry = load_registry(args["registry"])
    shift = (
        "last_seen_at - interval '1 day'"
        if engine.dialect.name == "postgresql"
        else "datetime(last_seen_at, '-1 day')"
    )
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE inventory_items SET last_seen_at = {shift} WHERE id % 10 = 0"))
        items = int(conn.execute(text("SELECT count(*) FROM inventory_items")).scalar_one())
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE inventory_items"))
    plan = ""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            tenant_pk = store.tenant_pk(args["tenant"])
            plan = "\n".join(
                row[0]
                for row in conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM inventory_items "
                        "WHERE tenant_id = :t AND policy_type = 'mobileApp' "
                        "AND last_seen_at < now() - interval '1 hour'"
                    ),
                    {"t": tenant_pk},
                )
            )
    started = time.perf_counter()
    result = derive_missing(store, args["tenant"], SELECTION, registry.selection(SELECTION))
    seconds = time.perf_counter() - started
    return {"items": items, "missing": len(result.rows), "seconds": seconds, "plan": plan}
