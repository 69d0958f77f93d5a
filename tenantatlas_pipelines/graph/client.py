"""The Graph client: lists one policy type page by page, read-only.

One ``GraphClient`` per tenant per run. It sends GET requests only (it has
no method that writes), follows ``@odata.nextLink`` verbatim, sends the
bearer token only to the configured Graph origin, retries throttling and
transient failures within a per-policy-type budget, refreshes the token once
on a 401, and yields each page as it arrives, so memory stays flat however
large the tenant. It neither de-duplicates nor normalises items: the sync
layer does.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from tenantatlas_pipelines.graph.auth import DEFAULT_REFRESH_MARGIN, Credential, TokenProvider
from tenantatlas_pipelines.graph.clouds import CloudEndpoints, origin_of
from tenantatlas_pipelines.graph.errors import GraphInvalidResponse, error_from_response
from tenantatlas_pipelines.graph.limits import TenantLimiter
from tenantatlas_pipelines.graph.retry import Clock, Retrier, RetryBudget, RetryPolicy, Sleep
from tenantatlas_pipelines.inventory.catalog import PolicyType, belongs_to

logger = logging.getLogger(__name__)

ACCEPT = "application/json;odata.metadata=minimal"
USER_AGENT = "TenantAtlas-pipelines/0.1 (inventory; read-only)"
CONNECT_TIMEOUT = 10.0
# framing headers that do not describe the body once it is read and decoded
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
DEFAULT_MAX_PAGES = 50_000


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context (system CAs via httpx's defaults) for every client of the process.

    Building one loads the CA bundle: about 35 ms, which a batch of 1,000 tenants paid once per
    tenant client; a context is safe to share between clients, threads and event loops.
    """
    return httpx.create_ssl_context()


@dataclass(slots=True)
class GraphPage:
    """One page of a policy type's listing, items as Graph sent them (minus excluded odata types)."""

    policy_type: str
    items: list[Any]  # objects, normally; anything else is passed on for normalize_item to refuse
    page_number: int  # 1-based
    retries: int  # retries this page needed (throttling, transient failures, one 401 refresh)
    excluded: int = 0  # items dropped because another policy type owns their @odata.type


@dataclass(slots=True)
class _Fetched:
    items: list[Any]
    excluded: int
    next_link: str | None
    retries: int


class GraphClient:
    """Read-only Microsoft Graph client of one tenant (use as ``async with``)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        credential: Credential,
        endpoints: CloudEndpoints,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        limiter: TenantLimiter | None = None,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.tenant_id = tenant_id
        self.endpoints = endpoints
        self._credential = credential
        self._transport = transport
        self._retry = retry or RetryPolicy()
        self._limiter = limiter or TenantLimiter()
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        self._clock = clock
        self._retrier = Retrier(self._retry, sleep, clock, rng or random.Random())
        self._refresh_margin = refresh_margin
        self._max_pages = max_pages
        self._graph_origin = endpoints.graph_origin
        self._http: httpx.AsyncClient | None = None
        self._tokens: TokenProvider | None = None
        self.request_count = 0  # Graph GET requests sent, retries included (token requests not)
        self.retry_count = 0  # retries that were needed, whatever their outcome

    def __repr__(self) -> str:
        return f"GraphClient(tenant_id={self.tenant_id!r}, graph={self.endpoints.graph!r})"

    async def __aenter__(self) -> Self:
        in_flight = self._limiter.max_in_flight
        self._http = httpx.AsyncClient(
            transport=self._transport,
            verify=shared_ssl_context(),
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=in_flight * 2 + 2,  # + the login endpoint
                max_keepalive_connections=in_flight + 1,
                keepalive_expiry=30.0,
            ),
            follow_redirects=False,  # a redirect could carry the token elsewhere
            headers={"User-Agent": USER_AGENT},
        )
        self._tokens = TokenProvider(
            tenant_id=self.tenant_id,
            credential=self._credential,
            endpoints=self.endpoints,
            http=self._http,
            retrier=self._retrier,
            refresh_margin=self._refresh_margin,
            clock=self._clock,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._http = None

    @property
    def tokens(self) -> TokenProvider:
        if self._tokens is None:
            raise RuntimeError("GraphClient is not open: use `async with GraphClient(...)`")
        return self._tokens

    def _open(self) -> tuple[httpx.AsyncClient, TokenProvider]:
        if self._http is None or self._tokens is None:
            raise RuntimeError("GraphClient is not open: use `async with GraphClient(...)`")
        return self._http, self._tokens

    def first_url(self, policy_type: PolicyType) -> str:
        """The first page's URL: path, version, ``$select`` and ``$filter`` from the catalog."""
        url = httpx.URL(self.endpoints.graph_url(policy_type.version, policy_type.path))
        params = policy_type.query_params()
        return str(url.copy_merge_params(params)) if params else str(url)

    async def list_pages(self, policy_type: PolicyType) -> AsyncIterator[GraphPage]:
        """Yield the pages of ``policy_type`` in order; raise a ``GraphError`` when listing fails.

        A page whose ``@odata.nextLink`` is refused (foreign, repeated, not a
        URL) is not yielded: the error is raised in its place.
        """
        self._open()
        budget = RetryBudget(self._retry, self._clock)
        link = self.first_url(policy_type)
        url: httpx.URL | None = httpx.URL(link)
        seen: set[str] = {link}
        page_number = 0
        while url is not None:
            page_number += 1
            fetched = await self._fetch(url, policy_type, budget)
            url = self._check_next_link(fetched.next_link, seen, policy_type, page_number)
            if fetched.next_link is not None:
                seen.add(fetched.next_link)
            logger.debug(
                "%s page %d: %d items (%d excluded)",
                policy_type.key,
                page_number,
                len(fetched.items),
                fetched.excluded,
            )
            page = GraphPage(policy_type.key, fetched.items, page_number, fetched.retries, fetched.excluded)
            del fetched
            yield page
            del page

    def _check_next_link(
        self, link: str | None, seen: set[str], policy_type: PolicyType, page_number: int
    ) -> httpx.URL | None:
        """The next page's URL, parsed once; a ``GraphInvalidResponse`` if it must not be followed."""
        if link is None:
            return None
        problem: str | None = None
        url: httpx.URL | None = None
        try:
            url = httpx.URL(link)
        except (httpx.InvalidURL, TypeError):
            problem = "@odata.nextLink is not a URL"
        if url is not None:
            if not url.is_absolute_url:
                problem = "@odata.nextLink is not an absolute URL"
            elif origin_of(url) != self._graph_origin:
                problem = f"@odata.nextLink points outside the Graph endpoint (host {url.host or '?'})"
            elif link in seen:
                problem = "@odata.nextLink repeats an earlier link (a paging loop)"
            elif page_number >= self._max_pages:
                problem = f"more than {self._max_pages} pages: stopped"
        if problem is not None or url is None:
            raise GraphInvalidResponse.build(
                f"{problem} after page {page_number}",
                policy_type=policy_type.key,
                path=httpx.URL(self.first_url(policy_type)).path,
            )
        return url

    async def _fetch(self, url: httpx.URL, policy_type: PolicyType, budget: RetryBudget) -> _Fetched:
        response, retries = await self._get(url, policy_type, budget)
        path = response.request.url.path
        body = _parse_json(response.content)
        problem: str | None = None
        if body is None:
            problem = "the answer is not valid JSON"
        elif not isinstance(body, dict) or not isinstance(body.get("value"), list):
            problem = "the answer is not a Graph page (no 'value' list)"
        else:
            next_link = body.get("@odata.nextLink")
            if next_link is not None and not isinstance(next_link, str):
                problem = "@odata.nextLink is not a string"
        if problem is not None:
            raise GraphInvalidResponse.build(
                problem, policy_type=policy_type.key, path=path, status=response.status_code
            )
        value: list[Any] = body["value"]
        items = [item for item in value if not isinstance(item, dict) or belongs_to(policy_type, item)]
        return _Fetched(items, len(value) - len(items), body.get("@odata.nextLink"), retries)

    async def _get(
        self, url: httpx.URL, policy_type: PolicyType, budget: RetryBudget
    ) -> tuple[httpx.Response, int]:
        """GET ``url`` with retries; on a 401, refresh the token once and try again."""
        http, tokens = self._open()
        path = url.path
        authorised = origin_of(url) == self._graph_origin
        sent_tokens: list[str] = []

        async def send() -> httpx.Response:
            headers = {"Accept": ACCEPT, "client-request-id": str(uuid.uuid4())}
            if authorised:  # the token goes to the configured Graph origin only
                token = await tokens.token()
                sent_tokens.append(token)
                headers["Authorization"] = f"Bearer {token}"
            async with self._limiter.slot(policy_type.rate_class):
                self.request_count += 1
                return await _read_detached(http, http.build_request("GET", url, headers=headers))

        retries = 0
        refreshed = False
        while True:
            result = await self._retrier.run(send, budget=budget, path=path, policy_type=policy_type.key)
            retries += result.retries
            self.retry_count += result.retries
            response = result.response
            if response.status_code == 401 and authorised and not refreshed:
                refreshed = True
                retries += 1
                self.retry_count += 1
                tokens.invalidate(sent_tokens[-1] if sent_tokens else None)
                logger.info("GET %s answered 401: refreshing the token once", path)
                continue
            if response.is_success:
                return response, retries
            raise error_from_response(response, policy_type.key)


def _parse_json(content: bytes) -> Any:
    """The page's JSON, or None if it is not JSON.

    orjson parses a page in about half the time of the standard library; what it refuses
    (an unpaired surrogate escape, NaN, ...) the standard library decides, as before.
    """
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


async def _read_detached(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send ``request``, read the whole answer, and return it as a Response of its own.

    httpx ties a response and its client stream in a reference cycle, so a page
    read the usual way is freed only by the cyclic garbage collector, and
    memory climbs page after page until it runs. The detached copy (decoded
    body, same status and headers) is freed as soon as the page is dropped.
    """
    response = await http.send(request, stream=True)
    try:
        chunks = [chunk async for chunk in response.aiter_bytes()]
    finally:
        await response.aclose()
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _FRAMING_HEADERS]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=request)
