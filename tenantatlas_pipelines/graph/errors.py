"""One exception hierarchy for everything the Graph client raises.

Every ``GraphError`` carries a redacted ``ErrorRecord`` (what the sync run
stores) and ``tenant_fatal`` (stop the whole tenant, not only this policy
type). They are raised with ``from None`` or outside the ``except`` block, so
no httpx exception (whose request holds the ``Authorization`` header) hangs
on ``__cause__`` or ``__context__``.

Status mapping (``shared/spec/msgraph.md``):

====================================  ========================  ============
signal                                class                     scope
====================================  ========================  ============
token endpoint 4xx (AADSTS...)        AuthError                 tenant
401 twice (token refreshed once)      GraphUnauthorized         tenant
400 "Request not applicable to ..."   NotLicensedError          tenant
400 other, other 4xx                  GraphBadRequest           policy type
403                                   GraphForbidden (+scopes)  policy type
404                                   GraphNotFound             policy type
429 after retries                     GraphThrottled            policy type
5xx, timeouts, transport errors       GraphTransient            policy type
not a page, bad JSON, bad nextLink    GraphInvalidResponse      policy type
====================================  ========================  ============
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord, TenantAtlasError

NOT_LICENSED_PHRASE = "request not applicable to target tenant"
_SCOPES_RE = re.compile(r"(?i)one of the following scopes?\s*:?\s*(?P<rest>.*)")
_SCOPE_RE = re.compile(r"\b[A-Z][A-Za-z]+(?:\.[A-Za-z]+){1,3}\b")
_MAX_BODY_CHARS = 64_000


class GraphError(TenantAtlasError):
    """Root of the Graph client's errors; ``record`` is safe to store and show."""

    code = ErrorCode.UNEXPECTED_EXCEPTION
    tenant_fatal: bool = False

    def __init__(self, record: ErrorRecord, *, tenant_fatal: bool | None = None) -> None:
        record.code = self.code
        super().__init__(describe(record))
        self.record = record
        if tenant_fatal is not None:
            self.tenant_fatal = tenant_fatal

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable (a process boundary, a Dagster failure): rebuilt from the safe record alone
        return (_rebuild, (type(self), self.record, self.tenant_fatal))

    @classmethod
    def build(
        cls,
        message: str,
        *,
        policy_type: str | None = None,
        path: str | None = None,
        status: int | None = None,
        tenant_fatal: bool | None = None,
    ) -> GraphError:
        """An error that has no Graph error body (bad JSON, a foreign nextLink, a timeout)."""
        record = ErrorRecord(
            code=cls.code, message=message, policy_type=policy_type, status=status, path=path
        )
        return cls(record, tenant_fatal=tenant_fatal)


def _rebuild(cls: type[GraphError], record: ErrorRecord, tenant_fatal: bool) -> GraphError:
    return cls(record, tenant_fatal=tenant_fatal)


class AuthError(GraphError):
    """The token endpoint refused the credentials (AADSTS codes kept): fatal for the tenant."""

    code = ErrorCode.AUTH_FAILED
    tenant_fatal = True


class GraphUnauthorized(GraphError):
    """401 again after one token refresh: fatal for the tenant."""

    code = ErrorCode.GRAPH_UNAUTHORIZED
    tenant_fatal = True


class NotLicensedError(GraphError):
    """The tenant has no Intune licence: one tenant-level error, not one per type."""

    code = ErrorCode.INTUNE_NOT_LICENSED
    tenant_fatal = True


class GraphForbidden(GraphError):
    """403: the app lacks a permission; ``record.scopes`` names the scopes Graph asked for."""

    code = ErrorCode.GRAPH_FORBIDDEN


class GraphNotFound(GraphError):
    code = ErrorCode.GRAPH_NOT_FOUND


class GraphBadRequest(GraphError):
    code = ErrorCode.GRAPH_BAD_REQUEST


class GraphThrottled(GraphError):
    """Still 429 when the retry budget ran out."""

    code = ErrorCode.GRAPH_THROTTLED


class GraphTransient(GraphError):
    """503/504/5xx, timeouts or connection errors when the retry budget ran out."""

    code = ErrorCode.GRAPH_TRANSIENT


class GraphInvalidResponse(GraphError):
    """Not a Graph page, invalid JSON, or a foreign or repeating ``@odata.nextLink``."""

    code = ErrorCode.GRAPH_INVALID_RESPONSE


def describe(record: ErrorRecord) -> str:
    """The exception text: code, status, Graph code, path, message, request id."""
    head = str(record.code)
    if record.policy_type:
        head += f" [{record.policy_type}]"
    parts = [head + ":"]
    if record.status is not None:
        parts.append(f"HTTP {record.status}")
    if record.graph_code:
        parts.append(f"({record.graph_code})")
    if record.path:
        parts.append(f"on {record.path}")
    text = " ".join(parts)
    if record.message:
        text += f": {record.message}"
    if record.scopes:
        text += f" [scopes: {', '.join(record.scopes)}]"
    if record.request_id:
        text += f" [request-id {record.request_id}]"
    return text


# --- parsing Graph error bodies ----------------------------------------------


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _intune_message(message: str) -> tuple[str, str | None]:
    """Intune wraps its own JSON in ``message``; return its ``Message`` and ``CustomApiErrorPhrase``."""
    stripped = message.strip()
    if not stripped.startswith("{"):
        return message, None
    inner = _json_object(stripped)
    if inner is None:
        return message, None
    text = _str(inner.get("Message")) or _str(inner.get("message")) or message
    return text, _str(inner.get("CustomApiErrorPhrase"))


def parse_scopes(message: str) -> list[str]:
    """The permission scopes a 403 message asks for ("must have one of the following scopes: ...")."""
    match = _SCOPES_RE.search(message)
    if match is None:
        return []
    rest = match.group("rest").split(" - ", 1)[0]
    return sorted(set(_SCOPE_RE.findall(rest)))


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        text = response.text[:_MAX_BODY_CHARS]
    except (UnicodeDecodeError, LookupError, httpx.ResponseNotRead):
        return {}
    data = _json_object(text)
    error = data.get("error") if data else None
    return error if isinstance(error, dict) else {}


def _class_for(status: int, text: str) -> type[GraphError]:
    if status == 400:
        licensed = NOT_LICENSED_PHRASE not in text.lower()
        return GraphBadRequest if licensed else NotLicensedError
    if status == 401:
        return GraphUnauthorized
    if status == 403:
        return GraphForbidden
    if status == 404:
        return GraphNotFound
    if status == 429:
        return GraphThrottled
    if status >= 500:
        return GraphTransient
    if 400 <= status < 500:
        return GraphBadRequest
    return GraphInvalidResponse  # 1xx/3xx: httpx follows no redirects, Graph sends none


def error_from_response(
    response: httpx.Response, policy_type: str | None, *, note: str | None = None
) -> GraphError:
    """Map a non-2xx Graph answer to its ``GraphError`` (never keeps headers or the raw body).

    ``note`` is appended to the message (for example why the retries stopped).
    """
    status = response.status_code
    error = _body(response)
    inner = error.get("innerError") or error.get("innererror")
    inner = inner if isinstance(inner, dict) else {}
    graph_code = _str(error.get("code"))
    raw_message = _str(error.get("message")) or ""
    message, phrase = _intune_message(raw_message)
    if phrase and phrase not in message:
        message = f"{message} ({phrase})"
    if not message:
        message = response.reason_phrase or f"HTTP {status}"
    cls = _class_for(status, raw_message)
    if cls is GraphInvalidResponse:
        message = f"unexpected HTTP {status} answer"
    scopes = (parse_scopes(message) or parse_scopes(raw_message)) if cls is GraphForbidden else []
    if note:
        message = f"{message} ({note})"
    headers = response.headers
    record = ErrorRecord(
        code=cls.code,
        message=message,
        policy_type=policy_type,
        status=status,
        graph_code=graph_code,
        request_id=_str(inner.get("request-id")) or headers.get("request-id"),
        client_request_id=_str(inner.get("client-request-id")) or headers.get("client-request-id"),
        date=_str(inner.get("date")) or headers.get("date"),
        path=response.request.url.path if _has_request(response) else None,
        scopes=scopes,
    )
    return cls(record)


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when the response has no request
    except RuntimeError:
        return False
    return True
