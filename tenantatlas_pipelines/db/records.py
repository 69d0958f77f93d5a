"""Plain records the store takes and returns (no ORM objects leave the store)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenantatlas_pipelines.inventory.runs import COMPLETED_STATUSES, Confidence, RunStatus


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """One tenant as the registry describes it (mirrored into ``tenants``)."""

    key: str
    tenant_id: str
    display_name: str
    cloud: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SyncRunRow:
    """One row of ``inventory_sync_runs``."""

    id: int
    tenant_id: int
    selection_key: str
    selection_hash: str
    selection_payload: str
    status: RunStatus
    had_errors: bool
    error_codes: list[str]
    error_context: dict[str, Any]
    type_results: dict[str, Any]
    items_observed_count: int
    items_upserted_count: int
    errors_count: int
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    correlation_id: str
    dagster_run_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> SyncRunRow:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["status"] = RunStatus(values["status"])
        values["error_codes"] = list(values["error_codes"] or [])
        values["error_context"] = dict(values["error_context"] or {})
        values["type_results"] = dict(values["type_results"] or {})
        values["correlation_id"] = str(values["correlation_id"])
        return cls(**values)

    @property
    def completed(self) -> bool:
        """A possible missing reference: success, partial or failed, and finished."""
        return self.status in COMPLETED_STATUSES and self.finished_at is not None


@dataclass(frozen=True, slots=True)
class RunStart:
    """The answer of ``start_run``: our run id, RUNNING (lock taken) or SKIPPED (lock held)."""

    run_id: int
    status: RunStatus
    abandoned_run_ids: list[int] = field(default_factory=list)
    lock_holder: SyncRunRow | None = None  # SKIPPED: the running run that holds the lock


@dataclass(frozen=True, slots=True)
class MissingRow:
    """One missing item of a partition."""

    inventory_item_id: int
    policy_type: str
    external_id: str
    display_name: str | None
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class MissingResult:
    """The derived missing set of a (tenant, selection) and how far to trust it."""

    reference_run: SyncRunRow | None
    rows: list[MissingRow]
    confidence: Confidence | None
    confidence_reason: str
    selection_hash: str = ""
    failed_policy_types: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.rows)

    def counts_by_policy_type(self) -> dict[str, int]:
        return dict(sorted(Counter(row.policy_type for row in self.rows).items()))


@dataclass(frozen=True, slots=True)
class MissingSummary:
    """What ``inventory_missing_items`` holds for one partition (tenant, selection key).

    An empty partition stores no row, so its confidence and reference are ``None``.
    """

    count: int
    confidence: Confidence | None
    reference_run_id: int | None
    confidence_reason: str
    counts_by_policy_type: dict[str, int] = field(default_factory=dict)
