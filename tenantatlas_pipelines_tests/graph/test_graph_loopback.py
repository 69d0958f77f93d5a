"""Over real HTTP (uvicorn on loopback): paging, auth, Retry-After dates, timeouts, refused connections."""

from __future__ import annotations

import pytest
from graphtest_support import (
    CLIENT_SECRET,
    TENANT_ID,
    FakeClock,
    closed_port_url,
    collect_pages,
    expect_error,
    list_all,
    make_client,
    make_scenario,
    run,
)

from tenantatlas_pipelines.graph import AuthError, GraphTransient, RetryPolicy
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.simulator.server import serve_loopback

COUNTS = {"deviceCategory": 45, "settingsCatalogPolicy": 60, "deviceConfiguration": 30}


def test_paging_over_loopback_lists_everything() -> None:
    sim = GraphSimulator(make_scenario(COUNTS, page_size=10))
    with serve_loopback(sim) as base:

        async def body() -> dict[str, list[str]]:
            client = make_client(None, base_url=base)
            async with client:
                return {
                    key: [i["id"] for p in await collect_pages(client, CATALOG[key]) for i in p.items]
                    for key in COUNTS
                }

        got = run(body)
    for key, ids in got.items():
        assert len(ids) == len(set(ids)) and set(ids) == sim.expected_item_ids(TENANT_ID, key)
    assert sim.stats.by_path("/beta/deviceManagement/configurationPolicies") == 3  # 25 per page


def test_wrong_secret_over_loopback_is_auth_failed() -> None:
    sim = GraphSimulator(make_scenario(COUNTS))
    with serve_loopback(sim) as base:
        error = run(
            lambda: expect_error(
                make_client(None, base_url=base, secret="not-the-secret"), CATALOG["deviceCategory"]
            )
        )
    assert isinstance(error, AuthError) and error.record.code is ErrorCode.AUTH_FAILED
    assert "AADSTS7000215" in str(error) and "not-the-secret" not in str(error)
    assert CLIENT_SECRET not in str(error)


def test_http_date_retry_after_is_measured_against_the_servers_date() -> None:
    fault = Fault(kind=FaultKind.THROTTLE, policy_type="deviceCategory", count=1, retry_after="http-date")
    sim = GraphSimulator(make_scenario(COUNTS, faults=[fault]))
    clock = FakeClock()
    with serve_loopback(sim) as base:
        items = run(
            lambda: list_all(make_client(None, base_url=base, clock=clock), CATALOG["deviceCategory"])
        )
    assert len(items) == 45
    # uvicorn's Date header and the simulator's Retry-After date are whole seconds: 1 or 2 s apart
    assert clock.sleeps in ([1.0], [2.0])


def test_slow_answers_past_the_timeout_are_retried_then_transient() -> None:
    fault = Fault(kind=FaultKind.SLOW, policy_type="deviceCategory", delay_seconds=1.0)
    sim = GraphSimulator(make_scenario(COUNTS, faults=[fault]))
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=3)
    with serve_loopback(sim) as base:
        client = make_client(None, base_url=base, clock=clock, retry=policy, timeout=0.2)
        error = run(lambda: expect_error(client, CATALOG["deviceCategory"]))
    assert isinstance(error, GraphTransient) and error.record.code is ErrorCode.GRAPH_TRANSIENT
    assert "ReadTimeout" in str(error) and not error.tenant_fatal
    assert client.request_count == 3 and len(clock.sleeps) == 2


def test_a_slow_answer_once_is_retried_and_the_listing_completes() -> None:
    fault = Fault(kind=FaultKind.SLOW, policy_type="deviceCategory", delay_seconds=1.0, count=1)
    sim = GraphSimulator(make_scenario(COUNTS, faults=[fault]))
    with serve_loopback(sim) as base:
        items = run(
            lambda: list_all(make_client(None, base_url=base, timeout=0.3), CATALOG["deviceCategory"])
        )
    assert {i["id"] for i in items} == sim.expected_item_ids(TENANT_ID, "deviceCategory")


def test_refused_connections_to_graph_are_retried_then_transient() -> None:
    sim = GraphSimulator(make_scenario(COUNTS))
    clock = FakeClock()
    with serve_loopback(sim) as base:
        client = make_client(None, base_url=closed_port_url(), login_url=base, clock=clock)
        error = run(lambda: expect_error(client, CATALOG["deviceCategory"]))
    assert isinstance(error, GraphTransient) and "ConnectError" in str(error)
    assert client.request_count == RetryPolicy().max_attempts and len(clock.sleeps) == 5
    assert len(sim.issued_tokens) == 1  # the token came from the (reachable) login endpoint


def test_an_unreachable_login_endpoint_is_transient_and_fatal_for_the_tenant() -> None:
    clock = FakeClock()
    url = closed_port_url()
    client = make_client(None, base_url=url, clock=clock, retry=RetryPolicy(max_attempts=2))
    error = run(lambda: expect_error(client, CATALOG["deviceCategory"]))
    assert isinstance(error, GraphTransient) and error.tenant_fatal
    assert client.request_count == 0 and client.tokens.request_count == 2


@pytest.mark.parametrize("key", ["deviceConfiguration", "settingsCatalogPolicy"])
def test_exclusions_and_small_pages_hold_over_loopback(key: str) -> None:
    sim = GraphSimulator(make_scenario(COUNTS, page_size=7))
    with serve_loopback(sim) as base:
        items = run(lambda: list_all(make_client(None, base_url=base), CATALOG[key]))
    assert {i["id"] for i in items} == sim.expected_item_ids(TENANT_ID, key)


def test_every_client_of_the_process_shares_one_tls_context() -> None:
    """A batch opens a client per tenant: each must not load the CA bundle again (35 ms each)."""

    async def contexts() -> list[object]:
        found = []
        for _ in range(3):
            async with make_client(None, base_url="https://graph.example.invalid") as client:
                pool = client._http._transport._pool  # type: ignore[union-attr]
                found.append(pool._ssl_context)
        return found

    first, *others = run(contexts)
    assert first is not None and all(ctx is first for ctx in others)
