"""Metadata of the ``inventory_changes`` asset: the partition's change history (contract 5b).

The inventory multi-asset (defs/assets.py) records it with one ``record_changes`` call per
partition (sync/changes.py; the rules live in db/changes.py); this module only turns the
result into metadata: counts per kind (plotted over time), the
two sync run ids as text (ids are not metrics), counts per policy type and a preview.
"""

from typing import Any

import dagster as dg
import pandas as pd

from tenantatlas_pipelines.db.changes import KINDS
from tenantatlas_pipelines.sync.changes import ChangeResult

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
