"""Retry-After parsing, full-jitter backoff and the retry loop's budgets (fake clock, no sleeping)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from graphtest_support import FakeClock, run

from tenantatlas_pipelines.graph.errors import GraphBadRequest, GraphThrottled, GraphTransient
from tenantatlas_pipelines.graph.retry import Retrier, RetryBudget, RetryPolicy, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_retry_after_fractional_seconds_is_parsed_exactly() -> None:
    assert parse_retry_after("2.128", NOW) == pytest.approx(2.128)
    assert parse_retry_after(" 7 ", NOW) == 7.0


def test_retry_after_http_date_is_relative_to_now() -> None:
    when = format_datetime(NOW + timedelta(seconds=9), usegmt=True)
    assert parse_retry_after(when, NOW) == 9.0


def test_retry_after_in_the_past_or_negative_means_no_wait() -> None:
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=30), usegmt=True), NOW) == 0.0
    assert parse_retry_after("-3", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_retry_after_absent_or_unreadable_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_backoff_is_full_jitter_bounded_by_the_doubling_ceiling_and_cap() -> None:
    policy = RetryPolicy(base=0.5, cap=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [policy.backoff(attempt, rng) for _ in range(300)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jitter spans the range, not a constant
        assert min(waits) < ceiling * 0.2


def _retrier(policy: RetryPolicy, clock: FakeClock, seed: int = 1) -> Retrier:
    return Retrier(policy, clock.sleep, clock, random.Random(seed), wall_clock=lambda: NOW)


def _scripted(answers: Sequence[httpx.Response | Exception]) -> tuple[httpx.AsyncClient, list[int]]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        answer = answers[min(len(calls) - 1, len(answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), calls


async def _run(
    retrier: Retrier, client: httpx.AsyncClient, clock: FakeClock, budget: RetryBudget | None = None
) -> tuple[int, int]:
    async with client:
        result = await retrier.run(
            lambda: client.get("https://graph.example/v1.0/things?$top=5"),
            budget=budget or RetryBudget(retrier.policy, clock),
            path="/v1.0/things",
            policy_type="deviceCategory",
        )
    return result.response.status_code, result.retries


def test_retry_after_waits_are_honoured_then_the_answer_is_returned() -> None:
    clock = FakeClock()
    client, calls = _scripted(
        [
            httpx.Response(429, headers={"Retry-After": "2.128"}),
            httpx.Response(503, headers={"Retry-After": "1"}),
            httpx.Response(200, json={"value": []}),
        ]
    )
    status, retries = run(lambda: _run(_retrier(RetryPolicy(), clock), client, clock))
    assert (status, retries, len(calls)) == (200, 2, 3)
    assert clock.sleeps == pytest.approx([2.128, 1.0])


def test_http_date_retry_after_uses_the_servers_date_header() -> None:
    clock = FakeClock()
    server_now = NOW + timedelta(hours=1)  # server clock differs from ours: its Date header wins
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=4), usegmt=True),
    }
    client, _ = _scripted([httpx.Response(429, headers=headers), httpx.Response(200, json={"value": []})])
    run(lambda: _run(_retrier(RetryPolicy(), clock), client, clock))
    assert clock.sleeps == [4.0]


def test_without_retry_after_the_backoff_waits_are_jittered_and_bounded() -> None:
    clock = FakeClock()
    client, _ = _scripted([httpx.Response(504)] * 5 + [httpx.Response(200, json={"value": []})])
    policy = RetryPolicy(max_attempts=6, base=0.5, cap=3.0)
    status, retries = run(lambda: _run(_retrier(policy, clock, seed=3), client, clock))
    assert (status, retries) == (200, 5)
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert all(0 <= w <= c for w, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 5


def test_attempts_are_capped_then_throttled_is_raised() -> None:
    clock = FakeClock()
    client, calls = _scripted([httpx.Response(429, headers={"Retry-After": "1"})])
    with pytest.raises(GraphThrottled) as info:
        run(lambda: _run(_retrier(RetryPolicy(max_attempts=3), clock), client, clock))
    assert len(calls) == 3
    assert clock.sleeps == [1.0, 1.0]
    assert info.value.record.status == 429
    assert info.value.record.path == "/v1.0/things"
    assert "3 attempts" in info.value.record.message


def test_a_retry_after_longer_than_max_wait_stops_instead_of_waiting_less() -> None:
    clock = FakeClock()
    client, calls = _scripted([httpx.Response(429, headers={"Retry-After": "45"})])
    with pytest.raises(GraphThrottled) as info:
        run(lambda: _run(_retrier(RetryPolicy(max_wait=30.0), clock), client, clock))
    assert len(calls) == 1 and clock.sleeps == []
    assert "longer than the longest wait" in info.value.record.message


def test_total_budget_caps_the_time_spent_retrying() -> None:
    clock = FakeClock()
    client, calls = _scripted([httpx.Response(503, headers={"Retry-After": "20"})])
    policy = RetryPolicy(max_attempts=100, max_wait=30.0, max_total=70.0)
    with pytest.raises(GraphTransient) as info:
        run(lambda: _run(_retrier(policy, clock), client, clock))
    assert clock.sleeps == [20.0, 20.0, 20.0]  # a fourth wait would end past 70 s
    assert len(calls) == 4
    assert "budget" in info.value.record.message


def test_the_budget_is_shared_across_requests_of_one_policy_type() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=10, max_total=10.0)
    budget = RetryBudget(policy, clock)
    retrier = _retrier(policy, clock)
    first, _ = _scripted([httpx.Response(429, headers={"Retry-After": "6"}), httpx.Response(200)])
    run(lambda: _run(retrier, first, clock, budget))
    second, _ = _scripted([httpx.Response(429, headers={"Retry-After": "6"})])
    with pytest.raises(GraphThrottled):
        run(lambda: _run(retrier, second, clock, budget))
    assert clock.sleeps == [6.0]


def test_transport_errors_and_timeouts_are_retried_then_transient() -> None:
    clock = FakeClock()
    client, calls = _scripted(
        [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json={"value": []})]
    )
    assert run(lambda: _run(_retrier(RetryPolicy(), clock), client, clock)) == (200, 2)
    clock = FakeClock()
    client, calls = _scripted([httpx.ReadTimeout("slow")])
    with pytest.raises(GraphTransient) as info:
        run(lambda: _run(_retrier(RetryPolicy(max_attempts=4), clock), client, clock))
    assert len(calls) == 4
    assert "ReadTimeout" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_non_retryable_statuses_are_returned_at_once() -> None:
    clock = FakeClock()
    client, calls = _scripted([httpx.Response(400, json={"error": {"code": "BadRequest", "message": "x"}})])
    assert run(lambda: _run(_retrier(RetryPolicy(), clock), client, clock)) == (400, 0)
    assert len(calls) == 1 and clock.sleeps == []


def test_unsupported_protocol_is_not_retried() -> None:
    clock = FakeClock()
    client, calls = _scripted([httpx.UnsupportedProtocol("ftp")])
    with pytest.raises(GraphTransient):
        run(lambda: _run(_retrier(RetryPolicy(), clock), client, clock))
    assert len(calls) == 1


def test_policy_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_total=-1)
    assert isinstance(GraphBadRequest.build("x"), GraphBadRequest)
