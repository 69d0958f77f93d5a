"""Floor 2: the Microsoft Graph client (httpx, async, read-only).

``clouds`` (endpoints per national cloud), ``auth`` (credentials and the
token cache), ``errors`` (one exception hierarchy, safe records), ``retry``
(Retry-After and backoff), ``limits`` (per-tenant concurrency and rate) and
``client`` (paging). Imports nothing of the project but ``inventory``.
"""

from tenantatlas_pipelines.graph.auth import ClientSecretCredential, Credential, TokenProvider
from tenantatlas_pipelines.graph.client import GraphClient, GraphPage
from tenantatlas_pipelines.graph.clouds import CLOUDS, CloudEndpoints, endpoints_for
from tenantatlas_pipelines.graph.errors import (
    AuthError,
    GraphBadRequest,
    GraphError,
    GraphForbidden,
    GraphInvalidResponse,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    NotLicensedError,
    error_from_response,
)
from tenantatlas_pipelines.graph.limits import TenantLimiter
from tenantatlas_pipelines.graph.retry import RetryPolicy, parse_retry_after

__all__ = [
    "CLOUDS",
    "AuthError",
    "ClientSecretCredential",
    "CloudEndpoints",
    "Credential",
    "GraphBadRequest",
    "GraphClient",
    "GraphError",
    "GraphForbidden",
    "GraphInvalidResponse",
    "GraphNotFound",
    "GraphPage",
    "GraphThrottled",
    "GraphTransient",
    "GraphUnauthorized",
    "NotLicensedError",
    "RetryPolicy",
    "TenantLimiter",
    "TokenProvider",
    "endpoints_for",
    "error_from_response",
    "parse_retry_after",
]
