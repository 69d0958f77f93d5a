"""The simulator itself: an ASGI app serving Entra's token endpoint and Graph's Intune lists."""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator.faults import PAGE_FAULTS, STATUS_FAULTS, FaultBook
from tenantatlas_pipelines.simulator.paging import (
    Cursor,
    Listing,
    ListingError,
    Segment,
    collect,
    decode_skiptoken,
    encode_skiptoken,
    page_start,
    resolve_listing,
)
from tenantatlas_pipelines.simulator.population import Population
from tenantatlas_pipelines.simulator.render import render_item
from tenantatlas_pipelines.simulator.responses import (
    GRAPH_JSON,
    entra_error,
    forbidden_text,
    graph_error,
    intune_message,
    retry_after_headers,
)
from tenantatlas_pipelines.simulator.scenario import (
    Fault,
    FaultKind,
    Scenario,
    TenantScenario,
    population_for,
)
from tenantatlas_pipelines.simulator.shapes import BUILTIN_ROLE_COUNT, BUILTIN_ROLE_SHAPE
from tenantatlas_pipelines.simulator.stats import RequestStats

VERSIONS = ("v1.0", "beta")
IN_PROCESS_BASE_URL = "http://graph.simulator.invalid"
FOREIGN_BASE_URL = "https://evil.example.com"
TOKEN_LIFETIME_SECONDS = 3599
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_INTUNE_PREFIXES = ("deviceManagement/", "deviceAppManagement/")
_PRESERVED_QUERY = ("$filter", "$select", "$top")
_QUERY_SAFE = ",'()"


class GraphSimulator:
    """Microsoft Graph and Entra ID, as far as an Intune inventory sees them, in one ASGI app.

    ``generation`` picks the item set (see ``advance``); ``stats`` records every request;
    ``issued_tokens`` holds every access token handed out.
    """

    def __init__(self, scenario: Scenario, *, generation: int = 1) -> None:
        if generation < 1:
            raise ValueError("generation starts at 1")
        self.scenario = scenario
        self.generation = generation
        self.stats = RequestStats()
        self.issued_tokens: set[str] = set()
        self.faults = FaultBook(scenario)
        self._lock = threading.Lock()
        self._tenants = {t.tenant_id: t for t in scenario.tenants}
        self._tokens: dict[str, str] = {}  # token -> tenant id
        self._revoked: set[str] = set()
        self._list_requests: dict[str, int] = {}  # per tenant, for expire_token_after
        self._expiries_done: set[tuple[str, int]] = set()
        self._populations: dict[tuple[str, str], Population] = {}
        for tenant in scenario.tenants:
            for key in (*CATALOG, BUILTIN_ROLE_SHAPE):
                if key == BUILTIN_ROLE_SHAPE:
                    pop = Population.of(
                        scenario.seed, tenant.tenant_id, key, base=BUILTIN_ROLE_COUNT, removed=0.0, added=0.0
                    )
                else:
                    pop = population_for(scenario, tenant, key)
                self._populations[(tenant.tenant_id, key)] = pop
        self._app = Starlette(
            routes=[
                Route("/{tenant_id}/oauth2/v2.0/token", self._token, methods=_ALL_METHODS),
                Route("/{version}/{path:path}", self._graph, methods=_ALL_METHODS),
            ]
        )

    # --- public API -------------------------------------------------------------

    def advance(self, generations: int = 1) -> None:
        """Move to a later generation: some items are gone, some new (as between two runs)."""
        if generations < 0:
            raise ValueError("generations must be >= 0")
        with self._lock:
            self.generation += generations

    def app(self) -> Starlette:
        """The ASGI app (the same object on every call)."""
        return self._app

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport; use with any base URL, e.g. ``IN_PROCESS_BASE_URL``."""
        return httpx.ASGITransport(app=self._app)

    def expected_item_ids(self, tenant_id: str, policy_type: str) -> set[str]:
        """Ids a correct client stores for the type now: after ``$filter`` and odata-type
        exclusion, without the item an active ``item_without_id`` fault strips."""
        tenant = self.scenario.tenant(tenant_id)
        population = self._population(tenant.tenant_id, policy_type)
        generation = self.generation
        ids = {population.item_id(k) for k in population.alive_indices(generation)}
        if self._strips_id(tenant, policy_type):
            first = population.first_alive(generation)
            if first is not None:
                ids.discard(population.item_id(first))
        return ids

    def reset_faults(self) -> None:
        """Let every counted fault fire again from its start."""
        self.faults.reset()
        with self._lock:
            self._list_requests.clear()
            self._expiries_done.clear()

    # --- helpers ----------------------------------------------------------------

    def _population(self, tenant_id: str, key: str) -> Population:
        try:
            return self._populations[(tenant_id, key)]
        except KeyError:
            raise KeyError(f"unknown policy type {key!r}") from None

    def _strips_id(self, tenant: TenantScenario, policy_type: str) -> bool:
        return any(
            f.applies_to(policy_type) and self.faults.active(tenant, i)
            for i, f in self.faults.faults(tenant, FaultKind.ITEM_WITHOUT_ID)
        )

    async def _recorded(
        self, request: Request, tenant_id: str, answer: Callable[[], Awaitable[Response]]
    ) -> Response:
        started = self.stats.start(tenant_id)
        status = 500
        try:
            response = await answer()
            status = response.status_code
            return response
        finally:
            self.stats.finish(tenant_id, started, request.method, request.url.path, status)

    # --- the token endpoint -----------------------------------------------------

    async def _token(self, request: Request) -> Response:
        tenant = self._tenants.get(request.path_params["tenant_id"].lower())
        return await self._recorded(
            request, tenant.tenant_id if tenant else "", lambda: self._issue(request, tenant)
        )

    async def _issue(self, request: Request, tenant: TenantScenario | None) -> Response:
        correlation = request.headers.get("client-request-id") or str(uuid.uuid4())
        if request.method != "POST":
            return entra_error(
                405,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
                correlation_id=correlation,
            )
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        if tenant is None:
            return entra_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{request.path_params['tenant_id']}' not found. Check to make sure you have the "
                "correct tenant ID and are signing into the correct cloud.",
                correlation_id=correlation,
            )
        for field in ("grant_type", "client_id"):
            if not form.get(field):
                return entra_error(
                    400,
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{field}'.",
                    correlation_id=correlation,
                )
        if form["grant_type"] != "client_credentials":
            return entra_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
                correlation_id=correlation,
            )
        client_id = form["client_id"]
        if client_id.lower() != tenant.client_id.lower():
            return entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name or tenant.tenant_id}'.",
                correlation_id=correlation,
            )
        if form.get("client_assertion"):
            return entra_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation (the simulator knows no certificates).",
                correlation_id=correlation,
            )
        secret = form.get("client_secret", "")
        if not secret:
            return entra_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
                correlation_id=correlation,
            )
        wrong_secret = any(
            self.faults.fire(tenant, i) for i, _f in self.faults.faults(tenant, FaultKind.WRONG_SECRET)
        )
        if wrong_secret or not hmac.compare_digest(secret.encode(), tenant.client_secret.encode()):
            return entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{tenant.client_id}'.",
                correlation_id=correlation,
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return entra_error(
                400,
                "invalid_scope",
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
                correlation_id=correlation,
            )
        token = "simtok-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = tenant.tenant_id
            self.issued_tokens.add(token)
        body = json.dumps(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            }
        )
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        return Response(body, headers=headers, media_type="application/json; charset=utf-8")

    # --- Graph --------------------------------------------------------------------

    def _bearer(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    async def _graph(self, request: Request) -> Response:
        token = self._bearer(request)
        tenant_id = self._tokens.get(token, "")
        return await self._recorded(request, tenant_id, lambda: self._list(request, token, tenant_id))

    async def _list(self, request: Request, token: str, tenant_id: str) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id

        def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
            return graph_error(
                status,
                code,
                message,
                request_id=request_id,
                client_request_id=client_request_id,
                headers=headers,
            )

        if request.method != "GET":
            return error(
                405, "MethodNotAllowed", "The simulator is read-only: only GET is served.", {"Allow": "GET"}
            )
        if not token:
            return error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not tenant_id:
            return error(
                401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            )
        tenant = self._tenants[tenant_id]
        if self._expired(tenant, token):
            return error(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            )

        version, path = request.path_params["version"], request.path_params["path"].strip("/")
        if version not in VERSIONS:
            return error(400, "BadRequest", f"Invalid version: {version}")
        query = request.query_params
        generation = self.generation
        try:
            listing = resolve_listing(
                path, query.get("$filter"), lambda key: self._population(tenant_id, key)
            )
            cursor, page_number = (0, 0), 0
            if "$skiptoken" in query:
                cursor, page_number = decode_skiptoken(query["$skiptoken"], len(listing.segments))
            limit = tenant.page_size_for(listing.policy_type)
            if "$top" in query:
                top = int(query["$top"]) if query["$top"].isdigit() else 0
                if top < 1:
                    raise ListingError(f"Invalid value '{query['$top']}' for $top query option found.")
                limit = min(limit, top)
        except ListingError as exc:
            return error(400, "BadRequest", str(exc))

        policy = CATALOG[listing.policy_type]
        url = str(request.url)
        for index, fault in self.faults.faults(tenant):
            if fault.kind is FaultKind.SLOW:
                if fault.applies_to(policy.key) and self.faults.fire(tenant, index):
                    await asyncio.sleep(fault.delay_seconds)
            elif (
                fault.kind in STATUS_FAULTS
                and self._fault_matches(fault, policy.key, path)
                and self.faults.fire(tenant, index)
            ):
                return self._fault_response(fault, policy.key, error, request_id, url)

        base = f"{request.url.scheme}://{request.url.netloc}"
        return self._page(
            request,
            tenant,
            listing,
            version,
            path,
            base,
            cursor,
            page_number,
            limit,
            generation,
            request_id,
            client_request_id,
        )

    def _expired(self, tenant: TenantScenario, token: str) -> bool:
        """Apply ``expire_token_after``: after ``count`` list requests, every token issued so far dies."""
        with self._lock:
            if token in self._revoked:
                return True
            for index, fault in self.faults.faults(tenant, FaultKind.EXPIRE_TOKEN_AFTER):
                if (tenant.tenant_id, index) in self._expiries_done:
                    continue
                used = self._list_requests.get(tenant.tenant_id, 0) + 1
                self._list_requests[tenant.tenant_id] = used
                if used > (fault.count or 0):
                    self._expiries_done.add((tenant.tenant_id, index))
                    self._revoked.update(t for t, owner in self._tokens.items() if owner == tenant.tenant_id)
                    return True
            return False

    @staticmethod
    def _fault_matches(fault: Fault, policy_type: str, path: str) -> bool:
        if fault.kind is FaultKind.UNLICENSED:
            return path.startswith(_INTUNE_PREFIXES)
        return fault.applies_to(policy_type)

    @staticmethod
    def _fault_response(
        fault: Fault,
        policy_type: str,
        error: Callable[[int, str, str, dict[str, str] | None], Response],
        request_id: str,
        url: str,
    ) -> Response:
        kind = fault.kind
        policy = CATALOG[policy_type]
        if kind is FaultKind.FORBIDDEN:
            return error(403, "Forbidden", intune_message(forbidden_text(policy), request_id, url), None)
        if kind is FaultKind.UNAUTHORIZED:
            return error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.", None
            )
        if kind is FaultKind.UNLICENSED:
            return error(400, "BadRequest", "Request not applicable to target tenant.", None)
        if kind is FaultKind.BAD_REQUEST:
            message = intune_message("An error has occurred: the request is invalid.", request_id, url)
            return error(400, "BadRequest", message, None)
        if kind is FaultKind.NOT_FOUND:
            return error(404, "ResourceNotFound", "Resource not found for the segment.", None)
        # 429 / 503 / 504; conditional access never sends Retry-After
        headers = {} if policy.rate_class == "conditional_access" else retry_after_headers(fault.retry_after)
        retry_after = headers.get("Retry-After")
        if kind is FaultKind.THROTTLE:
            if policy.rate_class == "conditional_access":
                return error(429, "TooManyRequests", "Too many requests.", headers)
            message = intune_message("Too many requests.", request_id, url, retry_after)
            return error(429, "TooManyRequests", message, headers)
        if kind is FaultKind.UNAVAILABLE:
            return error(
                503, "ServiceUnavailable", "Service is unavailable. Please try again later.", headers
            )
        return error(504, "GatewayTimeout", "The gateway did not receive a timely response.", headers)

    def _page(
        self,
        request: Request,
        tenant: TenantScenario,
        listing: Listing,
        version: str,
        path: str,
        base: str,
        cursor: Cursor,
        page_number: int,
        limit: int,
        generation: int,
        request_id: str,
        client_request_id: str,
    ) -> Response:
        query = request.query_params
        select_raw = query.get("$select")
        select = frozenset(s.strip() for s in select_raw.split(",") if s.strip()) if select_raw else None
        page_faults = [
            (index, fault)
            for index, fault in self.faults.faults(tenant, *PAGE_FAULTS)
            if fault.page == page_number and fault.applies_to(listing.policy_type)
        ]
        strip = {
            (s, first)
            for s, segment in enumerate(listing.segments)
            if segment.owner is not None
            and self._strips_id(tenant, segment.owner)
            and (first := segment.population.first_alive(generation)) is not None
        }

        def render(s: int, segment: Segment, k: int) -> str:
            drop_id = False
            if (s, k) in strip:
                drop_id = any(
                    f.applies_to(segment.owner or "") and self.faults.fire(tenant, i)
                    for i, f in self.faults.faults(tenant, FaultKind.ITEM_WITHOUT_ID)
                )
            return render_item(
                segment.population, segment.shape, k, select=select, drop_id=drop_id, generation=generation
            )

        page = collect(listing, generation, cursor, limit, render)
        next_base: str | None = base
        next_cursor, next_page = page.next_cursor, page_number + 1
        for index, fault in page_faults:
            if fault.kind is FaultKind.REPEATED_ITEM and page.last_cursor is not None:
                if self.faults.fire(tenant, index):
                    next_cursor = page.last_cursor
            elif fault.kind is FaultKind.NEXTLINK_LOOP and self.faults.fire(tenant, index):
                next_page = max(page_number - 1, 0)
                next_cursor = page_start(listing, generation, next_page, limit)
            elif fault.kind is FaultKind.FOREIGN_NEXTLINK and self.faults.fire(tenant, index):
                next_base, next_cursor = FOREIGN_BASE_URL, next_cursor or cursor

        context = json.dumps(f"{base}/{version}/$metadata#{path}" + (f"({select_raw})" if select_raw else ""))
        parts = ['{"@odata.context":', context, ',"value":[', ",".join(page.items), "]"]
        if next_cursor is not None:
            params = [(name, query[name]) for name in _PRESERVED_QUERY if name in query]
            params.append(("$skiptoken", encode_skiptoken(next_cursor, next_page)))
            encoded = "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in params)
            parts += [',"@odata.nextLink":', json.dumps(f"{next_base}/{version}/{path}?{encoded}")]
        parts.append("}")
        body = "".join(parts).encode("utf-8")
        for index, fault in page_faults:
            if fault.kind is FaultKind.MALFORMED_JSON and self.faults.fire(tenant, index):
                body = body[: len(body) // 2]
                break
            if fault.kind is FaultKind.NOT_A_PAGE and self.faults.fire(tenant, index):
                body = ('{"@odata.context":' + context + "}").encode("utf-8")
                break
        headers = {"request-id": request_id, "client-request-id": client_request_id}
        return Response(body, headers=headers, media_type=GRAPH_JSON)
