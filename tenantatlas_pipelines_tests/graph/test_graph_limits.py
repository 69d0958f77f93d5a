"""Per-tenant limits: requests in flight (simulator's count) and request rate (real limiter, small rate)."""

from __future__ import annotations

import asyncio
import itertools

from graphtest_support import TENANT_ID, collect_pages, make_client, make_scenario, run

from tenantatlas_pipelines.graph import TenantLimiter
from tenantatlas_pipelines.graph.limits import DEFAULT_RATES
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind

KEYS = [
    "deviceCategory",
    "roleScopeTag",
    "deviceCompliancePolicy",
    "mobileApp",
    "termsAndConditions",
    "securityIntent",
]


def _list_concurrently(sim: GraphSimulator, limiter: TenantLimiter) -> None:
    async def body() -> None:
        client = make_client(sim.transport(), limiter=limiter)
        async with client:
            await asyncio.gather(*(collect_pages(client, CATALOG[k]) for k in KEYS))

    run(body)


def test_requests_in_flight_never_exceed_the_tenant_bound() -> None:
    slow = Fault(kind=FaultKind.SLOW, delay_seconds=0.01)  # every request overlaps the others
    for bound in (2, 4):
        sim = GraphSimulator(make_scenario({k: 30 for k in KEYS}, page_size=5, faults=[slow]))
        _list_concurrently(sim, TenantLimiter(max_in_flight=bound, rates={"intune": (1e6, 1.0)}))
        assert sim.stats.max_in_flight(TENANT_ID) == bound  # reached, never exceeded


def test_request_rate_is_limited_per_rate_class() -> None:
    max_rate, period = 4.0, 0.2  # 20 requests per second, bursts of 4
    sim = GraphSimulator(make_scenario({k: 40 for k in KEYS}, page_size=10))
    _list_concurrently(sim, TenantLimiter(max_in_flight=8, rates={"intune": (max_rate, period)}))
    times = sorted(r.time for r in sim.stats.records if r.method == "GET")
    assert len(times) == 24
    rate = max_rate / period
    for window in (period, 0.5):  # a leaky bucket: at most one burst plus the drip in any window
        for i, start in enumerate(times):
            assert sum(1 for t in times[i:] if t < start + window) <= max_rate + rate * window + 1
    # 24 requests at 20/s after a burst of 4 take about a second
    assert times[-1] - times[0] >= (24 - max_rate - 1) / rate * 0.9


def test_conditional_access_has_its_own_slower_bucket() -> None:
    sim = GraphSimulator(make_scenario({"conditionalAccessPolicy": 40, "deviceCategory": 40}, page_size=10))
    limiter = TenantLimiter(rates={"intune": (1e6, 1.0), "conditional_access": (1.0, 0.1)})

    async def body() -> None:
        client = make_client(sim.transport(), limiter=limiter)
        async with client:
            await asyncio.gather(
                collect_pages(client, CATALOG["conditionalAccessPolicy"]),
                collect_pages(client, CATALOG["deviceCategory"]),
            )

    run(body)
    ca = sorted(r.time for r in sim.stats.records if "conditionalAccess" in r.path)
    intune = sorted(r.time for r in sim.stats.records if "deviceCategories" in r.path)
    assert len(ca) == len(intune) == 4
    assert all(b - a >= 0.08 for a, b in itertools.pairwise(ca))  # one per 0.1 s
    assert intune[-1] - intune[0] < ca[-1] - ca[0]  # intune is not held back by the CA bucket


def test_default_rates_follow_graph_limits() -> None:
    limiter = TenantLimiter()
    assert limiter.max_in_flight == 4
    intune_rate, intune_period = DEFAULT_RATES["intune"]
    assert intune_rate / intune_period * 20 <= 1000  # Intune: 1000 requests per 20 s per app and tenant
    assert DEFAULT_RATES["conditional_access"] == (1.0, 1.0)  # 1 request per second
