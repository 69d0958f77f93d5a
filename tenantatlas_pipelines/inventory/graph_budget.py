"""The arithmetic of the Graph budget per tenant: token buckets and fair in-flight leases.

Pure functions, shared by the ledgers that keep the budget (the in-memory one of
``graph/limits.py`` and the database one of ``db/graph_budget.py``), so both hand out
exactly the same grants.

- A token bucket per (tenant, rate class): ``rate`` tokens per second, at most
  ``burst`` kept. Taking a token is the right to start one request. In any window of
  T seconds the bucket gives out at most ``burst + rate * T`` tokens.
- In-flight slots per tenant: at most ``bound`` requests open at once, leased to holders
  (one per process and tenant). A holder asks for what it could use (``wanted``); the
  slots are shared max-min fairly among the live holders, holders with fewer slots
  served first (so none starves when holders outnumber slots). A holder keeps the slots
  its open requests use (``in_use``) until they end, so the sum of all grants never
  exceeds ``bound``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# a token count within this of a whole number is that number (refill arithmetic in floats)
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` requests per second, bursts of at most ``burst`` (both positive, burst >= 1)."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"a Graph rate limit needs a positive rate, got {self.rate!r} per second")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"a Graph rate limit needs a burst of at least 1 request, got {self.burst!r}")

    @classmethod
    def per_period(cls, max_rate: float, period: float) -> RateLimit:
        """``max_rate`` requests per ``period`` seconds, bursts of ``max_rate`` (aiolimiter's form)."""
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"a Graph rate limit needs a positive period, got {period!r} seconds")
        return cls(rate=max_rate / period, burst=max_rate)


@dataclass(frozen=True, slots=True)
class BucketTake:
    """The outcome of one take: ``granted`` tokens; ``tokens`` and ``refilled_at`` to store;
    ``retry_after`` seconds until the next whole token when fewer than wanted were granted."""

    granted: int
    tokens: float
    refilled_at: float
    retry_after: float


def take_tokens(tokens: float, refilled_at: float, now: float, limit: RateLimit, want: int) -> BucketTake:
    """Refill a bucket by the time elapsed since ``refilled_at`` (seconds), then take up to ``want``.

    A clock that went backwards (another host's, slightly behind) refills nothing and never
    moves ``refilled_at`` back, so no interval is counted twice.
    """
    elapsed = max(0.0, now - refilled_at)
    level = min(limit.burst, max(0.0, tokens) + elapsed * limit.rate)
    granted = max(0, min(want, math.floor(level + _EPSILON)))
    level = max(0.0, level - granted)
    retry_after = 0.0 if granted >= want else max(0.0, (1.0 - level) / limit.rate)
    return BucketTake(granted, level, max(refilled_at, now), retry_after)


@dataclass(frozen=True, slots=True)
class Lease:
    """A live lease of in-flight slots: its holder, the slots granted, the slots it could use."""

    holder: str
    slots: int
    wanted: int


def fair_shares(bound: int, leases: Sequence[Lease]) -> dict[str, int]:
    """Max-min fair shares of ``bound`` slots by ``wanted``; holders with fewer slots first."""
    order = sorted(leases, key=lambda lease: (lease.slots, lease.holder))
    shares = {lease.holder: 0 for lease in order}
    remaining = max(0, bound)
    active = [lease for lease in order if lease.wanted > 0]
    while remaining > 0 and active:
        each = max(1, remaining // len(active))
        still = []
        for lease in active:
            give = min(each, lease.wanted - shares[lease.holder], remaining)
            shares[lease.holder] += give
            remaining -= give
            if shares[lease.holder] < lease.wanted:
                still.append(lease)
            if remaining == 0:
                break
        active = still
    return shares


def lease_grant(bound: int, holder: str, wanted: int, in_use: int, others: Sequence[Lease]) -> int:
    """The slots ``holder`` may hold now, given the other live leases of the tenant.

    Never more than what the others leave free (so the grants sum to at most ``bound``);
    at least what its open requests use, when that much is free; otherwise its fair share.
    """
    free = max(0, bound - sum(lease.slots for lease in others))
    wanted = max(0, min(wanted, bound))
    # my current slots do not matter for the order of the others; count me as holding in_use
    shares = fair_shares(bound, [*others, Lease(holder, in_use, wanted)])
    return max(0, min(free, max(shares[holder], in_use)))
