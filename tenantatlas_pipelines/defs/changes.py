"""The ``inventory_changes`` asset: the partition's change history (contract section 5b).

The body is one call, ``record_changes`` (sync/changes.py: the rules live in db/changes.py);
this module only turns its result into metadata: counts per kind (plotted over time), the
two sync run ids as text (ids are not metrics), counts per policy type and a preview.
"""

from typing import Any

import dagster as dg
import pandas as pd

from tenantatlas_pipelines.db.changes import KINDS
from tenantatlas_pipelines.defs.partitions import inventory_partitions, partition_dimensions
from tenantatlas_pipelines.defs.reporting import MISSING_KEY
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.sync.changes import ChangeResult, record_changes

CHANGES_KEY = dg.AssetKey("inventory_changes")
PREVIEW_ROWS = 25
_PREVIEW_COLUMNS = ["kind", "policy_type", "external_id", "display_name", "confidence"]


def changes_frame(result: ChangeResult) -> pd.DataFrame:
    """The run's events, one row each; every column text (ids stay ids)."""
    return pd.DataFrame(
        [
            {
                "kind": e.kind,
                "policy_type": e.policy_type,
                "external_id": e.external_id,
                "display_name": e.display_name or "",
                "confidence": e.confidence or "",
            }
            for e in result.events
        ],
        columns=_PREVIEW_COLUMNS,
        dtype="string",
    )


def changes_metadata(result: ChangeResult) -> dict[str, Any]:
    """Counts per kind (ints: the UI plots them), run ids and the note as text, per type, a preview."""
    counts = result.counts()
    frame = changes_frame(result)
    order = {kind: index for index, kind in enumerate(KINDS)}
    preview = frame.sort_values(
        ["kind", "policy_type", "display_name"], key=lambda c: c.map(order) if c.name == "kind" else c
    ).head(PREVIEW_ROWS)
    metadata: dict[str, Any] = {kind: dg.MetadataValue.int(counts[kind]) for kind in KINDS}
    metadata.update(
        {
            "changes_total": dg.MetadataValue.int(len(result.events)),
            "dagster/row_count": dg.MetadataValue.int(len(result.events)),
            "recorded_now": dg.MetadataValue.int(result.inserted),
            "pruned": dg.MetadataValue.int(result.pruned),
            "sync_run_id": dg.MetadataValue.text(str(result.sync_run_id or "-")),
            "previous_sync_run_id": dg.MetadataValue.text(str(result.previous_sync_run_id or "-")),
            "selection_hash": dg.MetadataValue.text(result.selection_hash),
            "note": dg.MetadataValue.text(result.note),
            "changes_per_policy_type": dg.MetadataValue.json(result.counts_by_policy_type()),
            "preview": dg.MetadataValue.md(
                preview.to_markdown(index=False) if len(preview) else "_no changes_"
            ),
        }
    )
    return metadata


@dg.asset(
    key=CHANGES_KEY,
    partitions_def=inventory_partitions,
    deps=[MISSING_KEY],
    group_name="inventory",
    kinds={"python", "sql"},
    description=(
        "What the partition's latest completed sync found since the completed sync before it: "
        "appeared, changed (content hash), disappeared (newly missing, with confidence) and "
        "reappeared items, appended to inventory_change_events (idempotent per sync run)."
    ),
)
def inventory_changes(
    context: dg.AssetExecutionContext, database: InventoryDatabase, registry: RegistryResource
) -> dg.MaterializeResult:
    tenant_key, selection_key = partition_dimensions(context.partition_key)
    selection = registry.load().selection(selection_key)
    result = record_changes(database.store(), tenant_key, selection_key, selection)
    return dg.MaterializeResult(metadata=changes_metadata(result))
