"""Helpers shared by the simulator tests: tenants, clients over both transports, listing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator import (
    IN_PROCESS_BASE_URL,
    Fault,
    GraphSimulator,
    Scenario,
    TenantScenario,
    serve_loopback,
)

T = TypeVar("T")
TENANT_A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
TENANT_B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
SECRET_A = "very-secret-value-a"
MODES = ("in_process", "loopback")


def tenant(tenant_id: str = TENANT_A, **overrides: Any) -> TenantScenario:
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "client_id": f"client-{tenant_id[:8]}",
        "client_secret": SECRET_A if tenant_id == TENANT_A else f"secret-{tenant_id[:8]}",
        "display_name": f"Tenant {tenant_id[:4]}",
        "item_counts": {},
    }
    values.update(overrides)
    return TenantScenario.model_validate(values)


def simulator(*tenants: TenantScenario, seed: int = 42, generation: int = 1) -> GraphSimulator:
    return GraphSimulator(Scenario(seed=seed, tenants=list(tenants) or [tenant()]), generation=generation)


def with_faults(*faults: Fault | dict[str, Any], **overrides: Any) -> GraphSimulator:
    """A one-tenant simulator (TENANT_A) with these faults."""
    return simulator(
        tenant(faults=[Fault.model_validate(f) if isinstance(f, dict) else f for f in faults], **overrides)
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Endpoint:
    """A client bound to the simulator (in-process or over loopback HTTP)."""

    client: httpx.AsyncClient
    base: str
    sim: GraphSimulator

    async def token(self, t: TenantScenario | None = None) -> str:
        response = await self.token_response(t)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def token_response(
        self,
        t: TenantScenario | None = None,
        *,
        path_tenant: str | None = None,
        overrides: dict[str, str | None] | None = None,
    ) -> httpx.Response:
        """POST the token endpoint; ``overrides`` replace form fields (None drops one)."""
        t = t or self.sim.scenario.tenants[0]
        data: dict[str, str | None] = {
            "client_id": t.client_id,
            "client_secret": t.client_secret,
            "scope": "https://graph.microsoft.com/.default",
            "grant_type": "client_credentials",
        }
        data.update(overrides or {})
        sent = {k: v for k, v in data.items() if v is not None}
        url = f"{self.base}/{path_tenant or t.tenant_id}/oauth2/v2.0/token"
        return await self.client.post(url, data=sent)

    async def get(
        self, url: str, token: str, params: dict[str, str] | None = None, **headers: str
    ) -> httpx.Response:
        if not url.startswith("http"):
            url = f"{self.base}/{url.lstrip('/')}"
        return await self.client.get(
            url, params=params, headers={"Authorization": f"Bearer {token}", **headers}
        )

    async def list_type(
        self,
        token: str,
        policy_type: str,
        *,
        version: str | None = None,
        params: dict[str, str] | None = None,
        max_pages: int = 10_000,
    ) -> Listed:
        """Page a catalog type like a correct client: catalog query, nextLink verbatim, exclusions."""
        row = CATALOG[policy_type]
        url = f"{self.base}/{version or row.version}/{row.path}"
        query: dict[str, str] | None = row.query_params() if params is None else params
        listed = Listed()
        while url and listed.pages < max_pages:
            response = await self.get(url, token, query)
            assert response.status_code == 200, response.text
            body = response.json()
            listed.pages += 1
            listed.page_sizes.append(len(body["value"]))
            for item in body["value"]:
                listed.raw.append(item)
                if item.get("@odata.type") not in row.exclude_odata_types:
                    listed.items.append(item)
            url, query = body.get("@odata.nextLink"), None
            listed.links.append(url)
        return listed


@dataclass
class Listed:
    items: list[dict[str, Any]] = field(default_factory=list)  # after exclusion
    raw: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    page_sizes: list[int] = field(default_factory=list)
    links: list[str | None] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [item["id"] for item in self.items]


@asynccontextmanager
async def connect(sim: GraphSimulator, base: str | None = None) -> AsyncIterator[Endpoint]:
    """In-process when ``base`` is None, else real HTTP to ``base``."""
    transport = sim.transport() if base is None else None
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        yield Endpoint(client, base or IN_PROCESS_BASE_URL, sim)


@contextmanager
def base_url(sim: GraphSimulator, mode: str) -> Any:
    """None for in-process, the loopback URL for ``loopback``."""
    if mode == "in_process":
        yield None
        return
    with serve_loopback(sim) as url:
        yield url
