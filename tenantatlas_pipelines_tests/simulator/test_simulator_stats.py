"""Request statistics: counts per tenant and path, statuses, concurrency."""

from __future__ import annotations

import asyncio

from simulator_testkit import TENANT_A, TENANT_B, connect, run, simulator, tenant, with_faults


def test_stats_count_requests_per_tenant_path_and_status() -> None:
    sim = simulator(tenant(item_counts={"deviceCategory": 3}), tenant(TENANT_B))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token_a = await ep.token()
            token_b = await ep.token(sim.scenario.tenant(TENANT_B))
            await ep.get("v1.0/deviceManagement/deviceCategories", token_a)
            await ep.get("beta/deviceManagement/deviceCategories", token_a)
            await ep.get("beta/deviceManagement/deviceCategories", token_b)
            await ep.get("beta/deviceManagement/deviceCategories", "forged")

    run(scenario())
    stats = sim.stats
    assert stats.total == 6
    assert stats.by_tenant(TENANT_A) == 3 and stats.by_tenant(TENANT_B) == 2 and stats.by_tenant("") == 1
    assert stats.by_path("/beta/deviceManagement/deviceCategories") == 3
    assert stats.by_path("deviceManagement/deviceCategories") == 4
    assert stats.by_path(f"/{TENANT_A}/oauth2/v2.0/token") == 1
    assert stats.by_status(200) == 5 and stats.by_status(401) == 1
    record = stats.records[-1]
    assert (record.method, record.status, record.tenant_id) == ("GET", 401, "")
    assert all(r.in_flight_at_start == 1 for r in stats.records)
    assert [r.time for r in stats.records] == sorted(r.time for r in stats.records)
    stats.reset()
    assert stats.total == 0 and stats.records == [] and stats.max_in_flight(TENANT_A) == 0


def test_max_in_flight_sees_concurrent_requests_of_a_tenant() -> None:
    sim = with_faults({"kind": "slow", "policy_type": "deviceCategory", "delay_seconds": 0.05})

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            await asyncio.gather(*(ep.get("v1.0/deviceManagement/deviceCategories", token) for _ in range(5)))

    run(scenario())
    assert sim.stats.max_in_flight(TENANT_A) == 5
    assert sim.stats.max_in_flight(TENANT_B) == 0


def test_issued_tokens_collect_every_token_handed_out() -> None:
    sim = simulator(tenant())

    async def scenario() -> list[str]:
        async with connect(sim) as ep:
            return [await ep.token() for _ in range(3)]

    assert sim.issued_tokens == set(run(scenario()))
