"""The change history of one partition (tenant, selection): what its latest sync found.

``record_changes`` is the whole body of the ``inventory_changes`` asset: it appends to
``inventory_change_events`` the appeared, changed, disappeared and reappeared items of the
partition's latest completed run since the completed run before it (db/changes.py has the
rules), idempotently, and prunes the tenant's events older than the retention
(``TENANTATLAS_CHANGE_RETENTION_DAYS``, default 90).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from tenantatlas_pipelines.db.changes import ChangeEvent, ChangeHistory, ChangeResult
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.inventory.settings import positive_setting

__all__ = ["ChangeEvent", "ChangeResult", "change_retention", "record_changes"]

RETENTION_ENV: Final = "TENANTATLAS_CHANGE_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS: Final = 90


def change_retention(environ: Mapping[str, str] | None = None) -> timedelta:
    """The history's retention: ``TENANTATLAS_CHANGE_RETENTION_DAYS`` (a positive number of days)."""
    days = positive_setting(
        RETENTION_ENV, DEFAULT_RETENTION_DAYS, "days of change history", maximum=36_500, environ=environ
    )
    return timedelta(days=days)


def record_changes(
    store: InventoryStore,
    tenant_key: str,
    selection_key: str,
    selection: Selection,
    *,
    retention: timedelta | None = None,
) -> ChangeResult:
    """Append the partition's changes of its latest completed sync run; prune old events."""
    history = ChangeHistory(store, retention=retention or change_retention())
    return history.record(store.tenant_pk(tenant_key), selection_key, selection.hash(), selection.resolve())
