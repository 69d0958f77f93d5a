"""The inventory assets: the catalog sync, its missing set and change history, run in batches.

One multi-asset computes the three partitioned assets, ``inventory_items``, its downstream
``inventory_missing_items`` and ``inventory_changes``, for every partition of its run: a
single partition launched from the asset page, or a batch of up to
``TENANTATLAS_BATCH_SIZE`` partitions from a backfill, the nightly sweep or the registry
sensor's first syncs (``BackfillPolicy``).
Each partition gets its own events as soon as it finishes (``partition=``):

- a ``success`` or ``partial`` sync materialises ``inventory_items`` (partial also fails
  the ``last_sync_succeeded`` check with WARN);
- a ``failed`` sync materialises nothing: once every partition is done and its sync run
  row recorded, the run fails naming it, and Dagster shows that partition failed;
- a ``skipped`` sync (lock held) materialises nothing and logs an observation saying
  which run holds the lock;
- ``inventory_missing_items`` is derived for every partition whatever its sync's status:
  it follows the reference-run rule (the latest completed run), so a failed sync gives
  low confidence and a skipped one keeps the previous run as reference;
- ``inventory_changes`` then appends what changed since the completed run before.

A run that selected ``inventory_items`` without the other two (the asset page, a backfill
re-executed from failure) still derives and materialises them for each synced partition
(``Steps.for_selection``); the missing set or the change history alone re-derives without
a sync.
"""

from collections.abc import Iterator

import dagster as dg

from tenantatlas_pipelines.defs.batching import BatchConfig, batch_size
from tenantatlas_pipelines.defs.checks import CHECK_SPECS
from tenantatlas_pipelines.defs.keys import CHANGES_KEY, ITEMS_KEY, MISSING_KEY
from tenantatlas_pipelines.defs.partitions import inventory_partitions, partition_dimensions
from tenantatlas_pipelines.defs.reporting import BatchReporter
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.sync.batch import BatchRunner, PartitionRef, Steps
from tenantatlas_pipelines.sync.graph_factory import deployment_graph_factory


def _spec(key: dg.AssetKey, description: str, upstream: dg.AssetKey | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        partitions_def=inventory_partitions,
        deps=[upstream] if upstream else [],
        group_name="inventory",
        kinds={"python", "sql"},
        skippable=True,  # a failed or skipped partition materialises nothing of it
        description=description,
    )


ITEMS_SPEC = _spec(
    ITEMS_KEY,
    "One materialisation = one sync run of a tenant and selection: list every policy type "
    "from Microsoft Graph, upsert into inventory_items, record inventory_sync_runs.",
)
MISSING_SPEC = _spec(
    MISSING_KEY,
    "Items not observed since the latest completed sync of the partition's selection, with a "
    "confidence grade; replaces the partition's rows in inventory_missing_items.",
    upstream=ITEMS_KEY,
)
CHANGES_SPEC = _spec(
    CHANGES_KEY,
    "What the partition's latest completed sync found since the completed sync before it: "
    "appeared, changed (content hash), disappeared (newly missing, with confidence) and "
    "reappeared items, appended to inventory_change_events (idempotent per sync run).",
    upstream=MISSING_KEY,
)


@dg.multi_asset(
    name="inventory",
    specs=[ITEMS_SPEC, MISSING_SPEC, CHANGES_SPEC],
    check_specs=CHECK_SPECS,
    partitions_def=inventory_partitions,
    can_subset=True,
    pool="msgraph",
    backfill_policy=dg.BackfillPolicy.multi_run(batch_size()),
    description="Syncs every partition of the run concurrently, then derives its missing set and changes.",
)
def inventory_assets(
    context: dg.AssetExecutionContext,
    config: BatchConfig,
    database: InventoryDatabase,
    registry: RegistryResource,
) -> Iterator[dg.MaterializeResult]:
    refs = [PartitionRef(*partition_dimensions(key)) for key in context.partition_keys]
    store = database.store()
    reg = registry.load()
    reporter = BatchReporter(context, store, reg)
    # one Graph budget per tenant for the whole deployment (kept in the inventory database)
    runner = BatchRunner(store, reg, deployment_graph_factory(store.engine), config.settings())
    selected = context.selected_asset_keys
    outcomes = runner.run(
        refs,
        Steps.for_selection(
            sync=ITEMS_KEY in selected, missing=MISSING_KEY in selected, changes=CHANGES_KEY in selected
        ),
        dagster_run_id=context.run.run_id,
        on_done=reporter.report,
    )
    reporter.finish(outcomes)  # raises dg.Failure naming the failed partitions, if any
    yield from ()
