"""The Graph budget's arithmetic with a fake clock: token buckets, fair in-flight leases, expiry."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tenantatlas_pipelines.graph.limits import GraphBudget, InMemoryBudgetLedger, TenantLimiter
from tenantatlas_pipelines.inventory.graph_budget import (
    Lease,
    RateLimit,
    fair_shares,
    lease_grant,
    take_tokens,
)

TENANT = "0f6a1c2e-4b5d-4e8f-9a01-23456789abcd"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_by_elapsed_time_up_to_its_burst() -> None:
    limit = RateLimit(rate=2.0, burst=3.0)
    take = take_tokens(tokens=3.0, refilled_at=0.0, now=0.0, limit=limit, want=5)
    assert (take.granted, take.tokens) == (3, 0.0)
    assert take.retry_after == pytest.approx(0.5)  # the next whole token at 2 per second
    take = take_tokens(take.tokens, take.refilled_at, now=0.25, limit=limit, want=5)
    assert (take.granted, take.tokens) == (0, 0.5)
    take = take_tokens(take.tokens, take.refilled_at, now=0.5, limit=limit, want=5)
    assert take.granted == 1
    take = take_tokens(take.tokens, take.refilled_at, now=100.0, limit=limit, want=5)
    assert take.granted == 3  # an idle bucket keeps no more than its burst


def test_a_clock_that_went_back_refills_nothing_and_never_moves_the_bucket_back() -> None:
    limit = RateLimit(rate=10.0, burst=10.0)
    take = take_tokens(tokens=0.0, refilled_at=50.0, now=49.0, limit=limit, want=1)
    assert (take.granted, take.refilled_at) == (0, 50.0)
    take = take_tokens(take.tokens, take.refilled_at, now=50.5, limit=limit, want=10)
    assert take.granted == 5  # half a second since 50.0, not 1.5 s since 49.0


def test_the_ledger_gives_at_most_burst_plus_rate_times_the_window_whoever_asks() -> None:
    clock = FakeClock()
    ledger = InMemoryBudgetLedger(clock)
    limit = RateLimit.per_period(45.0, 1.0)  # Intune's default: 45 per second, bursts of 45
    granted = 0
    for step in range(2000):  # 20 s in 10 ms steps, three takers asking for slices of 22
        clock.now = 1000.0 + step * 0.01
        for _ in range(3):
            granted += ledger.take_tokens(TENANT, "intune", 22, limit).granted
    assert granted <= 45 + 45 * 20
    assert granted >= 45 * 20  # and the budget is used, not wasted
    assert ledger.take_tokens(TENANT, "conditional_access", 5, RateLimit(1.0, 1.0)).granted == 1
    assert ledger.take_tokens("another-tenant", "intune", 5, limit).granted == 5  # budgets per tenant


def test_in_flight_slots_are_shared_fairly_and_never_oversubscribed() -> None:
    assert fair_shares(4, [Lease("a", 0, 4), Lease("b", 0, 4)]) == {"a": 2, "b": 2}
    assert fair_shares(4, [Lease("a", 0, 1), Lease("b", 0, 4)]) == {"a": 1, "b": 3}
    # more holders than slots: those holding fewest are served first, so none starves
    assert fair_shares(2, [Lease("a", 1, 1), Lease("b", 1, 1), Lease("c", 0, 1)])["c"] == 1
    # a holds all 4 with 4 open: b waits until a's open requests end, a shrinks to its share
    assert lease_grant(4, "b", 4, 0, [Lease("a", 4, 4)]) == 0
    assert lease_grant(4, "a", 4, 4, [Lease("b", 0, 4)]) == 4
    assert lease_grant(4, "a", 4, 1, [Lease("b", 0, 4)]) == 2
    assert lease_grant(4, "b", 4, 0, [Lease("a", 2, 4)]) == 2


def test_an_expired_lease_frees_its_slots_and_wanting_nothing_ends_a_lease() -> None:
    clock = FakeClock()
    ledger = InMemoryBudgetLedger(clock)
    assert ledger.lease_slots(TENANT, "dead", 4, 0, 4, ttl=10.0) == 4
    assert ledger.lease_slots(TENANT, "alive", 4, 0, 4, ttl=10.0) == 0
    clock.now += 10.0  # the dead process never renewed
    assert ledger.lease_slots(TENANT, "alive", 4, 0, 4, ttl=10.0) == 4
    assert ledger.leases(TENANT) == {"alive": 4}
    assert ledger.lease_slots(TENANT, "alive", 0, 0, 4, ttl=10.0) == 0
    assert ledger.leases(TENANT) == {}


def test_two_limiters_on_one_ledger_hold_the_tenants_bound_together() -> None:
    ledger = InMemoryBudgetLedger()
    limiters = [TenantLimiter(2, {"intune": (1e6, 1.0)}, tenant_id=TENANT, ledger=ledger) for _ in range(2)]
    open_now = peak = 0

    async def request(limiter: TenantLimiter) -> None:
        nonlocal open_now, peak
        async with limiter.slot("intune"):
            open_now += 1
            peak = max(peak, open_now)
            await asyncio.sleep(0.002)
            open_now -= 1

    async def body() -> None:
        await asyncio.gather(*(request(limiters[i % 2]) for i in range(40)))

    asyncio.run(body())
    assert peak == 2


def test_a_budget_gives_every_client_of_a_tenant_in_one_loop_the_same_limiter() -> None:
    budget = GraphBudget(max_in_flight=3)

    async def body() -> tuple[TenantLimiter, TenantLimiter, TenantLimiter]:
        return budget.limiter(TENANT), budget.limiter(TENANT.upper()), budget.limiter("other")

    a, b, other = asyncio.run(body())
    assert a is b and a is not other and a.max_in_flight == 3
    assert asyncio.run(body())[0] is not a  # another event loop: another limiter, same ledger


def test_bad_budget_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="renew_seconds"):
        GraphBudget(renew_seconds=20.0, lease_ttl_seconds=15.0)
    with pytest.raises(ValueError, match="positive rate"):
        GraphBudget(rates={"intune": (0.0, 1.0)})


class _RenewalHeldLedger(InMemoryBudgetLedger):
    """A blocking ledger whose lease renewals wait in its thread until ``proceed`` is set."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.renewing = threading.Event()
        self.proceed = threading.Event()
        self.renewed = threading.Event()
        self.calls = 0

    def lease_slots(
        self, tenant_id: str, holder: str, wanted: int, in_use: int, bound: int, ttl: float
    ) -> int:
        self.calls += 1
        if self.calls == 1:  # the first lease: at once
            return super().lease_slots(tenant_id, holder, wanted, in_use, bound, ttl)
        self.renewing.set()
        self.proceed.wait(10)
        try:
            return super().lease_slots(tenant_id, holder, wanted, in_use, bound, ttl)
        finally:
            self.renewed.set()


def test_a_renewal_running_when_the_loop_closes_ends_before_the_release_so_no_lease_is_left() -> None:
    """Seen under load in the two-process budget test: a lease left behind held the tenant's
    slots from every other run until its TTL (the release ran before a renewal's write)."""
    ledger = _RenewalHeldLedger()
    limiter = TenantLimiter(
        2, {"intune": (1e6, 1.0)}, tenant_id=TENANT, ledger=ledger, lease_ttl_seconds=10.0, renew_seconds=0.05
    )

    async def body() -> None:
        async with limiter.slot("intune"):
            while not ledger.renewing.is_set():  # the keeper renews while the request is open
                await asyncio.sleep(0.01)
        # the request is done and the renewal still waits in the ledger's thread: asyncio.run
        # now cancels the keeper; the renewal goes on a moment later
        threading.Timer(0.2, ledger.proceed.set).start()

    asyncio.run(body())
    assert ledger.renewed.wait(10)
    assert ledger.leases(TENANT) == {}
