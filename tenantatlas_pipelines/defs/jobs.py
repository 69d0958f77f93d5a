"""The sync job: both inventory assets (and their checks) for one partition or a batch."""

from __future__ import annotations

import dagster as dg

from tenantatlas_pipelines.defs.keys import SYNCED_ASSETS

inventory_sync_job = dg.define_asset_job(
    "inventory_sync",
    selection=dg.AssetSelection.assets(*SYNCED_ASSETS),
    description="Sync tenants and selections, then derive their missing items (one partition or a batch).",
)
