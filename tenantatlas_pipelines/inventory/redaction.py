"""Redaction of secrets from any text that may be stored, logged or raised.

Two layers: patterns that recognise secrets by shape (bearer tokens, JWTs,
``client_secret=`` and friends in bodies and URLs, JSON fields, the
``Authorization`` header), and exact values registered at run time (the
client secret read from the environment, every token the token endpoint
issued), so even a secret of no known shape is caught.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

REDACTED = "[REDACTED]"

_SECRET_FIELDS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "code_verifier",
)
_FIELD_ALT = "|".join(_SECRET_FIELDS)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization / Proxy-Authorization headers, any scheme, to end of line
    (
        re.compile(r"(?i)\b((?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)[^\r\n\"',}]+"),
        r"\1" + REDACTED,
    ),
    # bearer tokens in free text
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + REDACTED),
    # JSON fields: "access_token": "..." (also single quotes, python reprs)
    (
        re.compile(rf"(?i)([\"']({_FIELD_ALT})[\"']\s*:\s*[\"'])[^\"']*([\"'])"),
        r"\1" + REDACTED + r"\3",
    ),
    # form bodies, query strings: client_secret=...&
    (re.compile(rf"(?i)\b(({_FIELD_ALT})=)[^&\s\"',;]+"), r"\1" + REDACTED),
    # JWTs (header.payload.signature), base64url segments starting with eyJ
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
        REDACTED,
    ),
)

_MIN_KNOWN_SECRET_LEN = 6
_known_lock = threading.Lock()
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember an exact secret value (a client secret, an issued token)."""
    if value and len(value) >= _MIN_KNOWN_SECRET_LEN:
        # and the forms it takes inside URLs, form bodies and JSON strings ('/' -> %2F, '+' -> %2B)
        forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        with _known_lock:
            _known_secrets.update(forms)


def forget_secrets() -> None:
    """Test helper: clear the registered exact values."""
    with _known_lock:
        _known_secrets.clear()


def json_contains_known_secret(document: bytes) -> bool:
    """Whether a JSON document (as orjson writes it, UTF-8) holds a registered secret in a string.

    JSON escapes each character on its own, so a string holding a secret holds the secret's
    escaped form: one byte search per secret, no walk over the document's values.
    """
    with _known_lock:
        known = tuple(_known_secrets)
    return any(orjson.dumps(secret)[1:-1] in document for secret in known)


def contains_known_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret value (a cheap check before redacting data)."""
    with _known_lock:
        known = tuple(_known_secrets)
    return any(secret in text for secret in known)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with every recognisable secret replaced by ``[REDACTED]``."""
    if not text:
        return text
    with _known_lock:
        known = sorted(_known_secrets.union(s for s in extra_secrets if s), key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value; secret-named keys are blanked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, inner in value.items():
            if isinstance(key, str) and key.lower() in (*_SECRET_FIELDS, "authorization"):
                out[key] = REDACTED
            else:
                out[key] = redact_value(inner)
        return out
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the rendered message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            rendered = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not leak args
            rendered = str(record.msg)
        record.msg = redact(rendered)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
