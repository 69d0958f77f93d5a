"""Client-credentials tokens: the ``Credential`` seam and a caching ``TokenProvider``.

The seam: a ``Credential`` only supplies its part of the token request form.
``ClientSecretCredential`` gives ``client_id`` and ``client_secret``; a future
``CertificateCredential`` gives ``client_id``, ``client_assertion_type`` and a
freshly signed ``client_assertion`` JWT (hence ``token_form`` is async). The
``TokenProvider`` adds ``scope`` and ``grant_type``, posts the form, caches
the token and registers every secret value it handles with redaction, so no
credential type needs to know about caching, errors or logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

import httpx

from tenantatlas_pipelines.graph.clouds import CloudEndpoints
from tenantatlas_pipelines.graph.errors import AuthError, GraphError, GraphTransient
from tenantatlas_pipelines.graph.retry import Clock, Retrier, RetryBudget
from tenantatlas_pipelines.inventory.errors import ConfigError, ErrorCode, ErrorRecord
from tenantatlas_pipelines.inventory.redaction import register_secret

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = 300.0
# form fields whose values are secrets, whatever the credential type
SECRET_FORM_FIELDS = frozenset({"client_secret", "client_assertion"})
_AADSTS_RE = re.compile(r"\bAADSTS\d{4,}\b")


@runtime_checkable
class Credential(Protocol):
    """What a tenant's app registration contributes to the client-credentials form."""

    async def token_form(self) -> dict[str, str]:
        """``client_id`` plus ``client_secret``, or ``client_assertion_type`` + ``client_assertion``."""
        ...


class ClientSecretCredential:
    """An app registration with a client secret; ``repr``/``str`` never show the secret."""

    __slots__ = ("_client_secret", "client_id")

    def __init__(self, client_id: str, client_secret: str) -> None:
        if not client_id or not client_id.strip():
            raise ConfigError("client_id is empty: set the app registration's client id")
        if not client_secret:
            raise ConfigError(f"the client secret of app {client_id!r} is empty")
        register_secret(client_secret)
        self.client_id = client_id.strip()
        self._client_secret = client_secret

    async def token_form(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self._client_secret}

    def __repr__(self) -> str:
        return f"ClientSecretCredential(client_id={self.client_id!r}, client_secret=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("credentials cannot be pickled; build them from the environment where used")


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float  # on the provider's clock
    refresh_at: float  # when the cache stops handing it out


class TokenProvider:
    """Caches one tenant's token until ``refresh_margin`` before expiry; refreshes single-flight.

    Token endpoint answers map to errors: 4xx (``invalid_client``, AADSTS
    codes) -> ``AuthError``; 429/5xx/timeouts after retries ->
    ``GraphThrottled``/``GraphTransient`` marked ``tenant_fatal``. The error
    keeps the AADSTS codes, ``error``, trace and correlation ids, never the
    form, the secret or the answer verbatim.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        credential: Credential,
        endpoints: CloudEndpoints,
        http: httpx.AsyncClient,
        retrier: Retrier,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Clock = time.monotonic,
    ) -> None:
        self.tenant_id = tenant_id
        self._credential = credential
        self._endpoints = endpoints
        self._http = http
        self._retrier = retrier
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: AccessToken | None = None
        self.request_count = 0  # token requests sent, retries included

    def __repr__(self) -> str:
        return f"TokenProvider(tenant_id={self.tenant_id!r}, cloud={self._endpoints.cloud!r})"

    def _fresh(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        return None

    async def token(self) -> str:
        """A valid access token; at most one token request is in flight at a time."""
        value = self._fresh()
        if value is not None:
            return value
        async with self._lock:
            value = self._fresh()  # another task may have refreshed while we waited
            if value is not None:
                return value
            self._token = await self._fetch()
            return self._token.value

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given: a 401 on a stale one)."""
        if token is None or (self._token is not None and self._token.value == token):
            self._token = None

    async def _fetch(self) -> AccessToken:
        form = await self._credential.token_form()
        for key, value in form.items():
            if key in SECRET_FORM_FIELDS:
                register_secret(value)
        form = {**form, "scope": self._endpoints.scope, "grant_type": "client_credentials"}
        url = self._endpoints.token_url(self.tenant_id)
        path = httpx.URL(url).path

        async def send() -> httpx.Response:
            self.request_count += 1
            headers = {"Accept": "application/json", "client-request-id": str(uuid.uuid4())}
            return await self._http.post(url, data=form, headers=headers)

        started = self._clock()
        try:
            result = await self._retrier.run(
                send,
                budget=RetryBudget(self._retrier.policy, self._clock),
                path=path,
                policy_type=None,
                method="POST",
            )
        except GraphError as exc:
            exc.tenant_fatal = True  # no token, no request: the tenant cannot go on
            raise
        response = result.response
        if response.status_code >= 500:
            raise GraphTransient.build(
                f"the token endpoint answered HTTP {response.status_code}",
                path=path,
                status=response.status_code,
                tenant_fatal=True,
            )
        if response.status_code != 200:
            raise _auth_error(response, path)
        return self._parse(response, path, started)

    def _parse(self, response: httpx.Response, path: str, started: float) -> AccessToken:
        data = _json_object(response)
        access_token = data.get("access_token") if data else None
        if not isinstance(access_token, str) or not access_token:
            raise AuthError.build(
                "the token endpoint answered 200 without an access_token", path=path, status=200
            )
        register_secret(access_token)
        expires_in = _seconds(data.get("expires_in") if data else None) or 3600.0
        margin = min(self._refresh_margin, expires_in / 2)
        logger.debug("token for tenant %s issued, valid for %.0fs", self.tenant_id, expires_in)
        return AccessToken(
            value=access_token, expires_at=started + expires_in, refresh_at=started + expires_in - margin
        )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str):
        try:
            return _seconds(float(value))
        except ValueError:
            return None
    return None


def _auth_error(response: httpx.Response, path: str) -> AuthError:
    """A token endpoint refusal, keeping only its codes and ids."""
    data = _json_object(response) or {}
    error = data.get("error") if isinstance(data.get("error"), str) else None
    codes: list[str] = []
    raw_codes = data.get("error_codes")
    if isinstance(raw_codes, list):
        codes = [f"AADSTS{c}" for c in raw_codes if isinstance(c, int) and not isinstance(c, bool)]
    description = data.get("error_description")
    if isinstance(description, str):
        codes += _AADSTS_RE.findall(description)
    codes = list(dict.fromkeys(codes))
    trace_id = data.get("trace_id") if isinstance(data.get("trace_id"), str) else None
    correlation_id = data.get("correlation_id") if isinstance(data.get("correlation_id"), str) else None
    message = f"the token endpoint refused the credentials: {error or f'HTTP {response.status_code}'}"
    if codes:
        message += f" ({', '.join(codes)})"
    if trace_id:
        message += f"; trace_id={trace_id}"
    if correlation_id:
        message += f"; correlation_id={correlation_id}"
    record = ErrorRecord(
        code=ErrorCode.AUTH_FAILED,
        message=message,
        status=response.status_code,
        graph_code=error,
        request_id=trace_id,
        client_request_id=correlation_id,
        date=response.headers.get("date"),
        path=path,
    )
    return AuthError(record)
