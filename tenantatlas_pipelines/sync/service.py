"""The sync service: one run of one tenant and one selection.

Take the lock, resolve the selection, list every policy type concurrently
(within the tenant's limits), stream pages into batched upserts (fetching and
writing overlap through a bounded queue, so memory stays flat), heartbeat the
lease, record per-type outcomes and finish the run. It only reads from Graph
and only writes this tenant's rows.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import orjson

from tenantatlas_pipelines.db.json_batches import WriteCounts
from tenantatlas_pipelines.db.store import InventoryStore, SyncRunRow
from tenantatlas_pipelines.graph.client import GraphPage
from tenantatlas_pipelines.graph.errors import GraphError
from tenantatlas_pipelines.inventory.catalog import CATALOG, PolicyType
from tenantatlas_pipelines.inventory.errors import (
    ErrorCode,
    ErrorRecord,
    ItemInvalidError,
    SyncFailedError,
    TenantAtlasError,
    safe_message,
)
from tenantatlas_pipelines.inventory.fingerprint import content_hash
from tenantatlas_pipelines.inventory.normalize import MAX_DISPLAY_NAME_CHARS, NormalizedItem, normalize_item
from tenantatlas_pipelines.inventory.redaction import (
    contains_known_secret,
    json_contains_known_secret,
    redact,
    redact_value,
)
from tenantatlas_pipelines.inventory.runs import (
    RunOutcome,
    RunStatus,
    TypeOutcome,
    TypeResult,
    decide_status,
)
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.registry import KEY_FIX, TenantEntry, read_secret, valid_key
from tenantatlas_pipelines.sync.process_memory import prepare_process
from tenantatlas_pipelines.sync.tenants import tenant_record
from tenantatlas_pipelines.sync.write_buffer import WriteBuffer

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# item_invalid errors kept per type in error_context (the count is always exact)
MAX_ITEM_ERRORS_PER_TYPE = 5


class PageSource(Protocol):
    """What the service needs of a Graph client (GraphClient satisfies it)."""

    def list_pages(self, policy_type: PolicyType) -> AsyncIterator[GraphPage]: ...


GraphFactory = Callable[[str, TenantEntry], AbstractAsyncContextManager[PageSource]]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    tenant_key: str
    tenant: TenantEntry
    selection_key: str
    selection: Selection
    dagster_run_id: str | None = None


@dataclass(slots=True)
class SyncResult:
    run_id: int
    status: RunStatus
    selection_hash: str
    correlation_id: str
    duration_seconds: float
    outcome: RunOutcome | None = None  # None when the run was skipped (lock held)
    policy_types: tuple[str, ...] = ()
    lock_holder: SyncRunRow | None = None  # skipped: the running sync run that holds the lock

    @property
    def error_codes(self) -> list[str]:
        if self.outcome is None:
            return [str(ErrorCode.LOCK_CONTENDED)]
        return self.outcome.error_codes


# ids remembered per type to drop an item Graph repeats on a neighbouring page; bounded, so
# memory stays flat with the number of items (the upsert is idempotent whatever slips through)
RECENT_IDS_PER_TYPE = 4096


@dataclass(slots=True)
class _TypeState:
    result: TypeResult
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    item_errors: int = 0

    def first_sighting(self, external_id: str) -> bool:
        """False for an id seen within the last RECENT_IDS_PER_TYPE items of this type."""
        if external_id in self.recent:
            return False
        self.recent[external_id] = None
        if len(self.recent) > RECENT_IDS_PER_TYPE:
            self.recent.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class SyncSettings:
    batch_size: int = 1000  # items buffered before an upsert starts (more while one runs)
    max_buffered_items: int = 5_000  # the writer waits for the database beyond this (memory)
    prepare_process: bool = True  # process-wide memory settings, once (sync/process_memory.py)
    queue_pages: int = 16  # pages buffered between fetchers and the writer
    heartbeat_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.batch_size <= self.max_buffered_items:
            raise ValueError(
                f"SyncSettings: batch_size ({self.batch_size}) must be positive and at most "
                f"max_buffered_items ({self.max_buffered_items}); raise max_buffered_items with it"
            )
        if self.queue_pages < 1 or self.heartbeat_seconds <= 0:
            raise ValueError("SyncSettings: queue_pages must be at least 1 and heartbeat_seconds positive")


class SyncService:
    """Runs syncs against one store; a Graph client is made per run by ``graph_factory``."""

    def __init__(
        self,
        store: InventoryStore,
        graph_factory: GraphFactory,
        settings: SyncSettings | None = None,
    ) -> None:
        self.store = store
        self.graph_factory = graph_factory
        self.settings = settings or SyncSettings()

    def run(self, request: SyncRequest) -> SyncResult:
        """Run one sync to completion (blocking)."""
        if self.settings.prepare_process:
            prepare_process()  # flat memory, a cheaper garbage collector (sync/process_memory.py)
        return asyncio.run(self.run_async(request))

    async def run_async(self, request: SyncRequest) -> SyncResult:
        started = time.monotonic()
        for what, key in (("tenant", request.tenant_key), ("selection", request.selection_key)):
            if not valid_key(key):  # e.g. a hostile partition key added by hand to the instance
                raise TenantAtlasError(
                    f"bad {what} key {key[:80]!r}: {KEY_FIX}; nothing was written",
                    code=ErrorCode.CONFIG_ERROR,
                )
        selection = request.selection
        policy_types = tuple(sorted(selection.resolve()))
        if not policy_types:
            raise TenantAtlasError(
                f"selection {request.selection_key!r} resolves to no policy type; fix the registry",
                code=ErrorCode.CONFIG_ERROR,
            )
        if not request.tenant.enabled:
            raise TenantAtlasError(
                f"tenant {request.tenant_key!r} is disabled in the registry; set `enabled: true` to sync it",
                code=ErrorCode.CONFIG_ERROR,
            )
        read_secret(request.tenant_key, request.tenant)  # fail before anything is written
        correlation_id = str(uuid.uuid4())
        selection_hash = selection.hash()
        failure: SyncFailedError | None = None
        try:
            tenant_pk = self.store.ensure_tenant(tenant_record(request.tenant_key, request.tenant))
            start = self.store.start_run(
                tenant_pk,
                request.selection_key,
                selection_hash,
                selection.canonical_json(),
                correlation_id=correlation_id,
                dagster_run_id=request.dagster_run_id,
            )
        except TenantAtlasError:
            raise  # ours: redacted on construction, and names the fix
        except Exception as exc:  # noqa: BLE001 - the database failed before any run row existed
            failure = self._fail(request, None, exc)
        if failure is not None:
            raise failure from None
        result = SyncResult(
            run_id=start.run_id,
            status=start.status,
            selection_hash=selection_hash,
            correlation_id=correlation_id,
            duration_seconds=0.0,
            policy_types=policy_types,
        )
        if start.status is RunStatus.SKIPPED:
            result.lock_holder = start.lock_holder
            result.duration_seconds = time.monotonic() - started
            return result
        try:
            outcome = await _Run(self, request, tenant_pk, start.run_id, policy_types).execute()
            self.store.finish_run(tenant_pk, start.run_id, outcome)
        except BaseException as exc:
            # a crash: the previous inventory is intact (upserts only add and refresh rows);
            # the run is recorded as failed with a redacted message
            failure = self._fail(request, start.run_id, exc)
            if failure is None:
                raise  # an interrupt (Ctrl-C, a terminated run, a cancelled task) goes on as it is
        if failure is not None:
            # raised outside the handler and from None: the original exception (whose text or
            # chain may hold a token, a secret or a header) is neither the cause nor the context
            raise failure from None
        result.status = outcome.status
        result.outcome = outcome
        result.duration_seconds = time.monotonic() - started
        return result

    def _fail(self, request: SyncRequest, run_id: int | None, exc: BaseException) -> SyncFailedError | None:
        """Record a crashed run failed; the redacted error to raise instead, or None for an interrupt.

        ``run_id`` None: the sync failed before its run row was written (nothing to record).
        """
        detail = describe_failure(exc)
        if run_id is not None:
            try:
                self.store.mark_run_failed(run_id, code=ErrorCode.UNEXPECTED_EXCEPTION, message=detail)
            except Exception as record_error:  # noqa: BLE001 - the database may be what failed
                detail += f"; recording the run as failed failed too: {describe_failure(record_error)}"
        run = f"sync run {run_id}" if run_id is not None else "sync (before its run was recorded)"
        text = (
            f"{run} of {request.selection_key}|{request.tenant_key} failed "
            f"({ErrorCode.UNEXPECTED_EXCEPTION}): {detail}"
        )
        log.error("%s", safe_message(text, limit=2000))  # redacted here: no handler has to
        if not _is_error(exc):
            return None
        return SyncFailedError(text, run_id=run_id, code=ErrorCode.UNEXPECTED_EXCEPTION)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order; ``exc`` itself otherwise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _is_error(exc: BaseException) -> bool:
    """An error (replaced by SyncFailedError), not an interrupt (KeyboardInterrupt, a cancellation...)."""
    return all(isinstance(leaf, Exception) for leaf in _leaves(exc))


def describe_failure(exc: BaseException) -> str:
    """``Type at file:line in function: redacted message`` of the first failure (and how many more)."""
    leaves = _leaves(exc)
    first = leaves[0]
    frames = traceback.extract_tb(first.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    more = f" (and {len(leaves) - 1} more failure(s))" if len(leaves) > 1 else ""
    return f"{type(first).__name__}{where}: {safe_message(first)}{more}"


# a page: its policy type, its items and their fingerprints (None for what is not an object)
_Page = tuple[PolicyType, list[dict[str, object]], list[str | None]]


class _Run:
    """The state of one running sync; fetchers feed a bounded queue, one writer drains it.

    Fetchers list pages, hash each page's items (``_fingerprints``: while the parsed objects
    are still in the CPU's caches) and queue them, so each asks for its next page after
    about a millisecond of hashing (paging is sequential per type: whatever runs between two
    requests of a type delays it). The writer normalises the pages into the write buffer
    while the flusher runs one upsert at a time in a worker thread, and the heartbeat renews
    the lease.

    All of them run in one task group: the first exception in any task (a bug in the
    normaliser, a failed upsert, a fetcher failing with anything but a GraphError, a lost
    lease) cancels every other task at once, so no fetcher stays blocked on a full queue and
    no heartbeat renews the lease of a run that has failed; ``execute`` then raises it.
    """

    def __init__(
        self,
        service: SyncService,
        request: SyncRequest,
        tenant_pk: int,
        run_id: int,
        policy_types: tuple[str, ...],
    ) -> None:
        self.service = service
        self.store = service.store
        self.settings = service.settings
        self.request = request
        self.tenant_pk = tenant_pk
        self.run_id = run_id
        self.states = {key: _TypeState(TypeResult(key)) for key in policy_types}
        self.errors: list[ErrorRecord] = []
        self.fatal = False
        self.upserted = 0
        self.seen_at = self.store.now()
        self.queue: asyncio.Queue[_Page | None] = asyncio.Queue(maxsize=self.settings.queue_pages)
        self.fetchers: list[asyncio.Task[None]] = []

    async def execute(self) -> RunOutcome:
        """Fetch, write and heartbeat until every page is stored; any task's exception ends it all."""
        buffer = WriteBuffer(self.settings.batch_size, self.settings.max_buffered_items)
        async with asyncio.TaskGroup() as group:
            heartbeat = group.create_task(self._heartbeat(), name="heartbeat")
            writer = group.create_task(self._write(buffer), name="writer")
            flusher = group.create_task(self._flush(buffer), name="flusher")
            await self._fetch_all(group)
            await self.queue.put(None)  # the writer normalises what is queued, then closes the buffer
            await asyncio.wait((writer, flusher))  # their exceptions reach the group, not this body
            heartbeat.cancel()

        type_results = {key: state.result for key, state in self.states.items()}
        status = decide_status(type_results, fatal=self.fatal)
        return RunOutcome(
            status=status,
            type_results=type_results,
            errors=self.errors,
            items_observed=sum(s.result.items for s in self.states.values()),
            items_upserted=self.upserted,
            had_errors=bool(self.errors) or status is not RunStatus.SUCCESS,
        )

    async def _fetch_all(self, group: asyncio.TaskGroup) -> None:
        """One fetcher per policy type, in the group; returns when all have ended."""
        try:
            async with self.service.graph_factory(self.request.tenant_key, self.request.tenant) as graph:
                self.fetchers = [
                    group.create_task(self._fetch(graph, CATALOG[key]), name=f"fetch:{key}")
                    for key in self.states
                ]
                if self.fetchers:
                    await asyncio.wait(self.fetchers)  # a failed fetcher's exception reaches the group
        except GraphError as exc:  # auth failure while opening the client
            self._tenant_fatal(exc)

    async def _fetch(self, graph: PageSource, policy_type: PolicyType) -> None:
        state = self.states[policy_type.key]
        result = state.result
        try:
            async for page in graph.list_pages(policy_type):
                result.pages += 1
                result.retries += page.retries
                if page.items:
                    fingerprints = _fingerprints(policy_type, page.items)
                    await self.queue.put((policy_type, page.items, fingerprints))
        except GraphError as exc:
            result.outcome = TypeOutcome.FAILED
            result.error_code = exc.record.code
            if exc.tenant_fatal:
                self._tenant_fatal(exc)
                current = asyncio.current_task()
                for task in self.fetchers:
                    if task is not current:
                        task.cancel()  # nothing more of this tenant is usable
            else:
                self.errors.append(_with_type(exc.record, policy_type.key))
            return
        result.outcome = TypeOutcome.SUCCESS

    def _normalize(
        self,
        policy_type: PolicyType,
        state: _TypeState,
        raw_items: list[dict[str, object]],
        fingerprints: list[str | None],
    ) -> list[NormalizedItem]:
        batch: list[NormalizedItem] = []
        for raw, fingerprint in zip(raw_items, fingerprints, strict=True):
            try:
                item = normalize_item(policy_type, raw, fingerprint)
            except ItemInvalidError as exc:
                state.result.skipped_items += 1
                state.item_errors += 1
                if state.item_errors <= MAX_ITEM_ERRORS_PER_TYPE:
                    self.errors.append(
                        ErrorRecord(code=exc.code, message=exc.message, policy_type=policy_type.key)
                    )
                continue
            if not state.first_sighting(item.external_id):
                continue  # Graph repeated the item on another page
            state.result.dropped_meta_keys += item.dropped_meta_keys
            batch.append(item)
        state.result.items += len(batch)
        _scrub_known_secrets(batch)
        return batch

    def _tenant_fatal(self, exc: GraphError) -> None:
        if not self.fatal:
            self.fatal = True
            self.errors.append(_with_type(exc.record, None))

    async def _write(self, buffer: WriteBuffer) -> None:
        """Normalise queued pages into the write buffer until the end marker, then close it.

        The flusher writes the buffer meanwhile, so this waits on the database only when
        the buffer is full.
        """
        while (entry := await self.queue.get()) is not None:
            policy_type, raw_items, fingerprints = entry
            items = self._normalize(policy_type, self.states[policy_type.key], raw_items, fingerprints)
            if items:
                await buffer.add(policy_type.key, items)
            # let the fetchers run: a fetcher whose page just arrived sends its next request
            # now, not after every queued page is normalised (paging a type is sequential,
            # so each delay here lengthens the longest type's chain of requests)
            await asyncio.sleep(0)
        buffer.close()

    async def _flush(self, buffer: WriteBuffer) -> None:
        """Upsert the buffer, one batch at a time, until it is closed and empty."""
        while (batch := await buffer.next_batch()) is not None:
            counts = WriteCounts()  # what the upsert found per type (section 5b)
            self.upserted += await _in_thread(
                functools.partial(self.store.upsert_batches, counts=counts),
                self.tenant_pk,
                self.run_id,
                batch,
                self.seen_at,
            )
            for key, (new, changed, unchanged) in counts.per_type.items():
                result = self.states[key].result
                result.new, result.changed = result.new + new, result.changed + changed
                result.unchanged += unchanged

    async def _heartbeat(self) -> None:
        """Renew the lease; a lost lease (``RunNotRunningError``) or a database error ends the run."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            await _in_thread(self.store.heartbeat, self.tenant_pk, self.run_id)


async def _in_thread(func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` in a worker thread; a cancellation waits for the call to end, then goes on.

    A thread cannot be stopped: when the run is cancelled mid-upsert, the statement is let
    finish (its rows are valid), so the run is recorded failed only after its last write.
    """
    call = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait((call,))
        if not call.cancelled():
            call.exception()  # retrieved: the cancellation is what goes on
        raise


def _fingerprints(policy_type: PolicyType, raw_items: list[dict[str, object]]) -> list[str | None]:
    """Each item's content hash, computed as its page arrives (None for what is not an object).

    Here rather than when the writer normalises the page: the page was parsed a moment ago,
    so the objects the hash walks whole (the canonical dump reads every value) are still in
    the CPU's caches; by the time the writer takes the page, up to ``queue_pages`` pages
    later, they are not. Inside a W1 sync that made the hash about a third cheaper
    (benchmarks/README.md, "Content fingerprints").
    """
    key = policy_type.key
    return [content_hash(key, raw) if isinstance(raw, dict) else None for raw in raw_items]


def _scrub_known_secrets(batch: list[NormalizedItem]) -> None:
    """A hostile or broken Graph may echo our token or secret inside item data: never store it.

    One byte search of the batch's stored text (names and meta, serialised by orjson) for the
    registered secrets (client secrets, issued tokens); only a batch holding one is redacted.
    Ids are never rewritten.
    """
    stored = [(item.display_name, item.meta) for item in batch]
    try:
        found = json_contains_known_secret(orjson.dumps(stored))
    except TypeError:  # an integer beyond 64 bits: the standard library writes it
        found = contains_known_secret(json.dumps(stored))
    if not found:
        return
    for item in batch:
        if item.display_name is not None:
            # a redaction marker can be longer than what it hides: bound the name again
            item.display_name = redact(item.display_name)[:MAX_DISPLAY_NAME_CHARS]
        item.meta = redact_value(item.meta)


def _with_type(record: ErrorRecord, policy_type: str | None) -> ErrorRecord:
    """Errors are grouped per type in error_context; tenant-level ones carry no type."""
    record.policy_type = policy_type
    return record
