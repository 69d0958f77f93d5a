"""Limit F, the network and JSON floor: list every page of every policy type with httpx and parse it.

Nothing else: no retries, no rate limiter, no normalisation, no database. The same
concurrency as the sync's Graph client (4 requests in flight per tenant) and the same
JSON parser (orjson).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from benchmarks.common import machine_busy_seconds
from tenantatlas_pipelines.graph.clouds import endpoints_for
from tenantatlas_pipelines.graph.limits import DEFAULT_MAX_IN_FLIGHT
from tenantatlas_pipelines.inventory.catalog import CATALOG


async def _list_all(
    base: str, tenant_id: str, client_id: str, secret: str, in_flight: int
) -> tuple[int, int, int]:
    endpoints = endpoints_for("global", graph_endpoint=base, login_endpoint=base)
    limits = httpx.Limits(max_connections=in_flight * 2 + 2, max_keepalive_connections=in_flight + 1)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        answer = await http.post(
            endpoints.token_url(tenant_id),
            data={
                "client_id": client_id,
                "client_secret": secret,
                "scope": endpoints.scope,
                "grant_type": "client_credentials",
            },
        )
        token = answer.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json;odata.metadata=minimal"}
        gate = asyncio.Semaphore(in_flight)
        totals = [0, 0, 0]  # items, pages, bytes

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
                totals[2] += len(response.content)
                url = body.get("@odata.nextLink")

        await asyncio.gather(*(one_type(key) for key in CATALOG))
        return totals[0], totals[1], totals[2]


def work(args: dict[str, Any]) -> dict[str, Any]:
    busy = machine_busy_seconds()
    own = time.process_time()
    started = time.perf_counter()
    items, pages, size = asyncio.run(
        _list_all(args["base"], args["tenant_id"], args["client_id"], args["secret"], DEFAULT_MAX_IN_FLIGHT)
    )
    seconds = time.perf_counter() - started
    return {
        "machine_cpu_seconds": machine_busy_seconds() - busy,
        "own_cpu_seconds": time.process_time() - own,
        "seconds": seconds,
        "items": items,
        "pages": pages,
        "mb": size / 1e6,
        "items_per_s": items / seconds,
    }
