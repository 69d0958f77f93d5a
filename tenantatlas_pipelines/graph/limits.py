"""Per-tenant request limits: requests in flight and requests per second, by rate class.

Graph throttles per app and tenant: Intune about 1000 requests per 20 s,
conditional access 1 request per second. A ``GraphClient`` (one per tenant per
run) asks its ``TenantLimiter`` for a slot around every request it sends;
waits between retries happen outside the slot. Create limiters inside the
event loop that uses them (aiolimiter binds to one loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

DEFAULT_MAX_IN_FLIGHT = 4
# (requests, per seconds) for each PolicyType.rate_class; Intune's 1000/20 s with headroom
DEFAULT_RATES: Mapping[str, tuple[float, float]] = {
    "intune": (45.0, 1.0),
    "conditional_access": (1.0, 1.0),
}


class TenantLimiter:
    """A semaphore for requests in flight and one leaky bucket per rate class."""

    def __init__(
        self,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rates: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.rates: dict[str, tuple[float, float]] = dict(DEFAULT_RATES if rates is None else rates)
        self._semaphore = asyncio.Semaphore(max_in_flight)
        self._buckets: dict[str, AsyncLimiter] = {}

    def _bucket(self, rate_class: str) -> AsyncLimiter:
        bucket = self._buckets.get(rate_class)
        if bucket is None:
            # an unknown class gets Intune's rate: never unlimited by accident
            rate = self.rates.get(rate_class) or self.rates.get("intune") or DEFAULT_RATES["intune"]
            max_rate, period = rate
            bucket = self._buckets[rate_class] = AsyncLimiter(max_rate, period)
        return bucket

    @asynccontextmanager
    async def slot(self, rate_class: str = "intune") -> AsyncIterator[None]:
        """Hold one in-flight slot, after the rate class allows one more request."""
        async with self._semaphore:
            await self._bucket(rate_class).acquire()
            yield
