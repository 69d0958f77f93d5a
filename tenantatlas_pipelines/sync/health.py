"""How healthy a partition is: the grade of its last sync and its freshness (no Dagster here).

- last sync: the latest *completed* run passes when ``success``; ``partial`` is a warning,
  ``failed`` an error; no completed run yet is a warning.
- fresh: the latest *usable* run (``success`` or ``partial``) finished within the window. A
  failed run is completed but not fresh: a partition whose syncs keep failing goes stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tenantatlas_pipelines.db.store import SyncRunRow
from tenantatlas_pipelines.inventory.runs import RunStatus

DEFAULT_FRESHNESS_WINDOW_HOURS = 26.0


class Severity(StrEnum):
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Grade:
    passed: bool
    severity: Severity
    description: str
    run: SyncRunRow | None = None


def grade_last_sync(run: SyncRunRow | None) -> Grade:
    """The grade of the latest completed run of a partition."""
    if run is None:
        return Grade(False, Severity.WARN, "no completed sync run for this tenant and selection yet")
    codes = ", ".join(run.error_codes or []) or "none"
    description = f"sync run {run.id} finished {run.status} (error codes: {codes})"
    if run.status is RunStatus.SUCCESS:
        return Grade(True, Severity.WARN, description, run)
    severity = Severity.WARN if run.status is RunStatus.PARTIAL else Severity.ERROR
    return Grade(False, severity, description, run)


@dataclass(frozen=True, slots=True)
class Freshness:
    fresh: bool
    description: str
    last_usable_at: datetime | None
    age_hours: float | None


def assess_freshness(last_usable_at: datetime | None, now: datetime, window: timedelta) -> Freshness:
    """Fresh when a success or partial run finished within ``window`` before ``now``."""
    window_hours = window.total_seconds() / 3600
    if last_usable_at is None:
        return Freshness(False, f"no successful or partial sync yet (window {window_hours:g} h)", None, None)
    age_hours = (now - last_usable_at).total_seconds() / 3600
    fresh = now - last_usable_at <= window
    word = "within" if fresh else "older than"
    return Freshness(
        fresh,
        f"last successful or partial sync {age_hours:.1f} h ago, {word} the window of {window_hours:g} h",
        last_usable_at,
        age_hours,
    )
