"""What the Dagster benchmarks materialise: the real asset, and an empty asset on the same partitions.

``bench_graph_factory`` is the project's own Graph client factory with the per-tenant
request-rate buckets opened wide: the simulator does not throttle, and the benchmark
measures our code against the network and the database, not Graph's published rate
(45 requests/s per tenant by default; see README.md for what that costs on W1).
Concurrency (4 requests in flight per tenant) is unchanged.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dagster as dg

from tenantatlas_pipelines.defs.partitions import inventory_partitions
from tenantatlas_pipelines.graph.client import GraphClient
from tenantatlas_pipelines.graph.limits import TenantLimiter
from tenantatlas_pipelines.registry import TenantEntry
from tenantatlas_pipelines.sync.graph_factory import graph_factory

UNTHROTTLED = {"intune": (1_000_000.0, 1.0), "conditional_access": (1_000_000.0, 1.0)}


@asynccontextmanager
async def bench_graph_factory(tenant_key: str, tenant: TenantEntry) -> AsyncIterator[GraphClient]:
    async with graph_factory(limiter=TenantLimiter(rates=UNTHROTTLED))(tenant_key, tenant) as client:
        yield client  # type: ignore[misc]


def use_unthrottled_client() -> None:
    """Point the inventory_items asset (in this process) at ``bench_graph_factory``."""
    import tenantatlas_pipelines.defs.assets as assets

    setattr(assets, "deployment_graph_factory", lambda engine: bench_graph_factory)  # noqa: B010 - on purpose


@dg.asset(partitions_def=inventory_partitions, pool="msgraph", group_name="bench")
def empty_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
    """Does nothing: Dagster's own fixed cost of one partitioned materialisation."""
    return dg.MaterializeResult(metadata={"duration_seconds": 0.0})
