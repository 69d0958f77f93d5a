from __future__ import annotations

import base64
import json
import logging

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tenantatlas_pipelines.inventory.errors import ErrorRecord, TenantAtlasError
from tenantatlas_pipelines.inventory.redaction import (
    REDACTED,
    RedactingFilter,
    forget_secrets,
    json_contains_known_secret,
    redact,
    redact_value,
    register_secret,
)

TOKEN_CHARS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=16, max_size=80
)
SECRET_CHARS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~.-_", min_size=12, max_size=60
)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _jwt(sub: str) -> str:
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64({'sub': sub, 'aud': 'graph'})}.c2lnbmF0dXJlLXNpZw"


@given(token=TOKEN_CHARS)
def test_bearer_tokens_in_headers_and_text_are_redacted(token: str) -> None:
    for text in (
        f"Authorization: Bearer {token}",
        f"sent bearer {token} to graph",
        f"{{'Authorization': 'Bearer {token}'}}",
    ):
        assert token not in redact(text)


@given(sub=TOKEN_CHARS)
def test_jwts_anywhere_are_redacted(sub: str) -> None:
    jwt = _jwt(sub)
    for text in (
        f"assertion {jwt} end",
        json.dumps({"client_assertion": jwt}),
        f"https://x/?a=1&client_assertion={jwt}",
    ):
        assert jwt not in redact(text)


@given(secret=SECRET_CHARS)
def test_secrets_in_form_bodies_urls_and_json_are_redacted(secret: str) -> None:
    texts = [
        f"client_id=abc&client_secret={secret}&scope=x",
        f"https://login.example/token?client_secret={secret}",
        json.dumps({"client_secret": secret, "x": 1}),
        json.dumps({"access_token": secret, "token_type": "Bearer"}),
        f"access_token={secret}",
    ]
    for text in texts:
        assert secret not in redact(text), text


@given(secret=SECRET_CHARS)
def test_registered_secrets_of_any_shape_are_redacted_in_values_and_exceptions(secret: str) -> None:
    forget_secrets()
    register_secret(secret)
    try:
        assert secret not in redact(f"weird place: <{secret}>")
        assert secret not in json.dumps(redact_value({"a": [f"x{secret}y"], "b": {"c": secret}}))
        assert secret not in str(TenantAtlasError(f"failed with {secret}"))
        assert secret not in json.dumps(
            ErrorRecord(code="auth_failed", message=secret, path=f"/p?{secret}").to_dict()
        )
    finally:
        forget_secrets()


def test_secret_named_keys_are_blanked_whatever_their_value() -> None:
    assert redact_value({"Authorization": "x", "password": 5, "ok": "fine"}) == {
        "Authorization": REDACTED,
        "password": REDACTED,
        "ok": "fine",
    }


def test_logging_filter_redacts_arguments_and_exception_text(caplog: object) -> None:
    logger = logging.getLogger("tenantatlas.test.redaction")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("Authorization: Bearer abcdefghijklmnop")
        except ValueError:
            logger.exception("token was %s", "Bearer qwertyuiopasdfgh")
    finally:
        logger.removeHandler(handler)
    rendered = records[0].getMessage() + (records[0].exc_text or "")
    assert "qwertyuiopasdfgh" not in rendered and "abcdefghijklmnop" not in rendered
    assert REDACTED in rendered


def test_error_records_strip_the_query_and_truncate_messages() -> None:
    record = ErrorRecord(
        code="graph_forbidden", message="x" * 5000, path="/beta/deviceManagement/intents?$top=5"
    )
    assert record.path == "/beta/deviceManagement/intents"
    assert len(record.message) <= 500


@given(secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=40))
def test_a_registered_secret_is_found_in_any_string_of_a_json_document(secret: str) -> None:
    forget_secrets()
    register_secret(secret)
    try:
        document = orjson.dumps([("name", {"a": [f'x"{secret}\\y'], "b": 7}), (None, {})])
        assert json_contains_known_secret(document)
        clean = orjson.dumps([("?", {"k": ["?"]})])
        assert not json_contains_known_secret(clean)
    finally:
        forget_secrets()
