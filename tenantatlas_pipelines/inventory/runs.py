"""Sync-run vocabulary shared by the store, the sync service and Dagster."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"


COMPLETED_STATUSES: frozenset[RunStatus] = frozenset({RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED})
# a run whose data is usable: what freshness counts (a failed run is completed, not fresh)
USABLE_STATUSES: frozenset[RunStatus] = frozenset({RunStatus.SUCCESS, RunStatus.PARTIAL})


class TypeOutcome(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    NOT_RUN = "not_run"  # the run ended (tenant-level error) before this type finished


class Confidence(StrEnum):
    HIGH = "high"
    LOW = "low"


@dataclass(slots=True)
class TypeResult:
    """The outcome of one policy type inside a run (``type_results`` in the run row)."""

    policy_type: str
    outcome: TypeOutcome = TypeOutcome.NOT_RUN
    items: int = 0
    pages: int = 0
    skipped_items: int = 0
    dropped_meta_keys: int = 0
    retries: int = 0
    error_code: ErrorCode | None = None
    # what the upserts found (contract section 5b): first written, content hash moved, neither
    new: int = 0
    changed: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "outcome": str(self.outcome),
            "items": self.items,
            "pages": self.pages,
            "skipped_items": self.skipped_items,
            "dropped_meta_keys": self.dropped_meta_keys,
            "retries": self.retries,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
        }
        if self.error_code is not None:
            data["error_code"] = str(self.error_code)
        return data


@dataclass(slots=True)
class RunOutcome:
    """Everything ``finish_run`` records."""

    status: RunStatus
    type_results: dict[str, TypeResult] = field(default_factory=dict)
    errors: list[ErrorRecord] = field(default_factory=list)
    items_observed: int = 0
    items_upserted: int = 0
    had_errors: bool = False

    @property
    def error_codes(self) -> list[str]:
        return sorted({str(e.code) for e in self.errors})

    @property
    def items_new(self) -> int:
        return sum(r.new for r in self.type_results.values())

    @property
    def items_changed(self) -> int:
        return sum(r.changed for r in self.type_results.values())

    @property
    def items_unchanged(self) -> int:
        return sum(r.unchanged for r in self.type_results.values())

    def error_context(self) -> dict[str, list[dict[str, Any]]]:
        """Errors grouped per policy type (``_tenant`` for tenant-level ones)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for error in self.errors:
            grouped.setdefault(error.policy_type or "_tenant", []).append(error.to_dict())
        return grouped


def decide_status(type_results: dict[str, TypeResult], *, fatal: bool) -> RunStatus:
    """success: every type complete; partial: some failed, some not; failed: nothing usable."""
    if fatal or not type_results:
        return RunStatus.FAILED
    succeeded = sum(1 for r in type_results.values() if r.outcome is TypeOutcome.SUCCESS)
    if succeeded == len(type_results):
        return RunStatus.SUCCESS
    return RunStatus.PARTIAL if succeeded else RunStatus.FAILED
