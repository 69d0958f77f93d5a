"""National clouds: the login (token) and Graph endpoints of each.

A tenant's registry entry names its cloud; ``graph_endpoint`` and
``login_endpoint`` overrides (a proxy, a local simulator) win over the table.
The token scope always names the cloud's real Graph resource, so a proxy in
front of Graph still gets a token Graph accepts; only ``simulated`` takes its
scope from the override.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tenantatlas_pipelines.inventory.errors import ConfigError

SIMULATED = "simulated"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class CloudEndpoints:
    """Where one tenant's tokens and Graph calls go (no trailing slashes)."""

    cloud: str
    login: str
    graph: str
    scope: str

    def token_url(self, tenant_id: str) -> str:
        return f"{self.login}/{tenant_id}/oauth2/v2.0/token"

    def graph_url(self, version: str, path: str) -> str:
        return f"{self.graph}/{version}/{path.lstrip('/')}"

    @property
    def graph_origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) of Graph: the only origin that ever gets the bearer token."""
        return origin_of(httpx.URL(self.graph))


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in, for same-origin checks."""
    scheme = url.scheme.lower()
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(scheme, -1)
    return scheme, url.host.lower(), port


def _cloud(name: str, login: str, graph: str) -> CloudEndpoints:
    return CloudEndpoints(cloud=name, login=login, graph=graph, scope=f"{graph}/.default")


CLOUDS: dict[str, CloudEndpoints] = {
    "global": _cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": _cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": _cloud("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": _cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}
CLOUD_NAMES: tuple[str, ...] = (*CLOUDS, SIMULATED)


def _endpoint(value: str, what: str) -> str:
    """Validate an override: an absolute http(s) URL without query or fragment."""
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in _DEFAULT_PORTS or not url.host or url.query or url.fragment:
        raise ConfigError(
            f"{what} {value!r} is not a valid endpoint: give an absolute http(s) URL such as "
            "'https://graph.microsoft.com' or 'http://127.0.0.1:8765', without query or fragment"
        )
    return str(url).rstrip("/")


def endpoints_for(
    cloud: str, graph_endpoint: str | None = None, login_endpoint: str | None = None
) -> CloudEndpoints:
    """The endpoints of ``cloud``; overrides win. ``simulated`` needs both overrides."""
    graph = _endpoint(graph_endpoint, "graph_endpoint") if graph_endpoint else None
    login = _endpoint(login_endpoint, "login_endpoint") if login_endpoint else None
    if cloud == SIMULATED:
        if graph is None or login is None:
            raise ConfigError(
                "cloud 'simulated' needs both graph_endpoint and login_endpoint "
                "(for example http://127.0.0.1:8765, the simulator's base URL)"
            )
        return CloudEndpoints(cloud=cloud, login=login, graph=graph, scope=f"{graph}/.default")
    known = CLOUDS.get(cloud)
    if known is None:
        raise ConfigError(f"unknown cloud {cloud!r}; use one of: {', '.join(CLOUD_NAMES)}")
    return CloudEndpoints(
        cloud=cloud, login=login or known.login, graph=graph or known.graph, scope=known.scope
    )
