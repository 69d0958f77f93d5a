"""Limit F of a fleet: every page of every tenant's selected policy types, bare httpx + orjson.

Nothing else: no retries, no rate limiter, no normalisation, no database. A token per
tenant (as the sync takes one), ``tenants_at_once`` tenants listed at a time with
``in_flight`` requests each (the sync's defaults: 8 partitions at once in a run, 4
requests in flight per tenant), one shared connection pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from benchmarks.common import SECRET, machine_busy_seconds, tenant_guid
from tenantatlas_pipelines.graph.clouds import endpoints_for
from tenantatlas_pipelines.inventory.catalog import CATALOG


def client_guid(index: int) -> str:
    """The client id of the fleet's tenant ``index`` (its tenant id is ``tenant_guid(index)``)."""
    return tenant_guid(100_000 + index)


def fleet_tenants(count: int) -> list[dict[str, str]]:
    return [
        {"tenant_id": tenant_guid(i), "client_id": client_guid(i), "secret": SECRET} for i in range(count)
    ]


async def _list_tenant(
    http: httpx.AsyncClient, base: str, tenant: dict[str, str], policy_types: list[str], in_flight: int
) -> tuple[int, int]:
    endpoints = endpoints_for("global", graph_endpoint=base, login_endpoint=base)
    answer = await http.post(
        endpoints.token_url(tenant["tenant_id"]),
        data={
            "client_id": tenant["client_id"],
            "client_secret": tenant["secret"],
            "scope": endpoints.scope,
            "grant_type": "client_credentials",
        },
    )
    answer.raise_for_status()
    headers = {
        "Authorization": f"Bearer {answer.json()['access_token']}",
        "Accept": "application/json;odata.metadata=minimal",
    }
    gate = asyncio.Semaphore(in_flight)
    totals = [0, 0]  # items, pages

    async def one_type(key: str) -> None:
        policy_type = CATALOG[key]
        url: str | None = str(
            httpx.URL(endpoints.graph_url(policy_type.version, policy_type.path)).copy_merge_params(
                policy_type.query_params()
            )
        )
        while url is not None:
            async with gate:
                response = await http.get(url, headers=headers)
            response.raise_for_status()
            body: dict[str, Any] = orjson.loads(response.content)
            totals[0] += len(body["value"])
            totals[1] += 1
            url = body.get("@odata.nextLink")

    await asyncio.gather(*(one_type(key) for key in policy_types))
    return totals[0], totals[1]


async def list_fleet(
    base: str, tenants: list[dict[str, str]], policy_types: list[str], tenants_at_once: int, in_flight: int
) -> tuple[int, int]:
    total = tenants_at_once * in_flight
    limits = httpx.Limits(max_connections=total + 2, max_keepalive_connections=total + 2)
    gate = asyncio.Semaphore(tenants_at_once)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def one(tenant: dict[str, str]) -> tuple[int, int]:
            async with gate:
                return await _list_tenant(http, base, tenant, policy_types, in_flight)

        counts = await asyncio.gather(*(one(t) for t in tenants))
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def work(args: dict[str, Any]) -> dict[str, Any]:
    busy = machine_busy_seconds()
    own = time.process_time()
    started = time.perf_counter()
    items, pages = asyncio.run(
        list_fleet(
            args["base"],
            fleet_tenants(args["tenant_count"]),
            args["policy_types"],
            args["tenants_at_once"],
            args["in_flight"],
        )
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "items": items,
        "pages": pages,
        "tenants": args["tenant_count"],
        "machine_cpu_seconds": machine_busy_seconds() - busy,
        "own_cpu_seconds": time.process_time() - own,
    }
