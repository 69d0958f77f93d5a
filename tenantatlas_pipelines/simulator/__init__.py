"""The Graph simulator: Microsoft Graph and Entra ID as an Intune inventory sees them.

Floor 2 (imports only ``inventory/``). The demo, the tests and the benchmarks
sync against it instead of real tenants. One ASGI app (Starlette) serves both
the token endpoint and Graph, as a registry tenant with
``login_endpoint``/``graph_endpoint`` overrides would call them:

* ``POST {base}/{tenant_id}/oauth2/v2.0/token`` (client credentials). Success:
  ``token_type``, ``expires_in`` 3599, ``access_token`` (opaque ``simtok-...``,
  unique per issue). Errors like Entra (``error``, ``error_description`` with
  ``AADSTS...``, ``error_codes``, ``trace_id``, ``correlation_id``); a wrong
  secret is 401 ``invalid_client`` AADSTS7000215, an unknown tenant 400
  AADSTS90002. The submitted secret is never echoed.
* ``GET {base}/{v1.0|beta}/{catalog path}`` with ``Authorization: Bearer``;
  the token names the tenant. Every catalog path answers on both versions,
  with ``@odata.context``, ``value`` and an absolute ``@odata.nextLink``
  (opaque ``$skiptoken``) on the same base. Page size is the tenant's
  ``page_size`` (``$top`` may lower it), always 25 for configurationPolicies.
  ``deviceConfigurations`` lists update rings too unless
  ``$filter=isof('microsoft.graph.windowsUpdateForBusinessConfiguration')``
  asks for rings only; ``managedAppPolicies`` also lists
  targetedManagedAppConfiguration objects; ``roleDefinitions`` lists
  built-in roles unless ``$filter=isBuiltIn eq false``; ``mobileApps`` carry a
  big base64 ``largeIcon`` unless ``$select`` leaves it out. Other filters are
  400. Any method but GET is 405: the simulator never accepts a write.
  Responses carry ``request-id`` and echo ``client-request-id``. Errors are
  ``{"error": {"code", "message", "innerError": {...}}}``.

Run it::

    python -m tenantatlas_pipelines.simulator --scenario PATH --port 8765 --generation 1

(defaults: the bundled ``data/demo_scenario.yaml``, port 8765). In tests, use
``GraphSimulator(scenario).transport()`` with ``httpx.AsyncClient`` (base URL
``IN_PROCESS_BASE_URL``; note an in-process transport enforces no client
timeouts) or ``with serve_loopback(sim) as base_url:`` for real HTTP.

Scenario format (YAML, unknown keys refused)::

    seed: 42                                # every generated value derives from it
    tenants:
      - tenant_id: 0f6a1c2e-...             # GUID
        client_id: 3c1e5a7b-...
        client_secret: contoso-demo-secret  # fake; what the token endpoint accepts
        display_name: Contoso Ltd
        page_size: 100
        item_counts: {deviceConfiguration: 40, mobileApp: 12}   # missing types: 0 items
        removed_per_generation: 0.1         # fraction gone in each later generation
        added_per_generation: 0.05          # round(count * this) new items per generation
        edited_per_generation: 0.1          # fraction of older items edited per generation (half
                                            # without a lastModifiedDateTime change); default 0
        faults:
          - {kind: throttle, policy_type: mobileApp, count: 3, retry_after: 0.2}

Items are generated lazily from (seed, tenant, type, index): deterministic,
1 to 3 KB of realistic JSON each, nothing held in memory, so a million items
cost only the time to page them. ``GraphSimulator.advance()`` moves to the next
*generation* (some items gone, some new), as between two sync runs;
``expected_item_ids`` and ``items_for`` say what a correct client must see.

Faults (``policy_type`` None: every type; ``count`` None: forever; a fault
fires on the list requests of its type, in scenario order, first one wins):

=================== ===========================================================
forbidden           403 ``Forbidden``, Intune's nested JSON message naming the
                    scopes ("Application must have one of the following scopes: ...")
unauthorized        401 ``InvalidAuthenticationToken`` on list requests
unlicensed          400 ``BadRequest`` "Request not applicable to target tenant."
                    on every Intune path of the tenant (tenant-level)
bad_request         400 ``BadRequest`` (Intune nested message)
not_found           404 ``ResourceNotFound``
throttle            429 ``TooManyRequests``; ``Retry-After`` = ``retry_after``
                    (seconds, fractional ok; "http-date" sends an HTTP-date 1-2 s
                    ahead; other text verbatim; none when None, and never on
                    conditional access)
unavailable         503 ``ServiceUnavailable`` (``Retry-After`` when set)
gateway_timeout     504 ``GatewayTimeout`` (``Retry-After`` when set)
slow                waits ``delay_seconds`` (asyncio.sleep), then answers normally
malformed_json      page number ``page`` (0-based) is cut in half: not JSON
not_a_page          page ``page`` is ``{"@odata.context": ...}`` without ``value``
nextlink_loop       page ``page``'s nextLink points back to page ``page - 1``
                    (to page 0 itself when ``page`` is 0)
foreign_nextlink    page ``page``'s nextLink is on https://evil.example.com
repeated_item       page ``page``'s last item is repeated first on the next page
item_without_id     the type's first item lacks ``id`` (``expected_item_ids``
                    leaves it out while the fault is active)
wrong_secret        the token endpoint answers 401 AADSTS7000215 (tenant-level)
expire_token_after  after ``count`` list requests every token issued so far is
                    refused (401 ``InvalidAuthenticationToken``, "Lifetime
                    validation failed"); fresh tokens work (tenant-level, once)
=================== ===========================================================

``stats`` records every request (tenant, path, status, concurrency);
``issued_tokens`` every access token handed out, so tests can check that none
was stored or logged.
"""

from tenantatlas_pipelines.simulator.app import IN_PROCESS_BASE_URL, GraphSimulator
from tenantatlas_pipelines.simulator.scenario import (
    Fault,
    FaultKind,
    Scenario,
    ScenarioError,
    TenantScenario,
    items_for,
)
from tenantatlas_pipelines.simulator.server import demo_scenario_path, serve_loopback
from tenantatlas_pipelines.simulator.stats import RequestRecord, RequestStats

__all__ = [
    "IN_PROCESS_BASE_URL",
    "Fault",
    "FaultKind",
    "GraphSimulator",
    "RequestRecord",
    "RequestStats",
    "Scenario",
    "ScenarioError",
    "TenantScenario",
    "demo_scenario_path",
    "items_for",
    "serve_loopback",
]
