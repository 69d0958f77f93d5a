"""TokenProvider and ClientSecretCredential against a scripted token endpoint."""

from __future__ import annotations

import asyncio
import pickle
import random
import urllib.parse
from collections.abc import Callable

import httpx
import pytest
from graphtest_support import FakeClock, run

from tenantatlas_pipelines.graph.auth import ClientSecretCredential, Credential, TokenProvider
from tenantatlas_pipelines.graph.clouds import endpoints_for
from tenantatlas_pipelines.graph.errors import AuthError, GraphTransient
from tenantatlas_pipelines.graph.retry import Retrier, RetryPolicy
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.inventory.redaction import REDACTED, redact

TENANT = "0f6a0000-0000-0000-0000-00000000aaaa"
SECRET = "canary-Secret~value.42"
ENDPOINTS = endpoints_for("global")


class TokenEndpoint:
    """A scripted token endpoint: issues tok-1, tok-2, ... or the answers it is given."""

    def __init__(self, expires_in: int = 3600, answers: list[httpx.Response] | None = None) -> None:
        self.expires_in = expires_in
        self.answers = list(answers or [])
        self.forms: list[dict[str, str]] = []
        self.issued: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)  # let concurrent callers pile up
        self.forms.append(dict(urllib.parse.parse_qsl(request.content.decode())))
        if self.answers:
            return self.answers.pop(0)
        token = f"tok-{len(self.issued) + 1}-abcdefgh"
        self.issued.append(token)
        return httpx.Response(
            200, json={"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}
        )


def _provider(
    endpoint: Callable[[httpx.Request], object], clock: FakeClock, **kwargs: float
) -> tuple[TokenProvider, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))  # type: ignore[arg-type]
    retrier = Retrier(RetryPolicy(max_attempts=3), clock.sleep, clock, random.Random(0))
    provider = TokenProvider(
        tenant_id=TENANT,
        credential=ClientSecretCredential("client-1", SECRET),
        endpoints=ENDPOINTS,
        http=http,
        retrier=retrier,
        clock=clock,
        **kwargs,
    )
    return provider, http


def test_the_token_request_is_a_client_credentials_form() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()

    async def body() -> None:
        provider, http = _provider(endpoint, clock)
        async with http:
            await provider.token()

    run(body)
    assert endpoint.forms == [
        {
            "client_id": "client-1",
            "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default",
            "grant_type": "client_credentials",
        }
    ]


def test_token_is_cached_until_the_refresh_margin_before_expiry() -> None:
    endpoint, clock = TokenEndpoint(expires_in=3600), FakeClock()

    async def body() -> list[str]:
        provider, http = _provider(endpoint, clock, refresh_margin=300.0)
        async with http:
            seen = [await provider.token(), await provider.token()]
            clock.now += 3299
            seen.append(await provider.token())
            clock.now += 2  # now 3301 s after issue: inside the 300 s margin
            seen.append(await provider.token())
        return seen

    assert run(body) == ["tok-1-abcdefgh"] * 3 + ["tok-2-abcdefgh"]
    assert len(endpoint.forms) == 2


def test_short_lived_tokens_are_still_cached_for_half_their_life() -> None:
    endpoint, clock = TokenEndpoint(expires_in=120), FakeClock()

    async def body() -> None:
        provider, http = _provider(endpoint, clock, refresh_margin=300.0)
        async with http:
            await provider.token()
            clock.now += 59
            await provider.token()

    run(body)
    assert len(endpoint.forms) == 1


def test_concurrent_callers_share_one_token_request() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()

    async def body() -> set[str]:
        provider, http = _provider(endpoint, clock)
        async with http:
            return set(await asyncio.gather(*(provider.token() for _ in range(20))))

    assert run(body) == {"tok-1-abcdefgh"}
    assert len(endpoint.forms) == 1


def test_invalidate_drops_only_the_token_that_failed() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()

    async def body() -> list[str]:
        provider, http = _provider(endpoint, clock)
        async with http:
            first = await provider.token()
            provider.invalidate(first)
            second = await provider.token()
            provider.invalidate(first)  # a late 401 on the old token: keep the new one
            third = await provider.token()
        return [first, second, third]

    assert run(body) == ["tok-1-abcdefgh", "tok-2-abcdefgh", "tok-2-abcdefgh"]


def test_issued_tokens_and_the_client_secret_are_registered_for_redaction() -> None:
    endpoint, clock = TokenEndpoint(), FakeClock()

    async def body() -> str:
        provider, http = _provider(endpoint, clock)
        async with http:
            return await provider.token()

    token = run(body)
    assert redact(f"x {token} y {SECRET}") == f"x {REDACTED} y {REDACTED}"


def test_refused_credentials_keep_aadsts_codes_and_ids_but_not_the_body() -> None:
    description = (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is "
        f"the client secret value. Secret was {SECRET}. Trace ID: t-1 Correlation ID: c-1"
    )
    refusal = httpx.Response(
        401,
        json={
            "error": "invalid_client",
            "error_description": description,
            "error_codes": [7000215],
            "trace_id": "trace-0001",
            "correlation_id": "corr-0001",
        },
    )
    endpoint, clock = TokenEndpoint(answers=[refusal]), FakeClock()

    async def body() -> None:
        provider, http = _provider(endpoint, clock)
        async with http:
            await provider.token()

    with pytest.raises(AuthError) as info:
        run(body)
    error = info.value
    assert error.tenant_fatal and error.record.code is ErrorCode.AUTH_FAILED
    assert "AADSTS7000215" in str(error) and "invalid_client" in str(error)
    assert (error.record.request_id, error.record.client_request_id) == ("trace-0001", "corr-0001")
    assert error.record.path == f"/{TENANT}/oauth2/v2.0/token"
    text = f"{error} {error!r} {error.record.to_dict()}"
    assert SECRET not in text and "Invalid client secret provided" not in text
    assert error.__cause__ is None and error.__context__ is None
    assert len(endpoint.forms) == 1  # a refusal is not retried


def test_token_endpoint_outage_is_retried_then_transient_and_tenant_fatal() -> None:
    endpoint, clock = TokenEndpoint(answers=[httpx.Response(503)] * 3), FakeClock()

    async def body() -> None:
        provider, http = _provider(endpoint, clock)
        async with http:
            await provider.token()

    with pytest.raises(GraphTransient) as info:
        run(body)
    assert info.value.tenant_fatal is True
    assert len(endpoint.forms) == 3 and len(clock.sleeps) == 2


def test_a_200_without_access_token_is_auth_failed() -> None:
    endpoint, clock = TokenEndpoint(answers=[httpx.Response(200, json={"token_type": "Bearer"})]), FakeClock()

    async def body() -> None:
        provider, http = _provider(endpoint, clock)
        async with http:
            await provider.token()

    with pytest.raises(AuthError, match="without an access_token"):
        run(body)


def test_client_secret_credential_never_shows_its_secret() -> None:
    credential = ClientSecretCredential("client-1", SECRET)
    assert isinstance(credential, Credential)
    for text in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert SECRET not in text and "client-1" in text
    with pytest.raises(TypeError):
        pickle.dumps(credential)
    assert not hasattr(credential, "__dict__")
