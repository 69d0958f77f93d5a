"""Per-tenant request limits, one budget for every run and process of a deployment.

Graph throttles per app and tenant: Intune about 1000 requests per 20 s,
conditional access 1 request per second. Two runs of one tenant (two selections, a
batch and a manual run) must share that budget, so the budget lives in a
``BudgetLedger`` every process consults: ``db/graph_budget.py`` keeps it in the
inventory database (wired in ``sync/graph_factory.py``); ``InMemoryBudgetLedger`` keeps
it in this process only (tests, a single process).

- **Rate**: a token bucket per (tenant, rate class) in the ledger, ``rate`` per second,
  bursts of ``burst``. A ``TenantLimiter`` takes tokens in *slices*: one ledger call
  takes up to ``slice_seconds`` worth of tokens (at least the requests waiting), hands
  them out locally, and drops what is left ``slice_seconds`` later. So a busy tenant
  costs the ledger about ``1 / slice_seconds`` calls per second and rate class, not one
  per request; and in any window of T seconds a tenant's rate class gets at most
  ``burst + rate * (T + slice_seconds)`` requests from all processes together (the slice
  is the time a taken token may wait before it is spent). With the defaults: Intune
  45 + 45 x 20.5 = 968 per 20 s (< 1000); conditional access slices hold one token,
  spent by the request that asked for it.
- **In flight**: at most ``max_in_flight`` requests of a tenant open at once, all
  processes together. Each ``TenantLimiter`` holds a *lease* of slots in the ledger
  (``lease_ttl_seconds``, renewed every ``renew_seconds`` while in use, released when
  idle), sized by what it could use; slots are shared max-min fairly between the live
  leases of the tenant (``inventory/graph_budget.py``). A lease of a process that died
  expires after its TTL; a process that could not renew in time stops starting requests.

The ledger's methods are blocking: a ledger with ``blocking = True`` is called on a
small thread pool of its own, so the event loop never waits on the database. A
``GraphBudget`` is the budget of one process: one ledger and one ``TenantLimiter`` per
tenant and event loop, shared by every client of that tenant (the partitions of a
batch that share a tenant share its limiter).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol, TypeVar

from tenantatlas_pipelines.inventory import graph_budget as budget
from tenantatlas_pipelines.inventory.graph_budget import BucketTake, Lease, RateLimit

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 4
# (requests, per seconds) for each PolicyType.rate_class; Intune's 1000/20 s with headroom.
# A bucket's burst is its requests per period (aiolimiter's form, kept for configuration).
DEFAULT_RATES: Mapping[str, tuple[float, float]] = {
    "intune": (45.0, 1.0),
    "conditional_access": (1.0, 1.0),
}
DEFAULT_SLICE_SECONDS = 0.5  # with a blocking (database) ledger; an in-memory one takes no slices
DEFAULT_LEASE_TTL_SECONDS = 15.0
DEFAULT_RENEW_SECONDS = 1.0
DEFAULT_POLL_SECONDS = 0.2  # how often a limiter short of slots asks again
LEDGER_THREADS = 4
_MIN_WAIT = 0.001

_T = TypeVar("_T")


class BudgetLedger(Protocol):
    """Where the budget of every tenant is kept; the same for every process that shares it."""

    @property
    def blocking(self) -> bool:
        """True when calls may block (a database): they then run off the event loop."""
        ...

    def take_tokens(self, tenant_id: str, rate_class: str, want: int, limit: RateLimit) -> BucketTake:
        """Take up to ``want`` tokens of the tenant's bucket for ``rate_class`` (refilled first)."""
        ...

    def lease_slots(
        self, tenant_id: str, holder: str, wanted: int, in_use: int, bound: int, ttl: float
    ) -> int:
        """Renew ``holder``'s lease of in-flight slots for ``ttl`` seconds; returns the slots granted.

        ``wanted == in_use == 0`` ends the lease. Expired leases of the tenant are free.
        """
        ...

    def release_slots(self, tenant_id: str, holder: str) -> None:
        """End ``holder``'s lease (its slots are free at once)."""
        ...


class InMemoryBudgetLedger:
    """The budget kept in this process (thread-safe): tests and single-process use."""

    blocking = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._leases: dict[str, dict[str, tuple[Lease, float]]] = {}

    def take_tokens(self, tenant_id: str, rate_class: str, want: int, limit: RateLimit) -> BucketTake:
        with self._lock:
            now = self._clock()
            tokens, refilled_at = self._buckets.get((tenant_id, rate_class), (limit.burst, now))
            take = budget.take_tokens(tokens, refilled_at, now, limit, want)
            self._buckets[tenant_id, rate_class] = (take.tokens, take.refilled_at)
            return take

    def lease_slots(
        self, tenant_id: str, holder: str, wanted: int, in_use: int, bound: int, ttl: float
    ) -> int:
        with self._lock:
            now = self._clock()
            leases = self._leases.setdefault(tenant_id, {})
            for other in [h for h, (_, expires) in leases.items() if expires <= now]:
                del leases[other]
            if wanted <= 0 and in_use <= 0:
                leases.pop(holder, None)
                return 0
            others = [lease for h, (lease, _) in leases.items() if h != holder]
            granted = budget.lease_grant(bound, holder, wanted, in_use, others)
            leases[holder] = (Lease(holder, granted, wanted), now + ttl)
            return granted

    def release_slots(self, tenant_id: str, holder: str) -> None:
        with self._lock:
            self._leases.get(tenant_id, {}).pop(holder, None)

    def leases(self, tenant_id: str) -> dict[str, int]:
        """The live slots per holder of a tenant (for tests)."""
        with self._lock:
            now = self._clock()
            return {
                h: lease.slots for h, (lease, exp) in self._leases.get(tenant_id, {}).items() if exp > now
            }


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _ledger_executor() -> ThreadPoolExecutor:
    """The threads that call blocking ledgers (not the loop's default pool: the sync's
    database writes run there, and a take must not queue behind a batch write)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=LEDGER_THREADS, thread_name_prefix="graph-budget")
        return _executor


class _Tokens:
    """The tokens of one rate class that this limiter took and has not handed out yet."""

    __slots__ = ("count", "expires", "limit", "slice_tokens", "task", "waiters")

    def __init__(self, limit: RateLimit, slice_seconds: float) -> None:
        self.limit = limit
        self.slice_tokens = max(1, math.floor(min(limit.burst, limit.rate * slice_seconds)))
        self.count = 0
        self.expires = 0.0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.task: asyncio.Task[None] | None = None


class TenantLimiter:
    """One tenant's requests in flight and request rate per rate class, kept in a ledger.

    Use one per tenant and event loop (``GraphBudget.limiter``); a limiter without a
    ledger keeps its own in-memory budget (the limit then holds for this limiter only).
    """

    def __init__(
        self,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rates: Mapping[str, tuple[float, float]] | None = None,
        *,
        tenant_id: str = "",
        ledger: BudgetLedger | None = None,
        slice_seconds: float | None = None,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        renew_seconds: float = DEFAULT_RENEW_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if not 0 < renew_seconds < lease_ttl_seconds:
            raise ValueError(
                f"renew_seconds ({renew_seconds}) must be positive and below lease_ttl_seconds "
                f"({lease_ttl_seconds}): a lease must be renewed before it expires"
            )
        self.max_in_flight = max_in_flight
        self.rates: dict[str, tuple[float, float]] = dict(DEFAULT_RATES if rates is None else rates)
        self.tenant_id = tenant_id.lower()
        self.ledger: BudgetLedger = ledger if ledger is not None else InMemoryBudgetLedger(clock)
        if slice_seconds is None:
            slice_seconds = DEFAULT_SLICE_SECONDS if self.ledger.blocking else 0.0
        if slice_seconds < 0:
            raise ValueError(f"slice_seconds must not be negative, got {slice_seconds}")
        self.slice_seconds = slice_seconds
        self.holder = uuid.uuid4().hex
        self._ttl = lease_ttl_seconds
        self._renew = renew_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._limits = {key: RateLimit.per_period(*rate) for key, rate in self.rates.items()}
        self._pools: dict[str, _Tokens] = {}
        # in-flight slots: leased capacity, slots in use, requests waiting for one
        self._capacity = 0
        self._in_use = 0
        self._lease_until = 0.0
        self._peak = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._keeper: asyncio.Task[None] | None = None
        self._lease_call: Future[Any] | None = None  # the latest lease call in the ledger's threads
        self._wake = asyncio.Event()

    def limit_of(self, rate_class: str) -> RateLimit:
        """The rate class's limit; an unknown class gets Intune's: never unlimited by accident."""
        limit = self._limits.get(rate_class) or self._limits.get("intune")
        return limit or RateLimit.per_period(*DEFAULT_RATES["intune"])

    @asynccontextmanager
    async def slot(self, rate_class: str = "intune") -> AsyncIterator[None]:
        """Hold one in-flight slot, after the rate class allows one more request."""
        await self._acquire_slot()
        try:
            await self._acquire_token(rate_class)
            yield
        finally:
            self._in_use -= 1
            self._grant_slots()

    # -- in-flight slots ---------------------------------------------------------------------

    async def _acquire_slot(self) -> None:
        if self._in_use < self._capacity and not self._slot_waiters and self._clock() < self._lease_until:
            self._in_use += 1
            if self._in_use > self._peak:
                self._peak = self._in_use
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(future)
        self._peak = max(self._peak, self._in_use + len(self._slot_waiters))
        self._ensure_keeper()
        try:
            await future  # the granter counted the slot as in use
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._in_use -= 1  # granted, then cancelled before it was used
                self._grant_slots()
            else:
                self._discard(self._slot_waiters, future)
            raise

    def _grant_slots(self) -> None:
        waiters = self._slot_waiters
        while waiters and self._in_use < self._capacity and self._clock() < self._lease_until:
            future = waiters.popleft()
            if not future.done():
                self._in_use += 1
                future.set_result(None)

    def _ensure_keeper(self) -> None:
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep())
        elif self._capacity < self.max_in_flight:
            self._wake.set()  # short of slots: ask the ledger now, not at the next renewal

    async def _keep(self) -> None:
        """Lease slots while this limiter has requests open or waiting; release when idle."""
        me = asyncio.current_task()
        last_call = -math.inf
        try:
            while True:
                demand = self._in_use + len(self._slot_waiters)
                wanted = min(self.max_in_flight, max(self._peak, demand))
                self._peak = demand
                asked = self._clock()
                last_call = asked
                try:
                    granted = await self._call(
                        self.ledger.lease_slots,
                        self.tenant_id,
                        self.holder,
                        wanted,
                        self._in_use,
                        self.max_in_flight,
                        self._ttl,
                        lease=True,
                    )
                except Exception as exc:  # noqa: BLE001 - the ledger failed: the waiting requests fail with it
                    self._capacity, self._lease_until = 0, 0.0
                    self._fail(self._slot_waiters, exc)
                    self._keeper = None
                    return
                self._capacity, self._lease_until = granted, asked + self._ttl
                self._grant_slots()
                if wanted == 0 and self._in_use == 0 and not self._slot_waiters:
                    self._keeper = None  # the lease ended (wanted 0); a new request starts another
                    return
                starved = bool(self._slot_waiters)
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll if starved else self._renew)
                pause = last_call + self._poll - self._clock()
                if pause > 0:
                    await asyncio.sleep(pause)
        except asyncio.CancelledError:
            # the event loop is closing (asyncio.run's end): free the slots now, not at the TTL
            self._capacity, self._lease_until = 0, 0.0
            renewal = self._lease_call
            if renewal is not None and not renewal.done():
                # a renewal already running in the ledger's thread (one not started yet was
                # cancelled with this task): the release must come after it, or the lease it
                # writes would hold the tenant's slots from every other run until its TTL
                with suppress(Exception):
                    renewal.result(timeout=self._ttl)
            try:
                self.ledger.release_slots(self.tenant_id, self.holder)
            except Exception:  # noqa: BLE001 - best effort: the lease expires anyway
                logger.warning("could not release the Graph in-flight lease; it expires in %.0f s", self._ttl)
            raise
        finally:
            if self._keeper is me:
                self._keeper = None

    # -- tokens ------------------------------------------------------------------------------

    async def _acquire_token(self, rate_class: str) -> None:
        pool = self._pools.get(rate_class)
        if pool is None:
            pool = self._pools[rate_class] = _Tokens(self.limit_of(rate_class), self.slice_seconds)
        if pool.count > 0 and not pool.waiters:
            if self._clock() < pool.expires:
                pool.count -= 1
                return
            pool.count = 0  # held too long: dropped, so no burst piles up beyond the slice
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pool.waiters.append(future)
        if pool.task is None:
            pool.task = asyncio.get_running_loop().create_task(self._refill(rate_class, pool))
        try:
            await future
        except asyncio.CancelledError:
            if not future.done():
                self._discard(pool.waiters, future)
            raise  # a token handed to a cancelled request is not given back: never over budget

    async def _refill(self, rate_class: str, pool: _Tokens) -> None:
        me = asyncio.current_task()
        try:
            while True:
                while pool.waiters and pool.waiters[0].done():
                    pool.waiters.popleft()
                if pool.count and self._clock() >= pool.expires:
                    pool.count = 0
                while pool.count and pool.waiters:
                    future = pool.waiters.popleft()
                    if not future.done():
                        pool.count -= 1
                        future.set_result(None)
                waiting = sum(1 for f in pool.waiters if not f.done())
                if not waiting:
                    pool.task = None
                    return
                want = max(pool.slice_tokens, waiting)
                try:
                    take = await self._call(
                        self.ledger.take_tokens, self.tenant_id, rate_class, want, pool.limit
                    )
                except Exception as exc:  # noqa: BLE001 - the waiting requests fail with it
                    self._fail(pool.waiters, exc)
                    pool.task = None
                    return
                pool.count += take.granted
                pool.expires = self._clock() + self.slice_seconds
                while pool.count and pool.waiters:  # the requests waiting now take theirs at once
                    future = pool.waiters.popleft()
                    if not future.done():
                        pool.count -= 1
                        future.set_result(None)
                if pool.waiters and take.granted < want:
                    await asyncio.sleep(max(take.retry_after, _MIN_WAIT))
        finally:
            if pool.task is me:
                pool.task = None

    # -- helpers -----------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., _T], *args: object, lease: bool = False) -> _T:
        """``fn(*args)``, in the ledger's threads if it blocks (``lease``: remember the call)."""
        if self.ledger.blocking:
            call = _ledger_executor().submit(fn, *args)
            if lease:
                self._lease_call = call
            return await asyncio.wrap_future(call)  # cancelling it cancels a call not started yet
        return fn(*args)

    @staticmethod
    def _discard(waiters: collections.deque[asyncio.Future[None]], future: asyncio.Future[None]) -> None:
        with suppress(ValueError):
            waiters.remove(future)

    @staticmethod
    def _fail(waiters: collections.deque[asyncio.Future[None]], exc: Exception) -> None:
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_exception(exc)


class GraphBudget:
    """The Graph budget of one process: a ledger and the limits, one ``TenantLimiter`` per
    tenant and event loop. Build one per process (and per ledger); every client of a
    tenant in that process takes its limiter here."""

    def __init__(
        self,
        ledger: BudgetLedger | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rates: Mapping[str, tuple[float, float]] | None = None,
        slice_seconds: float | None = None,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
        renew_seconds: float = DEFAULT_RENEW_SECONDS,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.ledger: BudgetLedger = ledger if ledger is not None else InMemoryBudgetLedger()
        self.max_in_flight = max_in_flight
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        self.slice_seconds = slice_seconds
        self.lease_ttl_seconds = lease_ttl_seconds
        self.renew_seconds = renew_seconds
        self.poll_seconds = poll_seconds
        self._new_limiter("")  # refuses bad settings now, not at the first request
        self._lock = threading.Lock()
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TenantLimiter]] = (
            weakref.WeakKeyDictionary()
        )

    def limiter(self, tenant_id: str) -> TenantLimiter:
        """The limiter of ``tenant_id`` (Entra tenant id) for the running event loop."""
        loop = asyncio.get_running_loop()
        key = tenant_id.lower()
        with self._lock:
            limiters = self._limiters.setdefault(loop, {})
            limiter = limiters.get(key)
            if limiter is None:
                limiter = limiters[key] = self._new_limiter(key)
            return limiter

    def _new_limiter(self, tenant_id: str) -> TenantLimiter:
        return TenantLimiter(
            self.max_in_flight,
            self.rates,
            tenant_id=tenant_id,
            ledger=self.ledger,
            slice_seconds=self.slice_seconds,
            lease_ttl_seconds=self.lease_ttl_seconds,
            renew_seconds=self.renew_seconds,
            poll_seconds=self.poll_seconds,
        )
