"""Error answers shaped like the real services (Graph, Intune inside Graph, Entra ID)."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from starlette.responses import Response

from tenantatlas_pipelines.inventory.catalog import PolicyType
from tenantatlas_pipelines.simulator.scenario import HTTP_DATE

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
ENTRA_JSON = "application/json; charset=utf-8"
_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# the read scopes Intune names in a 403, per path family (msgraph.md: read-only permissions)
_SCOPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("identity/conditionalAccess", ("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess")),
    ("deviceAppManagement/", ("DeviceManagementApps.Read.All", "DeviceManagementApps.ReadWrite.All")),
    ("deviceManagement/role", ("DeviceManagementRBAC.Read.All", "DeviceManagementRBAC.ReadWrite.All")),
    (
        "deviceManagement/windowsAutopilot",
        ("DeviceManagementServiceConfig.Read.All", "DeviceManagementServiceConfig.ReadWrite.All"),
    ),
    (
        "deviceManagement/deviceEnrollment",
        ("DeviceManagementServiceConfig.Read.All", "DeviceManagementServiceConfig.ReadWrite.All"),
    ),
    (
        "deviceManagement/assignmentFilters",
        ("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"),
    ),
    (
        "deviceManagement/device",
        ("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"),
    ),
)
_SCRIPT_SCOPES = ("DeviceManagementScripts.Read.All", "DeviceManagementScripts.ReadWrite.All")
_DEFAULT_SCOPES = ("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All")


def required_scopes(policy_type: PolicyType) -> tuple[str, ...]:
    """The scopes a 403 for this policy type names."""
    if policy_type.path.endswith("Scripts"):
        return _SCRIPT_SCOPES
    for prefix, scopes in _SCOPES:
        if policy_type.path.startswith(prefix):
            return scopes
    return _DEFAULT_SCOPES


def retry_after_headers(value: float | str | None) -> dict[str, str]:
    """The ``Retry-After`` header (none for ``None``); an HTTP-date comes with the server's ``Date``.

    Both dates are taken from one reading of the clock, as one Graph server writes them, so
    the wait a client measures between them is 1 or 2 s whatever the load (the loopback
    server sends no ``Date`` of its own: uvicorn's is refreshed once a second and lags).
    """
    if value is None:
        return {}
    if value == HTTP_DATE:
        now = time.time()
        return {
            "Retry-After": formatdate(math.ceil(now) + 1, usegmt=True),
            "Date": formatdate(math.floor(now), usegmt=True),
        }
    if isinstance(value, str):
        return {"Retry-After": value}
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return {"Retry-After": text or "0"}


def _graph_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def intune_message(text: str, request_id: str, url: str, retry_after: str | None = None) -> str:
    """Intune's habit: a JSON document inside Graph's ``message`` string."""
    return json.dumps(
        {
            "_version": 3,
            "Message": f"{text} - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000"
            f" - Activity ID: {request_id} - Url: {url}",
            "CustomApiErrorPhrase": "",
            "RetryAfter": retry_after,
            "ErrorSourceService": "",
            "HttpHeaders": "{}",
        }
    )


def forbidden_text(policy_type: PolicyType) -> str:
    scopes = ", ".join(required_scopes(policy_type))
    return (
        "Application is not authorized to perform this operation. "
        f"Application must have one of the following scopes: {scopes}"
    )


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    request_id: str,
    client_request_id: str,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": _graph_date(),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    all_headers = {"request-id": request_id, "client-request-id": client_request_id}
    if status == 401:
        all_headers["WWW-Authenticate"] = (
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            f'client_id="{_GRAPH_APP_ID}"'
        )
    all_headers.update(headers or {})
    return Response(json.dumps(body), status_code=status, headers=all_headers, media_type=GRAPH_JSON)


def entra_error(status: int, error: str, code: int, description: str, *, correlation_id: str) -> Response:
    """A token endpoint error. ``description`` must never contain what the client submitted as secret."""
    trace_id = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "x-ms-request-id": trace_id}
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=ENTRA_JSON)
