"""Secrets: canaries searched for in every table, logs and captured output after failing and
succeeding runs; a property-based test of the redaction function. (The Dagster side, DAGSTER_HOME
and run records, is swept by tenantatlas_pipelines_tests/defs/test_defs_secret_canary.py.)"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_support import (
    SECRET_A,
    SECRET_B,
    TENANT_B,
    FaultySimulator,
    Rule,
    path_of,
    service,
    simulator,
    sync,
    tenant_scenario,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import TABLES
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import SyncFailedError, safe_message
from tenantatlas_pipelines.inventory.redaction import (
    RedactingFilter,
    redact,
    redact_value,
    register_secret,
)
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind


def _dump_every_table(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in TABLES for row in conn.execute(select(table)))


def test_no_secret_or_issued_token_reaches_any_table_log_or_output_after_failing_and_good_runs(
    store: InventoryStore,
    engine: Engine,
    secrets_env: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    raised: list[str] = []
    faults = [
        Fault(kind=FaultKind.EXPIRE_TOKEN_AFTER, count=2),
        Fault(kind=FaultKind.UNAUTHORIZED, policy_type="roleScopeTag"),
        Fault(kind=FaultKind.FORBIDDEN, policy_type="deviceCompliancePolicy"),
    ]
    sim = simulator(tenant_scenario(faults=faults), tenant_scenario(tenant_id=TENANT_B))
    tokens: set[str] = set()

    # a run with an expiring token, a 401 storm and a 403; a good run of tenant B
    sync(service(store, sim))
    sync(service(store, sim), tenant_key="b", tenant_id=TENANT_B)
    tokens |= sim.issued_tokens
    # a refused secret (the token endpoint echoes nothing secret, but the request carried it)
    wrong = simulator(tenant_scenario(faults=[Fault(kind=FaultKind.WRONG_SECRET)]))
    assert sync(service(store, wrong)).status is RunStatus.FAILED
    # a server that echoes the token and the secret back inside a page of items
    echo_sim = simulator()

    def echo(items: list[Any]) -> list[Any]:
        leaked = f"Bearer {next(iter(echo_sim.issued_tokens))} client_secret={SECRET_A}"
        return [dict(items[0], displayName=leaked, publisher=leaked), *items[1:]]

    sync(
        service(store, FaultySimulator(echo_sim, Rule(path_of("mobileApp"), "items", count=1, rewrite=echo)))
    )
    tokens |= echo_sim.issued_tokens
    # a crash whose exception text carries the token and the secret
    crash_sim = simulator()
    original = store.upsert_batches

    def crash(*args: Any, **kwargs: Any) -> int:
        token = next(iter(crash_sim.issued_tokens))
        raise RuntimeError(f"write failed; headers={{'Authorization': 'Bearer {token}'}} secret {SECRET_A}")

    monkeypatch.setattr(store, "upsert_batches", crash)
    with pytest.raises(SyncFailedError) as crashed:
        sync(service(store, crash_sim))
    monkeypatch.setattr(store, "upsert_batches", original)
    # what a caller (Dagster, the CLI) gets, raw: the text, the traceback and any chained exception
    raised.append("".join(traceback.format_exception(crashed.value)))
    raised.append(repr(crashed.value.args))
    tokens |= crash_sim.issued_tokens

    assert len(tokens) >= 4
    out, err = capfd.readouterr()
    haystacks = {
        "database": _dump_every_table(engine),
        "logs": "\n".join(_raw_record(r) for r in caplog.records),
        "stdout": out,
        "stderr": err,
        "stored exception text": "\n".join(raised),
    }
    assert "Bearer" in haystacks["database"] or "[REDACTED]" in haystacks["database"]
    for where, text in haystacks.items():
        for canary in (SECRET_A, SECRET_B, *tokens):
            assert canary not in text, f"a secret or token reached the {where}"


def _raw_record(record: logging.LogRecord) -> str:
    """A log record as any handler could render it: message, arguments and exception, unredacted."""
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        parts.append(record.exc_text)
    return " ".join(parts)


# -- the redaction function, property-based -------------------------------------------------------

AZURE_SECRET = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-+/=", min_size=12, max_size=48
)
B64URL = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8, max_size=64
)
PADDING = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


def _jwt(header: str, payload: str, signature: str) -> str:
    return f"eyJ{header}.eyJ{payload}.{signature}"


def _contexts(secret: str) -> list[str]:
    """Places a secret travels: URLs, form bodies, JSON, headers, reprs, log lines."""
    return [
        f"https://login.example/token?client_secret={secret}&x=1",
        f"https://graph.example/v1.0/x?{urlencode({'client_secret': secret})}",
        f"client_id=abc&{urlencode({'client_secret': secret})}&grant_type=client_credentials",
        json.dumps({"client_secret": secret, "other": 1}),
        json.dumps({"access_token": secret}),
        repr({"Authorization": f"Bearer {secret}"}),
        f"Authorization: Bearer {secret}\r\nHost: x",
        f"request failed for {secret}",
        f"request failed for {quote(secret, safe='')}",
        f"request failed for {quote_plus(secret)}",
        json.dumps({"detail": f"secret was {secret}"}),
    ]


def _chain(secret: str) -> BaseException:
    try:
        try:
            raise ValueError(f"token endpoint said: client_secret={secret}")
        except ValueError as inner:
            raise RuntimeError(f"auth failed while using {secret}") from inner
    except RuntimeError as outer:
        return outer


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=AZURE_SECRET, pad=PADDING)
def test_registered_secrets_are_redacted_wherever_and_however_they_are_embedded(
    secret: str, pad: str
) -> None:
    register_secret(secret)
    for context in _contexts(secret):
        text = f"{pad} {context} {pad}"
        cleaned = redact(text)
        for form in {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}:
            assert form not in cleaned or form in pad, (context, form)
    error = _chain(secret)
    assert secret not in safe_message(error)
    rendered = "".join(traceback.format_exception(error))
    assert secret in rendered  # the chain really carries it
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed: %s", (error,), (type(error), error, None)
    )
    RedactingFilter().filter(record)
    assert secret not in record.getMessage() and secret not in (record.exc_text or "")
    assert secret not in json.dumps(redact_value({"nested": [{"msg": rendered}], "client_secret": "x"}))


@settings(max_examples=60, deadline=None)
@given(header=B64URL, payload=B64URL, signature=B64URL, pad=PADDING)
def test_unregistered_jwts_and_bearer_tokens_are_redacted_by_shape(
    header: str, payload: str, signature: str, pad: str
) -> None:
    jwt = _jwt(header, payload, signature)
    for context in (
        f"assertion {jwt} end",
        json.dumps({"client_assertion": jwt}),
        f"https://x/?a=1&client_assertion={jwt}",
        f"Authorization: Bearer {jwt}",
        repr({"authorization": f"Bearer {jwt}"}),
        json.dumps({"token": jwt}),
        f"id_token={jwt}&state=1",
    ):
        cleaned = redact(f"{pad} {context} {pad}")
        assert jwt not in cleaned, context
