"""Dagster metadata built from sync and missing results (presentation only)."""

from __future__ import annotations

from datetime import datetime
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
        dg.TableColumn("error_code", "string"),
        dg.TableColumn("items", "int"),
        dg.TableColumn("new", "int"),
        dg.TableColumn("changed", "int"),
        dg.TableColumn("unchanged", "int"),
        dg.TableColumn("pages", "int"),
        dg.TableColumn("skipped_items", "int"),
        dg.TableColumn("retries", "int"),
    ]
)


def text(value: object) -> dg.TextMetadataValue:
    """Identifiers and codes are text: the UI plots every int and float as a metric over time."""
    return dg.MetadataValue.text(str(value))


def timestamp(at: datetime | None) -> dg.TextMetadataValue:
    """An ISO 8601 UTC time to the second (no microseconds)."""
    return dg.MetadataValue.text(at.replace(microsecond=0).isoformat() if at is not None else "-")


def codes(values: list[str] | tuple[str, ...]) -> dg.TextMetadataValue:
    return dg.MetadataValue.text(", ".join(values) if values else "none")


def sync_metadata(result: SyncResult) -> dict[str, Any]:
    """Metadata of a sync that materialised its partition (status success or partial)."""
    outcome = result.outcome
    metadata: dict[str, Any] = {
        "status": text(result.status),
        "sync_run_id": text(result.run_id),
        "selection_hash": text(result.selection_hash),
        "correlation_id": text(result.correlation_id),
        "error_codes": codes(result.error_codes),
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
                "error_code": str(r.error_code) if r.error_code else "",
                "items": r.items,
                "new": r.new,
                "changed": r.changed,
                "unchanged": r.unchanged,
                "pages": r.pages,
                "skipped_items": r.skipped_items,
                "retries": r.retries,
            }
        )
        for key, r in sorted(outcome.type_results.items())
    ]
    failed = sum(1 for r in outcome.type_results.values() if str(r.outcome) != "success")
    metadata.update(
        {
            "items_observed": dg.MetadataValue.int(outcome.items_observed),
            "items_upserted": dg.MetadataValue.int(outcome.items_upserted),
            # what changed since the previous sync (contract 5b), plotted over time per partition
            "items_new": dg.MetadataValue.int(outcome.items_new),
            "items_changed": dg.MetadataValue.int(outcome.items_changed),
            "items_unchanged": dg.MetadataValue.int(outcome.items_unchanged),
            "errors_count": dg.MetadataValue.int(len(outcome.errors)),
            "policy_types_failed": dg.MetadataValue.int(failed),
            "had_errors": dg.MetadataValue.bool(outcome.had_errors),
            "dagster/row_count": dg.MetadataValue.int(outcome.items_observed),
            "per_policy_type": dg.MetadataValue.table(rows, schema=_TYPE_TABLE_SCHEMA),
        }
    )
    return metadata


def skipped_description(result: SyncResult) -> str:
    """What a skipped sync says, in the run's log and on the partition's observation."""
    holder = result.lock_holder
    if holder is None:
        return f"sync skipped: another run holds this tenant and selection's lock (sync run {result.run_id})"
    by = f" (Dagster run {holder.dagster_run_id})" if holder.dagster_run_id else ""
    return (
        f"sync skipped, nothing materialised: sync run {holder.id}{by} holds the lock of this "
        f"tenant and selection since {timestamp(holder.started_at).value}; recorded as skipped "
        f"sync run {result.run_id} (lock_contended)"
    )


def skipped_metadata(result: SyncResult) -> dict[str, Any]:
    holder = result.lock_holder
    return {
        "skipped": dg.MetadataValue.text("lock_contended"),
        "skipped_sync_run_id": text(result.run_id),
        "lock_held_by_sync_run_id": text(holder.id if holder else "unknown"),
        "lock_held_by_dagster_run_id": text(
            holder.dagster_run_id if holder and holder.dagster_run_id else "-"
        ),
    }


def missing_frame(result: MissingResult) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "policy_type": row.policy_type,
                "external_id": row.external_id,
                "display_name": row.display_name,
                "last_seen_at": timestamp(row.last_seen_at).value,
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
        "reference_sync_run_id": text(reference.id if reference else "none"),
        "reference_status": text(reference.status if reference else "none"),
        "reference_started_at": timestamp(reference.started_at if reference else None),
        "missing_per_policy_type": dg.MetadataValue.json({str(k): int(v) for k, v in per_type.items()}),
        "preview": dg.MetadataValue.md(
            preview.to_markdown(index=False) if len(preview) else "_no missing items_"
        ),
    }
