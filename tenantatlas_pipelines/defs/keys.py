"""The asset keys of the inventory multi-asset (the contract's names), declared once."""

import dagster as dg

ITEMS_KEY = dg.AssetKey("inventory_items")
MISSING_KEY = dg.AssetKey("inventory_missing_items")
CHANGES_KEY = dg.AssetKey("inventory_changes")
# what a sync backfill materialises: every key of the multi-asset
SYNCED_ASSETS = (ITEMS_KEY, MISSING_KEY, CHANGES_KEY)
