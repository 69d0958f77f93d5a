"""The README's "what changed in the last 24 hours across every tenant" query, run as written."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from db_support import FakeClock, selection_hash
from sqlalchemy import bindparam, text

from tenantatlas_pipelines.db.changes import ChangeHistory
from tenantatlas_pipelines.db.json_batches import WriteCounts
from tenantatlas_pipelines.db.store import InventoryStore, TenantRecord
from tenantatlas_pipelines.db.types import UtcDateTime
from tenantatlas_pipelines.inventory.normalize import NormalizedItem
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

README = Path(__file__).resolve().parents[2] / "README.md"
SEL = selection_hash("all")


def readme_query() -> str:
    """The one SQL block of the README's Changes section."""
    section = README.read_text(encoding="utf-8").split("## Changes (content fingerprints and history)", 1)[1]
    section = section.split("\n## ", 1)[0]
    [query] = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    return query


def _sync(store: InventoryStore, tenant: int, items: dict[str, str]) -> None:
    run = store.start_run(tenant, "all", SEL, "{}").run_id
    batch = [
        NormalizedItem(i, f"Policy {i}", "configuration", None, content_hash=f"{c:0>64}")
        for i, c in items.items()
    ]
    store.upsert_batches(tenant, run, {"deviceConfiguration": batch}, store.now(), counts=WriteCounts())
    results = {"deviceConfiguration": TypeResult("deviceConfiguration", TypeOutcome.SUCCESS)}
    store.finish_run(tenant, run, RunOutcome(RunStatus.SUCCESS, results))


def test_the_readme_query_lists_the_last_24_hours_of_changes_of_every_tenant(
    store: InventoryStore, clock: FakeClock
) -> None:
    history = ChangeHistory(store)
    tenants = {
        key: store.ensure_tenant(TenantRecord(key, f"guid-{key}", key, "global")) for key in ("c", "f")
    }
    for tenant in tenants.values():  # an old change of each tenant, two days ago
        _sync(store, tenant, {"a": "1"})
        history.record(tenant, "all", SEL, ["deviceConfiguration"])
        _sync(store, tenant, {"a": "2"})
        history.record(tenant, "all", SEL, ["deviceConfiguration"])
    clock.advance(2 * 86_400)
    _sync(store, tenants["c"], {"a": "2", "b": "1"})  # today: c gains b; f loses a
    history.record(tenants["c"], "all", SEL, ["deviceConfiguration"])
    _sync(store, tenants["f"], {})
    history.record(tenants["f"], "all", SEL, ["deviceConfiguration"])

    query = text(readme_query()).bindparams(bindparam("since", type_=UtcDateTime()))
    with store.engine.connect() as conn:
        rows = conn.execute(query, {"since": store.now() - timedelta(hours=24)}).mappings().all()
    assert sorted((r["tenant"], r["kind"], r["external_id"], r["confidence"]) for r in rows) == [
        ("c", "appeared", "b", None),
        ("f", "disappeared", "a", "high"),
    ]
