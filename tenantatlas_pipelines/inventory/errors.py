"""The error taxonomy: the codes a sync run records, and the exception root.

Each code is documented here and in the README; extend with care, other
tools branch on these strings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from tenantatlas_pipelines.inventory.redaction import redact
from tenantatlas_pipelines.inventory.text_bounds import ERROR_FIELD_CHARS, bounded, storable

MAX_MESSAGE_CHARS = 500
MAX_SCOPES = 50  # permission scopes kept per error (a 403 names a handful)


class ErrorCode(StrEnum):
    GRAPH_UNAUTHORIZED = "graph_unauthorized"
    GRAPH_FORBIDDEN = "graph_forbidden"
    GRAPH_NOT_FOUND = "graph_not_found"
    GRAPH_BAD_REQUEST = "graph_bad_request"
    INTUNE_NOT_LICENSED = "intune_not_licensed"
    GRAPH_THROTTLED = "graph_throttled"
    GRAPH_TRANSIENT = "graph_transient"
    GRAPH_INVALID_RESPONSE = "graph_invalid_response"
    AUTH_FAILED = "auth_failed"
    CONFIG_ERROR = "config_error"
    ITEM_INVALID = "item_invalid"
    LOCK_CONTENDED = "lock_contended"
    RUN_ABANDONED = "run_abandoned"
    UNEXPECTED_EXCEPTION = "unexpected_exception"


ERROR_CODE_DOCS: dict[ErrorCode, str] = {
    ErrorCode.GRAPH_UNAUTHORIZED: "Graph answered 401 twice (token refreshed once): fatal for the tenant.",
    ErrorCode.GRAPH_FORBIDDEN: "Graph answered 403 (missing permission scope): that policy type fails.",
    ErrorCode.GRAPH_NOT_FOUND: "Graph answered 404: that policy type fails.",
    ErrorCode.GRAPH_BAD_REQUEST: "Graph answered 400 (not a licence problem): that policy type fails.",
    ErrorCode.INTUNE_NOT_LICENSED: "The tenant has no Intune licence: one tenant-level error.",
    ErrorCode.GRAPH_THROTTLED: "429 still after the retry budget: that policy type fails.",
    ErrorCode.GRAPH_TRANSIENT: "503/504, timeouts or connection errors after retries: that type fails.",
    ErrorCode.GRAPH_INVALID_RESPONSE: "Not a Graph page, a repeated or foreign nextLink: that type fails.",
    ErrorCode.AUTH_FAILED: "The token endpoint refused the credentials: fatal for the tenant.",
    ErrorCode.CONFIG_ERROR: "Registry or settings are invalid (for example a missing secret env var).",
    ErrorCode.ITEM_INVALID: "An item was skipped (no id, or an id that is not a string).",
    ErrorCode.LOCK_CONTENDED: "Another run of the same tenant and selection holds the lock: skipped.",
    ErrorCode.RUN_ABANDONED: "A run whose process died; its lease expired and a later run took over.",
    ErrorCode.UNEXPECTED_EXCEPTION: "A bug or an unforeseen failure; the message is redacted.",
}


def safe_message(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Redact, make storable (no NUL, no lone surrogate), truncate: the only form free text is stored in."""
    cleaned = storable(redact(str(text)))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\u2026"


@dataclass(slots=True)
class ErrorRecord:
    """One error as it is stored in ``error_context`` and shown in metadata."""

    code: ErrorCode
    message: str
    policy_type: str | None = None
    status: int | None = None
    graph_code: str | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    date: str | None = None
    path: str | None = None
    scopes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.code = ErrorCode(self.code)
        self.message = safe_message(self.message)
        # Graph's own text (its error code, request ids, date): storable and short, whatever
        # a hostile or broken error body holds (error_context is JSONB on PostgreSQL)
        self.graph_code = _field(self.graph_code)
        self.request_id = _field(self.request_id)
        self.client_request_id = _field(self.client_request_id)
        self.date = _field(self.date)
        if self.path is not None:
            self.path = bounded(redact(self.path.split("?", 1)[0]), ERROR_FIELD_CHARS)
        if self.scopes:
            self.scopes = [bounded(scope, ERROR_FIELD_CHARS) for scope in self.scopes[:MAX_SCOPES]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["code"] = str(self.code)
        return {k: v for k, v in data.items() if v not in (None, [])}


def _field(value: str | None) -> str | None:
    return bounded(value, ERROR_FIELD_CHARS) if isinstance(value, str) else None


class TenantAtlasError(Exception):
    """Root of every error this project raises on purpose.

    The text is redacted on construction, so no subclass can carry a secret
    into a log line or a traceback by accident.
    """

    code: ErrorCode = ErrorCode.UNEXPECTED_EXCEPTION

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(safe_message(message, limit=2000))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(TenantAtlasError):
    """Bad registry, selection or settings; the text names the thing and the fix."""

    code = ErrorCode.CONFIG_ERROR


class SelectionError(ConfigError):
    """A selection payload that is not valid against the catalog."""


class ItemInvalidError(TenantAtlasError):
    code = ErrorCode.ITEM_INVALID


class SyncFailedError(TenantAtlasError):
    """A sync ended in an unforeseen failure; raised in place of the original exception.

    The text names the sync run (recorded ``failed`` with the same redacted message), the
    error code and the original exception's type, place and redacted message. The sync
    raises it ``from None`` and keeps no reference to the original, so neither that
    exception's text nor its chain reaches a traceback, a log handler or Dagster's event log.
    """

    code = ErrorCode.UNEXPECTED_EXCEPTION

    def __init__(self, message: str, *, run_id: int | None, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)
        self.run_id = run_id  # None: the sync failed before its run row was written

    def __reduce__(self) -> tuple[Any, ...]:
        return (_sync_failed, (self.message, self.run_id, str(self.code)))


def _sync_failed(message: str, run_id: int | None, code: str) -> SyncFailedError:
    return SyncFailedError(message, run_id=run_id, code=ErrorCode(code))


def exit_code(command: Callable[[], int]) -> int:
    """``command()`` for a command line (``tenantatlas``, ``make demo``): our own errors (a
    database that is down, a bad registry) become one ``error:`` line on stderr naming the thing
    and the fix, and exit code 2, instead of a traceback."""
    try:
        return command()
    except TenantAtlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
