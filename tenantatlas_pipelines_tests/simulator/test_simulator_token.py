"""The token endpoint and bearer tokens, in-process and over loopback HTTP."""

from __future__ import annotations

import pytest
from simulator_testkit import (
    MODES,
    SECRET_A,
    TENANT_A,
    TENANT_B,
    base_url,
    connect,
    run,
    simulator,
    tenant,
    with_faults,
)

from tenantatlas_pipelines.simulator import FaultKind

ENTRA_FIELDS = {"error", "error_description", "error_codes", "trace_id", "correlation_id", "timestamp"}


@pytest.mark.parametrize("mode", MODES)
def test_token_endpoint_issues_unique_opaque_bearer_tokens(mode: str) -> None:
    sim = simulator(tenant())

    async def scenario(base: str | None) -> None:
        async with connect(sim, base) as ep:
            response = await ep.token_response()
            assert response.status_code == 200
            body = response.json()
            assert (
                body["token_type"] == "Bearer"
                and body["expires_in"] == 3599
                and body["ext_expires_in"] == 3599
            )
            assert body["access_token"].startswith("simtok-")
            assert "no-store" in response.headers["cache-control"]
            second = await ep.token()
            assert second != body["access_token"]
            assert sim.issued_tokens == {body["access_token"], second}

    with base_url(sim, mode) as base:
        run(scenario(base))


@pytest.mark.parametrize("mode", MODES)
def test_wrong_secret_is_refused_like_entra_without_echoing_it(mode: str) -> None:
    sim = simulator(tenant())
    submitted = "guessed-Secret~value_123"

    async def scenario(base: str | None) -> None:
        async with connect(sim, base) as ep:
            response = await ep.token_response(overrides={"client_secret": submitted})
            assert response.status_code == 401
            body = response.json()
            assert set(body) >= ENTRA_FIELDS
            assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
            assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
            for text in (response.text, str(response.headers)):
                assert submitted not in text and SECRET_A not in text
            assert not sim.issued_tokens

    with base_url(sim, mode) as base:
        run(scenario(base))


@pytest.mark.parametrize(
    ("form", "path_tenant", "status", "error", "code"),
    [
        ({}, "cccccccc-3333-4333-8333-cccccccccccc", 400, "invalid_request", 90002),
        ({"client_id": "someone-else"}, None, 400, "unauthorized_client", 700016),
        ({"client_secret": None}, None, 401, "invalid_client", 7000216),
        (
            {"client_assertion": "eyJhbGciOi.eyJzdWIiOi.c2ln", "client_secret": None},
            None,
            401,
            "invalid_client",
            700027,
        ),
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type", 70003),
        ({"grant_type": None}, None, 400, "invalid_request", 900144),
        (
            {"scope": "https://graph.microsoft.com/DeviceManagementApps.Read.All"},
            None,
            400,
            "invalid_scope",
            1002012,
        ),
    ],
)
def test_token_request_errors_carry_entra_codes(
    form: dict[str, str | None], path_tenant: str | None, status: int, error: str, code: int
) -> None:
    sim = simulator(tenant())

    async def scenario() -> None:
        async with connect(sim) as ep:
            response = await ep.token_response(path_tenant=path_tenant, overrides=form)
            assert response.status_code == status
            body = response.json()
            assert set(body) >= ENTRA_FIELDS
            assert (body["error"], body["error_codes"]) == (error, [code])
            assert body["error_description"].startswith(f"AADSTS{code}: ")
            assert SECRET_A not in response.text

    run(scenario())


def test_token_endpoint_only_accepts_post() -> None:
    sim = simulator(tenant())

    async def scenario() -> None:
        async with connect(sim) as ep:
            response = await ep.client.get(f"{ep.base}/{TENANT_A}/oauth2/v2.0/token")
            assert response.status_code == 405

    run(scenario())


def test_wrong_secret_fault_refuses_even_the_right_secret() -> None:
    sim = with_faults({"kind": FaultKind.WRONG_SECRET})

    async def scenario() -> None:
        async with connect(sim) as ep:
            for _ in range(2):
                response = await ep.token_response()
                assert response.status_code == 401 and response.json()["error_codes"] == [7000215]
                assert SECRET_A not in response.text

    run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_the_token_names_the_tenant_whose_items_are_listed(mode: str) -> None:
    a = tenant(item_counts={"deviceCategory": 3})
    b = tenant(TENANT_B, item_counts={"deviceCategory": 5})
    sim = simulator(a, b)

    async def scenario(base: str | None) -> None:
        async with connect(sim, base) as ep:
            listed_a = await ep.list_type(await ep.token(a), "deviceCategory")
            listed_b = await ep.list_type(await ep.token(b), "deviceCategory")
            assert set(listed_a.ids) == sim.expected_item_ids(TENANT_A, "deviceCategory")
            assert set(listed_b.ids) == sim.expected_item_ids(TENANT_B, "deviceCategory")
            assert set(listed_a.ids).isdisjoint(listed_b.ids)

    with base_url(sim, mode) as base:
        run(scenario(base))


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer simtok-forged", "Access token validation failure"),
        ("Basic dXNlcjpwYXNz", "Access token is empty."),
    ],
)
def test_graph_refuses_missing_and_unknown_tokens(authorization: str | None, message: str) -> None:
    sim = simulator(tenant(item_counts={"deviceCategory": 1}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            headers = {"Authorization": authorization} if authorization else {}
            response = await ep.client.get(
                f"{ep.base}/v1.0/deviceManagement/deviceCategories", headers=headers
            )
            assert response.status_code == 401
            error = response.json()["error"]
            assert error["code"] == "InvalidAuthenticationToken" and error["message"].startswith(message)
            assert response.headers["www-authenticate"].startswith("Bearer")

    run(scenario())
