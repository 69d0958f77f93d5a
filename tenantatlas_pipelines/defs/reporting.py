"""What a batch run shows in Dagster, per partition, as each partition finishes."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.changes import changes_metadata
from tenantatlas_pipelines.defs.checks import (
    INVENTORY_FRESH,
    LAST_SYNC_SUCCEEDED,
    freshness_evaluation,
    freshness_window,
    last_sync_evaluation,
)
from tenantatlas_pipelines.defs.keys import CHANGES_KEY, ITEMS_KEY, MISSING_KEY
from tenantatlas_pipelines.defs.metadata import (
    missing_metadata,
    skipped_description,
    skipped_metadata,
    sync_metadata,
)
from tenantatlas_pipelines.defs.partitions import partition_key
from tenantatlas_pipelines.inventory.errors import safe_message
from tenantatlas_pipelines.inventory.runs import USABLE_STATUSES
from tenantatlas_pipelines.registry import Registry
from tenantatlas_pipelines.sync.batch import PartitionOutcome
from tenantatlas_pipelines.sync.health import assess_freshness, grade_last_sync


class BatchReporter:
    """Logs each partition's materialisations, observation and check results; fails the run at the end."""

    def __init__(self, context: dg.AssetExecutionContext, store: InventoryStore, registry: Registry) -> None:
        self.context = context
        self.store = store
        self.registry = registry
        self.checks = {key.name for key in context.selected_asset_check_keys}
        self.window = freshness_window()

    def report(self, outcome: PartitionOutcome) -> None:
        context, ref = self.context, outcome.partition
        key = str(partition_key(ref.tenant_key, ref.selection_key))
        sync = outcome.sync
        if outcome.error_message is not None:
            context.log.error(f"sync of {key} failed: {outcome.error_message}")
        elif sync is not None and outcome.materialises_items:
            context.log.info(
                f"sync run {sync.run_id} of {key}: {sync.status} in {sync.duration_seconds:.1f}s, "
                f"error codes {', '.join(sync.error_codes) or 'none'}"
            )
            context.log_event(dg.AssetMaterialization(ITEMS_KEY, partition=key, metadata=sync_metadata(sync)))
        elif sync is not None and outcome.sync_skipped:
            description = skipped_description(sync)
            context.log.warning(f"{key}: {description}")
            context.log_event(
                dg.AssetObservation(
                    ITEMS_KEY, partition=key, description=description, metadata=skipped_metadata(sync)
                )
            )
        elif sync is not None:
            codes = ", ".join(sync.error_codes) or "none"
            context.log.error(
                f"sync run {sync.run_id} of {key} failed (error codes {codes}): partition not materialised"
            )
        if outcome.missing is not None:
            context.log_event(
                dg.AssetMaterialization(
                    MISSING_KEY, partition=key, metadata=missing_metadata(outcome.missing)
                )
            )
        elif outcome.missing_error is not None:
            context.log.error(f"missing derivation of {key} failed: {outcome.missing_error}")
        if outcome.changes is not None:
            metadata = changes_metadata(outcome.changes)
            context.log_event(dg.AssetMaterialization(CHANGES_KEY, partition=key, metadata=metadata))
        elif outcome.changes_error is not None:
            context.log.error(f"change history of {key} failed: {outcome.changes_error}")
        if self.checks:
            self._checks(outcome, key)

    def _checks(self, outcome: PartitionOutcome, key: str) -> None:
        ref = outcome.partition
        try:
            tenant_pk = self.store.tenant_pk(ref.tenant_key)
            selection_hash = self.registry.selection(ref.selection_key).hash()
        except Exception as exc:  # noqa: BLE001 - an unknown tenant or selection: no grade to give
            self.context.log.warning(f"no check results for {key}: {safe_message(exc)}")
            return
        if LAST_SYNC_SUCCEEDED in self.checks:
            run = self.store.latest_completed_run(tenant_pk, selection_hash)
            self.context.log_event(last_sync_evaluation(key, grade_last_sync(run)))
        if INVENTORY_FRESH in self.checks:
            usable = self.store.latest_completed_run(tenant_pk, selection_hash, USABLE_STATUSES)
            freshness = assess_freshness(
                usable.finished_at if usable else None, self.store.now(), self.window
            )
            self.context.log_event(freshness_evaluation(key, freshness))

    def finish(self, outcomes: Sequence[PartitionOutcome]) -> None:
        """Fail the run when a partition's sync failed or its missing set could not be derived."""
        failed = [o for o in outcomes if o.failed]
        done = len(outcomes) - len(failed)
        self.context.log.info(f"{done} of {len(outcomes)} partitions done, {len(failed)} failed")
        if not failed:
            return
        lines = [_failure_line(o) for o in failed]
        raise dg.Failure(
            description=(
                f"{len(failed)} of {len(outcomes)} partitions failed (the others are materialised):\n"
                + "\n".join(lines)
            ),
            metadata={
                "failed_partitions": dg.MetadataValue.text(", ".join(o.partition.label for o in failed))
            },
            allow_retries=False,
        )


def _failure_line(outcome: PartitionOutcome) -> str:
    label = outcome.partition.label
    if outcome.error_message is not None:
        return f"- {label}: {outcome.error_message}"
    if outcome.sync is not None and outcome.sync_failed:
        codes = ", ".join(outcome.sync.error_codes) or "none"
        return f"- {label}: sync run {outcome.sync.run_id} failed (error codes {codes})"
    if outcome.missing_error is not None:
        return f"- {label}: missing derivation failed: {outcome.missing_error}"
    return f"- {label}: change history failed: {outcome.changes_error}"
