"""Helpers of the reliability suite: tenants, scenarios, a fault-injecting transport, DB snapshots."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import (
    inventory_items,
    inventory_missing_items,
    inventory_sync_runs,
    tenants,
)
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.graph.retry import RetryPolicy
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import TenantEntry
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, Scenario, TenantScenario
from tenantatlas_pipelines.sync.graph_factory import graph_factory
from tenantatlas_pipelines.sync.service import SyncRequest, SyncResult, SyncService, SyncSettings

TENANT_A = "5a1e0c2e-4b5d-4e8f-9a01-23456789aaaa"
TENANT_B = "5b7e2d3f-5c6a-4f90-8b12-3456789abbbb"
CLIENT_A = "5c1e5a7b-0000-4000-8000-00000000a001"
CLIENT_B = "5c1e5a7b-0000-4000-8000-00000000b002"
SECRET_A = "rel-canary-secret-A-7Q~x9f8e7d6c5b4a3"
SECRET_B = "rel-canary-secret-B-7Q~x1a2b3c4d5e6f7"
SECRET_ENV = {"A": "REL_SECRET_A", "B": "REL_SECRET_B"}

COUNTS = {
    "deviceConfiguration": 30,
    "deviceCompliancePolicy": 12,
    "mobileApp": 40,
    "roleScopeTag": 3,
}
TYPES = sorted(COUNTS)
SELECTION = Selection.parse({"policy_types": TYPES})
OTHER_SELECTION = Selection.parse({"policy_types": ["deviceCompliancePolicy"]})


async def no_sleep(_: float) -> None:
    return None


def tenant_scenario(tenant_id: str = TENANT_A, faults: Iterable[Fault] = (), **kw: Any) -> TenantScenario:
    client_id, secret = (CLIENT_A, SECRET_A) if tenant_id == TENANT_A else (CLIENT_B, SECRET_B)
    return TenantScenario(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=secret,
        item_counts=kw.pop("item_counts", COUNTS),
        page_size=kw.pop("page_size", 10),
        faults=list(faults),
        **kw,
    )


def simulator(*tenants_: TenantScenario, generation: int = 1) -> GraphSimulator:
    return GraphSimulator(
        Scenario(seed=13, tenants=list(tenants_) or [tenant_scenario()]), generation=generation
    )


def entry(tenant_id: str = TENANT_A, **overrides: Any) -> TenantEntry:
    client_id, env = (CLIENT_A, SECRET_ENV["A"]) if tenant_id == TENANT_A else (CLIENT_B, SECRET_ENV["B"])
    return TenantEntry(
        tenant_id=tenant_id, client_id=client_id, client_secret_env=env, cloud="simulated", **overrides
    )


# -- a transport that breaks or rewrites chosen Graph answers --------------------------------


@dataclass
class Rule:
    """Applies to requests whose path ends with ``path``; fires ``count`` times (None: forever)."""

    path: str
    action: str  # "reset": the connection drops mid-page; "items": rewrite the page's items
    count: int | None = None
    rewrite: Callable[[list[Any]], list[Any]] | None = None
    fired: int = 0


@dataclass
class FaultyTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport
    rules: list[Rule] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rule = next(
            (
                r
                for r in self.rules
                if request.url.path.endswith(r.path) and (r.count is None or r.fired < r.count)
            ),
            None,
        )
        if rule is None:
            return await self.inner.handle_async_request(request)
        rule.fired += 1
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        if rule.action == "reset":
            # the headers arrived, then the peer reset the connection while the body streamed
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        page = json.loads(body)
        assert rule.rewrite is not None
        page["value"] = rule.rewrite(page["value"])
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        # ASCII JSON: hostile text (NUL, lone surrogates) travels as \u escapes, as Graph would send it
        content = json.dumps(page).encode("ascii")
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)


class FaultySimulator:
    """Stands in for a GraphSimulator in ``graph_factory``: its transport goes through the rules."""

    def __init__(self, sim: GraphSimulator, *rules: Rule) -> None:
        self.sim = sim
        self.rules = list(rules)

    def transport(self) -> httpx.AsyncBaseTransport:
        return FaultyTransport(self.sim.transport(), self.rules)


def path_of(policy_type: str) -> str:
    return CATALOG[policy_type].path


def service(
    store: InventoryStore, sim: Any, *, settings: SyncSettings | None = None, **client_options: Any
) -> SyncService:
    client_options.setdefault("sleep", no_sleep)
    client_options.setdefault("retry", RetryPolicy(max_attempts=3, max_total=30.0))
    return SyncService(store, graph_factory(sim, **client_options), settings or SyncSettings(batch_size=7))


def sync(
    svc: SyncService,
    tenant_key: str = "a",
    tenant_id: str = TENANT_A,
    selection_key: str = "rel",
    selection: Selection = SELECTION,
    **entry_overrides: Any,
) -> SyncResult:
    return svc.run(SyncRequest(tenant_key, entry(tenant_id, **entry_overrides), selection_key, selection))


# -- stored state ------------------------------------------------------------------------------


def stored_ids(engine: Engine, tenant_pk: int | None = None) -> list[tuple[str, str]]:
    """(policy_type, external_id) of every stored item (duplicates kept, so they show)."""
    stmt = select(inventory_items.c.policy_type, inventory_items.c.external_id)
    if tenant_pk is not None:
        stmt = stmt.where(inventory_items.c.tenant_id == tenant_pk)
    with engine.connect() as conn:
        return sorted((r[0], r[1]) for r in conn.execute(stmt))


def expected_ids(
    sim: GraphSimulator, tenant_id: str = TENANT_A, types: Iterable[str] = TYPES
) -> set[tuple[str, str]]:
    return {(t, i) for t in types for i in sim.expected_item_ids(tenant_id, t)}


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (tenants, inventory_items, inventory_sync_runs, inventory_missing_items)
        }


def tenant_checksum(engine: Engine, tenant_pk: int) -> tuple[dict[str, int], str]:
    """Row counts and a sha256 over every column of every row of one tenant, in all four tables."""
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for table in (tenants, inventory_items, inventory_sync_runs, inventory_missing_items):
            column = table.c.id if table is tenants else table.c.tenant_id
            rows = conn.execute(select(table).where(column == tenant_pk).order_by(*table.primary_key)).all()
            counts[table.name] = len(rows)
            for row in rows:
                digest.update(repr(tuple(row)).encode())
    return counts, digest.hexdigest()
