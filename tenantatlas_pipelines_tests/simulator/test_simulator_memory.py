"""Big tenants: items are generated per page, so simulator memory does not grow with item count."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest
from simulator_testkit import TENANT_A, connect, run, simulator, tenant

from tenantatlas_pipelines.simulator.paging import encode_skiptoken

SIMULATOR_FILES = "*tenantatlas_pipelines/simulator/*"
MB = 1024 * 1024


def _simulator_bytes() -> int:
    """Bytes allocated in simulator code while tracing and still alive (cycles collected first)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, SIMULATOR_FILES)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.slow
def test_paging_100k_items_keeps_simulator_memory_flat() -> None:
    """Every 25th request runs under tracemalloc: its peak stays at page scale (nothing
    materialised) and the simulator keeps nothing of it afterwards (nothing cached)."""
    total = 100_000
    sim = simulator(tenant(item_counts={"deviceCompliancePolicy": total}, page_size=1000))

    async def scenario() -> tuple[list[str], list[int], list[int]]:
        async with connect(sim) as ep:
            token = await ep.token()
            url: str | None = f"{ep.base}/v1.0/deviceManagement/deviceCompliancePolicies"
            ids: list[str] = []
            peaks: list[int] = []
            kept: list[int] = []
            while url:
                traced = len(peaks) * 25 <= len(ids) // 1000
                if traced:
                    tracemalloc.start()
                response = await ep.get(url, token)
                body = response.json()
                del response
                if traced:
                    peaks.append(tracemalloc.get_traced_memory()[1])
                    kept.append(_simulator_bytes())
                    tracemalloc.stop()
                ids += [item["id"] for item in body["value"]]
                url = body.get("@odata.nextLink")
            return ids, peaks, kept

    started = time.perf_counter()
    ids, peaks, kept = run(scenario())
    elapsed = time.perf_counter() - started
    assert len(ids) == total == len(set(ids))
    assert set(ids) == sim.expected_item_ids(TENANT_A, "deviceCompliancePolicy")
    assert len(peaks) == 4
    # one 1000-item page is ~2 MB of JSON (and ~8 MB parsed); the whole type would be ~200 MB
    assert max(peaks) < 32 * MB, peaks
    # after a request the simulator holds (almost) nothing of it: a request record
    assert max(kept) < 16 * 1024, kept
    assert elapsed < 60


def test_a_million_items_cost_nothing_until_paged() -> None:
    tracemalloc.start()
    try:
        sim = simulator(tenant(item_counts={"mobileApp": 1_000_000}, page_size=500))
        built = tracemalloc.get_traced_memory()[0]

        async def last_page() -> dict[str, object]:
            async with connect(sim) as ep:
                token = await ep.token()
                skiptoken = encode_skiptoken((0, 999_900), 7)
                response = await ep.get(
                    "v1.0/deviceAppManagement/mobileApps", token, {"$skiptoken": skiptoken}
                )
                return dict(response.json())

        body = run(last_page())
    finally:
        tracemalloc.stop()
    assert built < 4 * MB
    assert len(body["value"]) == 100 and "@odata.nextLink" not in body  # type: ignore[arg-type]
