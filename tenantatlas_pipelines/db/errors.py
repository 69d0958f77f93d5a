"""Errors the store raises on purpose (all ``TenantAtlasError``, so their text is redacted)."""

from __future__ import annotations

from tenantatlas_pipelines.inventory.errors import ErrorCode, TenantAtlasError


class StoreError(TenantAtlasError):
    """Root of the store's own errors."""


class _NotFound(StoreError, KeyError):
    """A ``KeyError`` (so ``except KeyError`` works) that prints its message, not its repr."""

    def __str__(self) -> str:
        return self.message


class UnknownTenantError(_NotFound):
    """No tenant with this key or id in the ``tenants`` mirror."""

    code = ErrorCode.CONFIG_ERROR


class UnknownRunError(_NotFound):
    """No sync run with this id for this tenant."""


class RunNotRunningError(StoreError):
    """The run is no longer running (finished, failed, or taken over after its lease expired).

    Raised by ``heartbeat``, ``upsert_items``, ``upsert_batches`` and ``finish_run``: a process that lost its
    lease must stop writing for that run.
    """

    code = ErrorCode.RUN_ABANDONED
