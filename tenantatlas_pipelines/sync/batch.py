"""A batch of partitions (tenant x selection) synced concurrently in one event loop.

A Dagster run of a backfill, of the nightly sweep or of first syncs carries many
partitions; syncing them one after another would waste the run (a partition waits
mostly on Graph), and one Dagster run per partition costs seconds of orchestration
each. Here every partition of the batch is its own sync: its own lock, its own
``inventory_sync_runs`` row, its own outcome. A partition's failure, skip or crash is
caught and recorded on that partition alone; the others go on.

At most ``max_concurrent_partitions`` syncs run at once. Each Graph client bounds its
own tenant's requests in flight, so the batch has at most
``max_concurrent_partitions x`` that bound in flight in total.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tenantatlas_pipelines.db.store import InventoryStore, MissingResult
from tenantatlas_pipelines.inventory.errors import ErrorCode, TenantAtlasError, safe_message
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import Registry
from tenantatlas_pipelines.sync.changes import ChangeResult, record_changes
from tenantatlas_pipelines.sync.missing import derive_missing
from tenantatlas_pipelines.sync.process_memory import prepare_process
from tenantatlas_pipelines.sync.service import (
    GraphFactory,
    SyncRequest,
    SyncResult,
    SyncService,
    SyncSettings,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT_PARTITIONS = 8
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PartitionRef:
    tenant_key: str
    selection_key: str

    @property
    def label(self) -> str:
        return f"{self.selection_key}|{self.tenant_key}"


@dataclass(slots=True)
class PartitionOutcome:
    """What happened to one partition of a batch."""

    partition: PartitionRef
    sync: SyncResult | None = None  # None: the sync was not asked for, or raised before a result
    error_code: str | None = None  # the sync raised: its code (the run row, if any, says failed)
    error_message: str | None = None  # redacted
    missing: MissingResult | None = None
    missing_error: str | None = None  # redacted; the derivation raised
    changes: ChangeResult | None = None
    changes_error: str | None = None  # redacted; the change history could not be written
    duration_seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def sync_failed(self) -> bool:
        """The sync was asked for and produced nothing usable (a red partition)."""
        if self.error_code is not None:
            return True
        return self.sync is not None and self.sync.status is RunStatus.FAILED

    @property
    def failed(self) -> bool:
        """Something asked of this partition failed: its run must not look green."""
        return self.sync_failed or self.missing_error is not None or self.changes_error is not None

    @property
    def sync_skipped(self) -> bool:
        return self.sync is not None and self.sync.status is RunStatus.SKIPPED

    @property
    def materialises_items(self) -> bool:
        """success and partial materialise the partition; failed and skipped do not."""
        return self.sync is not None and self.sync.status in (RunStatus.SUCCESS, RunStatus.PARTIAL)


@dataclass(frozen=True, slots=True)
class Steps:
    """Which steps a run performs for each of its partitions (``for_selection``: what a run asked for)."""

    sync: bool = True
    missing: bool = True
    changes: bool = True

    @classmethod
    def for_selection(cls, *, sync: bool, missing: bool, changes: bool) -> Steps:
        """The steps of a run that selected these; a sync always brings the two derivations.

        The missing set or the change history alone is re-derived without a sync. A sync
        selected alone (the asset page's Materialize on the items, a backfill re-executed
        from failure, which targets only the partitions that failed) still derives both: the
        missing set is defined by the latest completed sync, and the history must hold every
        completed sync's changes (it compares a run with the one before, so a sync left out
        would lose its appeared and changed items for good).
        """
        return cls(sync=sync, missing=missing or sync, changes=changes or sync)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    max_concurrent_partitions: int = DEFAULT_MAX_CONCURRENT_PARTITIONS
    sync: SyncSettings = field(default_factory=SyncSettings)

    def __post_init__(self) -> None:
        if self.max_concurrent_partitions < 1:
            raise ValueError(
                f"BatchSettings: max_concurrent_partitions ({self.max_concurrent_partitions}) must be "
                "at least 1"
            )


PartitionHook = Callable[[PartitionOutcome], None]


class BatchRunner:
    """Syncs a batch of partitions, then derives each one's missing set and change history.

    ``Steps`` says which steps the run asked for. A partition's derivations run after its
    own sync whatever the sync's status: they follow the reference-run rule (the latest
    completed run), so a failed sync yields low confidence, and a skipped one the state of
    the run before. The change history is written only after the missing set it compares.
    """

    def __init__(
        self,
        store: InventoryStore,
        registry: Registry,
        graph_factory: GraphFactory,
        settings: BatchSettings | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings or BatchSettings()
        self.service = SyncService(store, graph_factory, self.settings.sync)

    def run(
        self,
        partitions: Sequence[PartitionRef],
        steps: Steps = Steps(),
        *,
        dagster_run_id: str | None = None,
        on_done: PartitionHook | None = None,
    ) -> list[PartitionOutcome]:
        """Run the batch to completion (blocking); outcomes in the order of ``partitions``.

        ``on_done`` is called (in the calling thread's event loop) as each partition
        finishes, so its events show up while the rest of the batch still runs.
        """
        if self.settings.sync.prepare_process:
            prepare_process()
        return asyncio.run(self.run_async(partitions, steps, dagster_run_id=dagster_run_id, on_done=on_done))

    async def run_async(
        self,
        partitions: Sequence[PartitionRef],
        steps: Steps = Steps(),
        *,
        dagster_run_id: str | None = None,
        on_done: PartitionHook | None = None,
    ) -> list[PartitionOutcome]:
        gate = asyncio.Semaphore(self.settings.max_concurrent_partitions)

        async def one(ref: PartitionRef) -> PartitionOutcome:
            async with gate:
                outcome = await self._partition(ref, steps, dagster_run_id)
            if on_done is not None:
                on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(ref) for ref in partitions)))

    async def _partition(
        self, ref: PartitionRef, steps: Steps, dagster_run_id: str | None
    ) -> PartitionOutcome:
        started = time.monotonic()
        outcome = PartitionOutcome(ref)
        if steps.sync:
            try:
                request = SyncRequest(
                    tenant_key=ref.tenant_key,
                    tenant=self.registry.tenant(ref.tenant_key),
                    selection_key=ref.selection_key,
                    selection=self.registry.selection(ref.selection_key),
                    dagster_run_id=dagster_run_id,
                )
                outcome.sync = await self.service.run_async(request)
            except Exception as exc:  # noqa: BLE001 - one partition's crash is its own outcome
                code = exc.code if isinstance(exc, TenantAtlasError) else ErrorCode.UNEXPECTED_EXCEPTION
                outcome.error_code = str(code)
                outcome.error_message = _described(exc)
                log.warning("sync of %s failed: %s", ref.label, outcome.error_message)
        if steps.missing:
            outcome.missing, outcome.missing_error = await self._derive(ref, derive_missing, "missing set")
        if steps.changes and outcome.missing_error is None:
            outcome.changes, outcome.changes_error = await self._derive(ref, record_changes, "change history")
        elif steps.changes:
            outcome.changes_error = "not recorded: the missing set it compares could not be derived"
        outcome.duration_seconds = time.monotonic() - started
        return outcome

    async def _derive(
        self, ref: PartitionRef, derive: Callable[[InventoryStore, str, str, Selection], _T], what: str
    ) -> tuple[_T | None, str | None]:
        """One derivation of the partition (in a worker thread): its result, or its redacted error."""
        try:
            selection = self.registry.selection(ref.selection_key)
            return await asyncio.to_thread(
                derive, self.store, ref.tenant_key, ref.selection_key, selection
            ), None
        except Exception as exc:  # noqa: BLE001 - recorded on this partition
            error = _described(exc)
            log.warning("%s of %s failed: %s", what, ref.label, error)
            return None, error


def _described(exc: Exception) -> str:
    return f"{type(exc).__name__}: {safe_message(exc)}"
