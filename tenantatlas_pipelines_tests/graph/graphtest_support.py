"""Shared helpers of the Graph client tests: a fake clock and a header-recording transport."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from tenantatlas_pipelines.graph import (
    ClientSecretCredential,
    GraphClient,
    GraphError,
    GraphPage,
    RetryPolicy,
    TenantLimiter,
    endpoints_for,
)
from tenantatlas_pipelines.inventory.catalog import CATALOG, PolicyType
from tenantatlas_pipelines.simulator.app import IN_PROCESS_BASE_URL
from tenantatlas_pipelines.simulator.scenario import Fault, Scenario, TenantScenario

T = TypeVar("T")


class FakeClock:
    """A monotonic clock that moves only when ``sleep`` is awaited; records every wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and records (url, headers) of every request it sees."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[httpx.URL, httpx.Headers]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url, request.headers.copy()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async test body in a fresh event loop."""
    return asyncio.run(coro_fn())


# --- the simulator side -------------------------------------------------------

TENANT_ID = "0f6a1b2c-0000-4000-8000-00000000a11a"
CLIENT_ID = "3c1e0000-0000-4000-8000-0000000c11e7"
CLIENT_SECRET = "CANARY-client-secret-7f3a9d"  # planted: must never show up anywhere
# rates high enough that only the in-flight bound matters in functional tests
FAST_RATES = {"intune": (100_000.0, 1.0), "conditional_access": (100_000.0, 1.0)}


def make_scenario(
    item_counts: dict[str, int] | None = None,
    *,
    page_size: int = 10,
    faults: Sequence[Fault] = (),
    seed: int = 11,
    client_secret: str = CLIENT_SECRET,
) -> Scenario:
    return Scenario(
        seed=seed,
        tenants=[
            TenantScenario(
                tenant_id=TENANT_ID,
                client_id=CLIENT_ID,
                client_secret=client_secret,
                display_name="Canary Corp",
                item_counts=item_counts if item_counts is not None else {k: 23 for k in CATALOG},
                page_size=page_size,
                faults=list(faults),
            )
        ],
    )


def make_client(
    transport: httpx.AsyncBaseTransport | None,
    *,
    base_url: str = IN_PROCESS_BASE_URL,
    login_url: str | None = None,
    clock: FakeClock | None = None,
    secret: str = CLIENT_SECRET,
    retry: RetryPolicy | None = None,
    limiter: TenantLimiter | None = None,
    timeout: float = 30.0,
) -> GraphClient:
    """A client of the canary tenant; waits go to ``clock`` (a fresh FakeClock by default)."""
    clock = clock or FakeClock()
    return GraphClient(
        tenant_id=TENANT_ID,
        credential=ClientSecretCredential(CLIENT_ID, secret),
        endpoints=endpoints_for("simulated", graph_endpoint=base_url, login_endpoint=login_url or base_url),
        transport=transport,
        retry=retry,
        limiter=limiter or TenantLimiter(max_in_flight=4, rates=FAST_RATES),
        timeout=timeout,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(5),
    )


async def collect_pages(client: GraphClient, policy_type: PolicyType) -> list[GraphPage]:
    return [page async for page in client.list_pages(policy_type)]


async def list_all(client: GraphClient, policy_type: PolicyType) -> list[dict[str, Any]]:
    """Every item of ``policy_type`` (duplicates kept), opening and closing ``client``."""
    async with client:
        return [item for page in await collect_pages(client, policy_type) for item in page.items]


async def expect_error(client: GraphClient, policy_type: PolicyType) -> GraphError:
    """List ``policy_type`` and return the GraphError it ends with (fails if none)."""
    async with client:
        try:
            await collect_pages(client, policy_type)
        except GraphError as error:
            return error
    raise AssertionError(f"listing {policy_type.key} raised no GraphError")
