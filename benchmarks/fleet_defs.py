"""The code location of the fleet benchmark's floors: empty assets on the inventory's partitions.

- ``fleet_empty_b<N>/items`` and ``fleet_empty_b<N>/missing``: a multi-asset shaped like
  ``inventory_assets`` (two skippable keys, the second downstream of the first, the ``msgraph``
  pool, ``BackfillPolicy.multi_run(N)``) whose body does no work and logs what the real one
  logs per partition: one ``AssetMaterialization`` of each key (``partition=``), no metadata
  (the real asset adds two check results per partition). One per batch size in
  ``BENCH_FLEET_BATCH_SIZES`` (comma-separated; default ``TENANTATLAS_BATCH_SIZE``'s value).
- ``fleet_empty_single``: the same empty work with no backfill policy, so a backfill launches
  one run per partition (the unbatched floor).

The partitions definitions are the inventory's own (``tenants`` x ``selections``): dynamic
partitions live in the instance, so these assets have exactly the inventory's partitions.
"""

import os
from collections.abc import Iterator

import dagster as dg

from tenantatlas_pipelines.defs.batching import batch_size
from tenantatlas_pipelines.defs.partitions import inventory_partitions

BATCH_SIZES_ENV = "BENCH_FLEET_BATCH_SIZES"
GROUP = "bench_fleet"
SINGLE_KEY = "fleet_empty_single"


def batch_sizes(environ: dict[str, str] | None = None) -> list[int]:
    raw = (os.environ if environ is None else environ).get(BATCH_SIZES_ENV, "")
    sizes = sorted({int(part) for part in raw.split(",") if part.strip()}) if raw else []
    return sizes or [batch_size()]


def batched_keys(size: int) -> tuple[str, str]:
    """The two asset keys (slash form, as GraphQL paths) of the empty batched multi-asset of ``size``."""
    return (f"fleet_empty_b{size}/items", f"fleet_empty_b{size}/missing")


def empty_batched_asset(size: int) -> dg.AssetsDefinition:
    items_key = dg.AssetKey(["fleet_empty_b" + str(size), "items"])
    missing_key = dg.AssetKey(["fleet_empty_b" + str(size), "missing"])

    @dg.multi_asset(
        name=f"fleet_empty_b{size}",
        specs=[
            dg.AssetSpec(items_key, partitions_def=inventory_partitions, group_name=GROUP),
            dg.AssetSpec(
                missing_key, partitions_def=inventory_partitions, deps=[items_key], group_name=GROUP
            ),
        ],
        partitions_def=inventory_partitions,
        pool="msgraph",
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(size),
    )
    def _empty(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[None]]:
        """No work: Dagster's own cost of a batched run of these partitions and their events."""
        for key in context.partition_keys:
            context.log_event(dg.AssetMaterialization(items_key, partition=key))
            context.log_event(dg.AssetMaterialization(missing_key, partition=key))
        yield from ()

    return _empty


@dg.asset(name=SINGLE_KEY, partitions_def=inventory_partitions, pool="msgraph", group_name=GROUP)
def empty_single_asset(context: dg.AssetExecutionContext) -> None:
    """Does nothing, one run per partition: Dagster's own cost of an unbatched partition."""


defs = dg.Definitions(
    assets=[*(empty_batched_asset(size) for size in batch_sizes()), empty_single_asset],
    executor=dg.in_process_executor,
)
