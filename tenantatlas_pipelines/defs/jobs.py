"""The sync job: both inventory assets (and their checks) for one partition."""

from __future__ import annotations

import dagster as dg

from tenantatlas_pipelines.defs.assets import inventory_items, inventory_missing_items

inventory_sync_job = dg.define_asset_job(
    "inventory_sync",
    selection=dg.AssetSelection.assets(inventory_items, inventory_missing_items),
    description="Sync one tenant and selection, then derive its missing items.",
)
