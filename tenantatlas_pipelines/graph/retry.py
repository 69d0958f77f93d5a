"""Retries for throttling and transient failures: Retry-After first, else full-jitter backoff.

A small loop rather than tenacity: the decision to stop depends on the wait
just computed (a ``Retry-After`` longer than ``max_wait``, or one that would
overrun the per-policy-type budget, ends the retries at once instead of
waiting less than Graph asked), the budget is shared by every page of a
policy type, and tests drive ``sleep`` and ``clock`` with a fake clock.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from tenantatlas_pipelines.graph.errors import GraphError, GraphTransient, error_from_response

logger = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({429, 503, 504})
# Failures worth another attempt; anything else from httpx (an unsupported scheme,
# a local protocol bug) fails at once as graph_transient.
RETRY_EXCEPTIONS: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)

Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying one request (attempts, one wait) and one policy type (total time)."""

    max_attempts: int = 6  # attempts per request, the first included
    max_wait: float = 30.0  # seconds; a longer Retry-After ends the retries
    max_total: float = 120.0  # seconds of retrying per policy type (all its pages)
    base: float = 0.5  # first backoff ceiling, doubled per attempt
    cap: float = 30.0  # backoff ceiling
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_wait, self.max_total, self.base, self.cap) < 0:
            raise ValueError("waits and budgets cannot be negative")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter after failed attempt ``attempt`` (1-based): uniform(0, min(cap, base * 2**(n-1)))."""
        ceiling = min(self.cap, self.base * 2.0 ** max(attempt - 1, 0))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta seconds (``"2.128"``) or an HTTP date.

    ``None`` when absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _server_now(response: httpx.Response, fallback: Callable[[], datetime]) -> datetime:
    """The server's own ``Date`` (an HTTP-date Retry-After is relative to it), else our clock."""
    value = response.headers.get("date")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            pass
        else:
            return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return fallback()


class RetryBudget:
    """The total retry time one policy type may spend (``RetryPolicy.max_total``)."""

    def __init__(self, policy: RetryPolicy, clock: Clock) -> None:
        self.deadline = clock() + policy.max_total


@dataclass(slots=True)
class Retried:
    response: httpx.Response
    retries: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Retrier:
    """Runs one request until it is answered, retrying 429/503/504 and transport failures."""

    policy: RetryPolicy
    sleep: Sleep
    clock: Clock
    rng: random.Random
    wall_clock: Callable[[], datetime] = _utcnow

    async def run(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        *,
        budget: RetryBudget,
        path: str,
        policy_type: str | None,
        method: str = "GET",
    ) -> Retried:
        """The first answer that is not retryable; raises ``GraphError`` once retries are spent."""
        retries = 0
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            failure: str | None = None
            retryable = True
            try:
                response = await send()
            except RETRY_EXCEPTIONS as exc:
                failure = _describe_exception(exc)
            except httpx.HTTPError as exc:
                failure = _describe_exception(exc)
                retryable = False
            if response is not None and response.status_code not in self.policy.retry_statuses:
                return Retried(response, retries)

            wait, stop = self._next_wait(response, attempt, budget) if retryable else (0.0, "not retryable")
            if stop is not None:
                raise _give_up(response, failure, stop, path, policy_type)
            retries += 1
            logger.info(
                "retrying %s %s in %.2fs after %s (attempt %d of %d)",
                method,
                path,
                wait,
                f"HTTP {response.status_code}" if response is not None else failure,
                attempt,
                self.policy.max_attempts,
            )
            await self.sleep(wait)

    def _next_wait(
        self, response: httpx.Response | None, attempt: int, budget: RetryBudget
    ) -> tuple[float, str | None]:
        """The wait before the next attempt, or a reason to stop now."""
        policy = self.policy
        if attempt >= policy.max_attempts:
            return 0.0, f"gave up after {attempt} attempts"
        asked = None
        if response is not None:
            now = _server_now(response, self.wall_clock)
            asked = parse_retry_after(response.headers.get("retry-after"), now)
        if asked is not None and asked > policy.max_wait:
            return 0.0, f"Retry-After {asked:g}s is longer than the longest wait ({policy.max_wait:g}s)"
        wait = asked if asked is not None else policy.backoff(attempt, self.rng)
        if self.clock() + wait > budget.deadline:
            return 0.0, f"retry budget of {policy.max_total:g}s spent after {attempt} attempts"
        return wait, None


def _describe_exception(exc: httpx.HTTPError) -> str:
    # only the class name: an httpx exception's text can carry the URL and its query
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection error"
    return f"{kind} ({type(exc).__name__})"


def _give_up(
    response: httpx.Response | None,
    failure: str | None,
    stop: str,
    path: str,
    policy_type: str | None,
) -> GraphError:
    if response is not None:
        return error_from_response(response, policy_type, note=stop)
    return GraphTransient.build(f"{failure}; {stop}", policy_type=policy_type, path=path)
