"""Helpers of the db tests: a fake clock, item builders, and a driver for whole sync runs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import ErrorRecord
from tenantatlas_pipelines.inventory.normalize import NormalizedItem
from tenantatlas_pipelines.inventory.runs import RunOutcome, RunStatus, TypeOutcome, TypeResult

T0 = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
LEASE_SECONDS = 300.0


class FakeClock:
    """Returns ``now`` and then moves it on by ``tick`` (so every store call is strictly later)."""

    def __init__(self, start: datetime = T0, tick: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.tick = tick

    def __call__(self) -> datetime:
        current = self.now
        self.now = current + self.tick
        return current

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def selection_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def make_item(external_id: str, name: str | None = None, **meta: object) -> NormalizedItem:
    return NormalizedItem(
        external_id=external_id,
        display_name=name if name is not None else f"Policy {external_id}",
        category="configuration",
        platform="windows10",
        meta={"odata_type": "#microsoft.graph.windows10GeneralConfiguration", **meta},
    )


class SyncDriver:
    """Runs whole syncs through the store: start, upsert per type, finish."""

    def __init__(self, store: InventoryStore) -> None:
        self.store = store

    def start(self, tenant_pk: int, selection: str = "all", **kwargs: str) -> int:
        start = self.store.start_run(
            tenant_pk, selection, selection_hash(selection), f'{{"name":"{selection}"}}', **kwargs
        )
        assert start.status is RunStatus.RUNNING, start
        return start.run_id

    def upsert(self, tenant_pk: int, run_id: int, observed: Mapping[str, Sequence[str]]) -> None:
        for policy_type, ids in observed.items():
            items = [make_item(i) for i in ids]
            self.store.upsert_items(tenant_pk, run_id, policy_type, items, self.store.now())

    def outcome(
        self,
        observed: Mapping[str, Sequence[str]],
        *,
        failed_types: Iterable[str] = (),
        status: RunStatus | None = None,
        errors: Sequence[ErrorRecord] = (),
    ) -> RunOutcome:
        results = {
            key: TypeResult(key, TypeOutcome.SUCCESS, items=len(ids), pages=1)
            for key, ids in observed.items()
        }
        for key in failed_types:
            results[key] = TypeResult(key, TypeOutcome.FAILED)
        if status is None:
            status = RunStatus.PARTIAL if failed_types else RunStatus.SUCCESS
        count = sum(len(ids) for ids in observed.values())
        return RunOutcome(
            status=status,
            type_results=results,
            errors=list(errors),
            items_observed=count,
            items_upserted=count,
            had_errors=bool(errors) or status is not RunStatus.SUCCESS,
        )

    def sync(
        self,
        tenant_pk: int,
        observed: Mapping[str, Sequence[str]],
        *,
        selection: str = "all",
        failed_types: Iterable[str] = (),
        status: RunStatus | None = None,
        errors: Sequence[ErrorRecord] = (),
    ) -> int:
        run_id = self.start(tenant_pk, selection)
        self.upsert(tenant_pk, run_id, observed)
        outcome = self.outcome(observed, failed_types=failed_types, status=status, errors=errors)
        self.store.finish_run(tenant_pk, run_id, outcome)
        return run_id
