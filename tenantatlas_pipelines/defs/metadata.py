"""Dagster metadata built from sync and missing results (presentation only)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from tenantatlas_pipelines.db.store import MissingResult
from tenantatlas_pipelines.sync.service import SyncResult

PREVIEW_ROWS = 25

_TYPE_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("policy_type", "string"),
        dg.TableColumn("outcome", "string"),
        dg.TableColumn("items", "int"),
        dg.TableColumn("pages", "int"),
        dg.TableColumn("skipped_items", "int"),
        dg.TableColumn("retries", "int"),
        dg.TableColumn("error_code", "string"),
    ]
)


def sync_metadata(result: SyncResult) -> dict[str, Any]:
    outcome = result.outcome
    metadata: dict[str, Any] = {
        "sync_run_id": dg.MetadataValue.int(result.run_id),
        "status": dg.MetadataValue.text(str(result.status)),
        "selection_hash": dg.MetadataValue.text(result.selection_hash),
        "correlation_id": dg.MetadataValue.text(result.correlation_id),
        "error_codes": dg.MetadataValue.json(result.error_codes),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        "policy_types": dg.MetadataValue.int(len(result.policy_types)),
    }
    if outcome is None:
        return metadata
    rows = [
        dg.TableRecord(
            {
                "policy_type": key,
                "outcome": str(r.outcome),
                "items": r.items,
                "pages": r.pages,
                "skipped_items": r.skipped_items,
                "retries": r.retries,
                "error_code": str(r.error_code) if r.error_code else "",
            }
        )
        for key, r in sorted(outcome.type_results.items())
    ]
    failed = sum(1 for r in outcome.type_results.values() if str(r.outcome) != "success")
    metadata.update(
        {
            "items_observed": dg.MetadataValue.int(outcome.items_observed),
            "items_upserted": dg.MetadataValue.int(outcome.items_upserted),
            "errors_count": dg.MetadataValue.int(len(outcome.errors)),
            "policy_types_failed": dg.MetadataValue.int(failed),
            "had_errors": dg.MetadataValue.bool(outcome.had_errors),
            "dagster/row_count": dg.MetadataValue.int(outcome.items_observed),
            "per_policy_type": dg.MetadataValue.table(rows, schema=_TYPE_TABLE_SCHEMA),
        }
    )
    return metadata


def missing_frame(result: MissingResult) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "policy_type": row.policy_type,
                "external_id": row.external_id,
                "display_name": row.display_name,
                "last_seen_at": row.last_seen_at,
            }
            for row in result.rows
        ],
        columns=["policy_type", "external_id", "display_name", "last_seen_at"],
    )


def missing_metadata(result: MissingResult) -> dict[str, Any]:
    frame = missing_frame(result)
    per_type = frame.groupby("policy_type").size().sort_index() if len(frame) else pd.Series(dtype=int)
    reference = result.reference_run
    preview = frame.sort_values(["policy_type", "display_name"]).head(PREVIEW_ROWS)
    return {
        "missing_count": dg.MetadataValue.int(len(frame)),
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "confidence": dg.MetadataValue.text(str(result.confidence) if result.confidence else "none"),
        "confidence_reason": dg.MetadataValue.text(result.confidence_reason),
        "reference_sync_run_id": dg.MetadataValue.int(reference.id) if reference else dg.MetadataValue.null(),
        "reference_status": dg.MetadataValue.text(str(reference.status) if reference else "none"),
        "missing_per_policy_type": dg.MetadataValue.json({str(k): int(v) for k, v in per_type.items()}),
        "preview": dg.MetadataValue.md(
            preview.to_markdown(index=False) if len(preview) else "_no missing items_"
        ),
    }
