"""Every simulator fault maps to the right error code and scope (in-process transport, fake clock)."""

from __future__ import annotations

import httpx
import pytest
from graphtest_support import (
    CLIENT_SECRET,
    TENANT_ID,
    FakeClock,
    RecordingTransport,
    expect_error,
    list_all,
    make_client,
    make_scenario,
    run,
)

from tenantatlas_pipelines.graph import (
    AuthError,
    GraphBadRequest,
    GraphForbidden,
    GraphInvalidResponse,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    NotLicensedError,
    RetryPolicy,
)
from tenantatlas_pipelines.graph.retry import RetryBudget
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.simulator.app import FOREIGN_BASE_URL, GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind

COUNTS = {"deviceCompliancePolicy": 30, "deviceCategory": 30, "conditionalAccessPolicy": 12}
DCP = CATALOG["deviceCompliancePolicy"]


def _sim(*faults: Fault) -> GraphSimulator:
    return GraphSimulator(make_scenario(COUNTS, page_size=10, faults=faults))


def _fault(kind: FaultKind, policy_type: str | None = "deviceCompliancePolicy", **kw: object) -> Fault:
    return Fault.model_validate({"kind": kind, "policy_type": policy_type, **kw})


def test_forbidden_fails_the_type_and_keeps_the_scopes() -> None:
    sim = _sim(_fault(FaultKind.FORBIDDEN))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, GraphForbidden) and not error.tenant_fatal
    assert error.record.code is ErrorCode.GRAPH_FORBIDDEN
    assert error.record.scopes == [
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementConfiguration.ReadWrite.All",
    ]
    assert error.record.status == 403 and error.record.graph_code == "Forbidden"
    assert error.record.path == "/v1.0/deviceManagement/deviceCompliancePolicies"
    assert error.record.request_id and error.record.client_request_id
    # the other types of the tenant still list
    items = run(lambda: list_all(make_client(sim.transport()), CATALOG["deviceCategory"]))
    assert len(items) == 30


def test_unlicensed_tenant_is_one_tenant_level_error() -> None:
    sim = _sim(_fault(FaultKind.UNLICENSED, policy_type=None))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, NotLicensedError)
    assert error.tenant_fatal and error.record.code is ErrorCode.INTUNE_NOT_LICENSED
    assert sim.stats.by_status(400) == 1  # not retried


@pytest.mark.parametrize(
    ("kind", "cls", "code", "status"),
    [
        (FaultKind.NOT_FOUND, GraphNotFound, ErrorCode.GRAPH_NOT_FOUND, 404),
        (FaultKind.BAD_REQUEST, GraphBadRequest, ErrorCode.GRAPH_BAD_REQUEST, 400),
    ],
)
def test_not_found_and_bad_request_fail_only_the_type(
    kind: FaultKind, cls: type[Exception], code: ErrorCode, status: int
) -> None:
    sim = _sim(_fault(kind))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, cls)
    assert error.record.code is code and error.record.status == status and not error.tenant_fatal
    assert sim.stats.by_status(status) == 1


def test_a_401_refreshes_the_token_once_then_is_fatal() -> None:
    sim = _sim(_fault(FaultKind.UNAUTHORIZED))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, GraphUnauthorized)
    assert error.tenant_fatal and error.record.code is ErrorCode.GRAPH_UNAUTHORIZED
    assert len(sim.issued_tokens) == 2  # the first token, and exactly one refresh
    assert sim.stats.by_status(401) == 2


def test_a_single_401_is_healed_by_one_refresh() -> None:
    sim = _sim(_fault(FaultKind.UNAUTHORIZED, count=1))
    items = run(lambda: list_all(make_client(sim.transport()), DCP))
    assert {i["id"] for i in items} == sim.expected_item_ids(TENANT_ID, "deviceCompliancePolicy")
    assert len(sim.issued_tokens) == 2


def test_token_expiry_mid_run_is_refreshed_once_and_the_listing_completes() -> None:
    sim = _sim(_fault(FaultKind.EXPIRE_TOKEN_AFTER, policy_type=None, count=2))

    async def body() -> tuple[set[str], int]:
        client = make_client(sim.transport())
        async with client:
            ids = {i["id"] async for p in client.list_pages(DCP) for i in p.items}
            return ids, client.retry_count

    ids, retries = run(body)
    assert ids == sim.expected_item_ids(TENANT_ID, "deviceCompliancePolicy")
    assert len(sim.issued_tokens) == 2 and retries == 1
    assert sim.stats.by_status(401) == 1


def test_wrong_secret_is_auth_failed_without_the_secret_in_its_text() -> None:
    sim = _sim(_fault(FaultKind.WRONG_SECRET, policy_type=None))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, AuthError) and error.tenant_fatal
    assert error.record.code is ErrorCode.AUTH_FAILED
    assert "AADSTS7000215" in str(error) and "invalid_client" in str(error)
    for text in (str(error), repr(error), str(error.record.to_dict())):
        assert CLIENT_SECRET not in text
    assert sim.stats.by_status(401) == 1 and not sim.issued_tokens


def test_fractional_retry_after_is_honoured() -> None:
    sim = _sim(_fault(FaultKind.THROTTLE, count=2, retry_after=2.128))
    clock = FakeClock()
    items = run(lambda: list_all(make_client(sim.transport(), clock=clock), DCP))
    assert len(items) == 30
    assert clock.sleeps == pytest.approx([2.128, 2.128])


def test_http_date_retry_after_is_honoured() -> None:
    sim = _sim(_fault(FaultKind.THROTTLE, count=1, retry_after="http-date"))
    clock = FakeClock()
    run(lambda: list_all(make_client(sim.transport(), clock=clock), DCP))
    # the simulator asks for 1-2 s from now (whole seconds); no Date header in-process: our clock
    assert len(clock.sleeps) == 1 and 0.0 < clock.sleeps[0] <= 2.0


def test_throttling_without_retry_after_backs_off_with_bounded_jitter() -> None:
    # conditional access never sends Retry-After
    sim = _sim(_fault(FaultKind.THROTTLE, policy_type="conditionalAccessPolicy", count=4))
    clock = FakeClock()
    policy = RetryPolicy(base=0.5, cap=30.0)
    client = make_client(sim.transport(), clock=clock, retry=policy)
    items = run(lambda: list_all(client, CATALOG["conditionalAccessPolicy"]))
    assert len(items) == 12
    assert len(clock.sleeps) == 4
    assert all(0 <= w <= c for w, c in zip(clock.sleeps, [0.5, 1.0, 2.0, 4.0], strict=True))


def test_endless_throttling_stops_at_the_attempt_cap_as_throttled() -> None:
    sim = _sim(_fault(FaultKind.THROTTLE, retry_after=1.0))
    clock = FakeClock()
    error = run(lambda: expect_error(make_client(sim.transport(), clock=clock), DCP))
    assert isinstance(error, GraphThrottled) and error.record.code is ErrorCode.GRAPH_THROTTLED
    assert sim.stats.by_status(429) == RetryPolicy().max_attempts == 6
    assert clock.sleeps == [1.0] * 5


def test_the_total_budget_caps_the_time_a_type_spends_retrying() -> None:
    # throttled for 20 s again and again: the 120 s budget runs out before the 50 attempts
    sim = _sim(_fault(FaultKind.THROTTLE, retry_after=20.0))
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=50, max_total=120.0)
    error = run(lambda: expect_error(make_client(sim.transport(), clock=clock, retry=policy), DCP))
    assert isinstance(error, GraphThrottled)
    assert sum(clock.sleeps) <= 120.0 and len(clock.sleeps) == 6


@pytest.mark.parametrize("kind", [FaultKind.UNAVAILABLE, FaultKind.GATEWAY_TIMEOUT])
def test_unavailable_and_gateway_timeout_are_retried_then_transient(kind: FaultKind) -> None:
    sim = _sim(_fault(kind, retry_after=0.5))
    clock = FakeClock()
    error = run(lambda: expect_error(make_client(sim.transport(), clock=clock), DCP))
    assert isinstance(error, GraphTransient) and error.record.code is ErrorCode.GRAPH_TRANSIENT
    assert len(clock.sleeps) == 5 and not error.tenant_fatal

    healed = _sim(_fault(kind, count=2, retry_after=0.5))
    assert len(run(lambda: list_all(make_client(healed.transport()), DCP))) == 30


@pytest.mark.parametrize(
    ("kind", "page", "words"),
    [
        (FaultKind.MALFORMED_JSON, 1, "not valid JSON"),
        (FaultKind.NOT_A_PAGE, 0, "not a Graph page"),
        (FaultKind.NEXTLINK_LOOP, 1, "repeats"),
        (FaultKind.NEXTLINK_LOOP, 0, "repeats"),
    ],
)
def test_broken_pages_are_invalid_responses(kind: FaultKind, page: int, words: str) -> None:
    sim = _sim(_fault(kind, page=page))
    error = run(lambda: expect_error(make_client(sim.transport()), DCP))
    assert isinstance(error, GraphInvalidResponse)
    assert error.record.code is ErrorCode.GRAPH_INVALID_RESPONSE and words in str(error)
    assert error.record.path == "/v1.0/deviceManagement/deviceCompliancePolicies"
    assert sim.stats.total < 10  # stopped, did not loop


def test_a_foreign_next_link_is_refused_and_gets_no_token() -> None:
    sim = _sim(_fault(FaultKind.FOREIGN_NEXTLINK, page=0))
    transport = RecordingTransport(sim.transport())
    error = run(lambda: expect_error(make_client(transport), DCP))
    assert isinstance(error, GraphInvalidResponse) and "outside the Graph endpoint" in str(error)
    foreign = httpx.URL(FOREIGN_BASE_URL).host
    assert all(url.host != foreign for url, _ in transport.requests)
    assert [h.get("authorization") for url, h in transport.requests if "/oauth2/" not in url.path] == [
        f"Bearer {next(iter(sim.issued_tokens))}"
    ]


def test_the_token_goes_only_to_the_configured_graph_origin() -> None:
    """Defence in depth: the per-request origin check, independent of nextLink validation."""
    graph_headers: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/oauth2/" in request.url.path:
            return httpx.Response(200, json={"access_token": "tok-abcdefgh", "expires_in": 3600})
        graph_headers.append(request.headers)
        return httpx.Response(200, json={"value": []})

    async def body() -> None:
        client = make_client(httpx.MockTransport(handler), base_url="http://graph.local:8080")
        async with client:
            budget = RetryBudget(RetryPolicy(), FakeClock())
            for url in (
                "http://graph.local:8081/v1.0/x",  # other port
                "https://graph.local:8080/v1.0/x",  # other scheme
                "http://other.local:8080/v1.0/x",  # other host
                "http://GRAPH.local:8080/v1.0/x",  # the same origin
            ):
                await client._get(httpx.URL(url), DCP, budget)

    run(body)
    assert [h.get("authorization") for h in graph_headers] == [None, None, None, "Bearer tok-abcdefgh"]


@pytest.mark.parametrize(
    ("next_link", "words"),
    [
        ("/v1.0/deviceManagement/deviceCompliancePolicies?$skiptoken=x", "not an absolute URL"),
        (42, "not a string"),
        ("http://graph.simulator.invalid:8080/v1.0/x", "outside the Graph endpoint"),
    ],
)
def test_odd_next_links_are_invalid_responses(next_link: object, words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/oauth2/" in request.url.path:
            return httpx.Response(200, json={"access_token": "tok-abcdefgh", "expires_in": 3600})
        return httpx.Response(200, json={"value": [{"id": "a"}], "@odata.nextLink": next_link})

    error = run(lambda: expect_error(make_client(httpx.MockTransport(handler)), DCP))
    assert isinstance(error, GraphInvalidResponse) and words in str(error)
