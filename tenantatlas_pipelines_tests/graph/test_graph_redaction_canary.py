"""Redaction canary: a planted client secret and every issued token appear in no error and no log.

Every error path runs once with the exact-value redaction registry switched
off (so the client itself must never put a secret into text) and once with
it on; a hostile server that echoes secrets back is caught by the registry.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator

import httpx
import pytest
from graphtest_support import (
    TENANT_ID,
    FakeClock,
    closed_port_url,
    collect_pages,
    expect_error,
    make_client,
    make_scenario,
    run,
)

from tenantatlas_pipelines.graph import GraphError, RetryPolicy, auth
from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.simulator.server import serve_loopback

TYPE_FAULTS: dict[str, Fault] = {
    "deviceCompliancePolicy": Fault(kind=FaultKind.FORBIDDEN, policy_type="deviceCompliancePolicy"),
    "deviceCategory": Fault(kind=FaultKind.NOT_FOUND, policy_type="deviceCategory"),
    "roleScopeTag": Fault(kind=FaultKind.BAD_REQUEST, policy_type="roleScopeTag"),
    "termsAndConditions": Fault(kind=FaultKind.THROTTLE, policy_type="termsAndConditions", retry_after=0.5),
    "notificationMessageTemplate": Fault(
        kind=FaultKind.UNAVAILABLE, policy_type="notificationMessageTemplate"
    ),
    "assignmentFilter": Fault(kind=FaultKind.GATEWAY_TIMEOUT, policy_type="assignmentFilter"),
    "mobileApp": Fault(kind=FaultKind.MALFORMED_JSON, policy_type="mobileApp", page=1),
    "securityIntent": Fault(kind=FaultKind.NOT_A_PAGE, policy_type="securityIntent"),
    "deviceHealthScript": Fault(kind=FaultKind.NEXTLINK_LOOP, policy_type="deviceHealthScript", page=1),
    "deviceShellScript": Fault(kind=FaultKind.FOREIGN_NEXTLINK, policy_type="deviceShellScript"),
    "deviceManagementScript": Fault(kind=FaultKind.UNAUTHORIZED, policy_type="deviceManagementScript"),
}
EXPECTED_CODES = {
    ErrorCode.GRAPH_FORBIDDEN,
    ErrorCode.GRAPH_NOT_FOUND,
    ErrorCode.GRAPH_BAD_REQUEST,
    ErrorCode.GRAPH_THROTTLED,
    ErrorCode.GRAPH_TRANSIENT,
    ErrorCode.GRAPH_INVALID_RESPONSE,
    ErrorCode.GRAPH_UNAUTHORIZED,
    ErrorCode.INTUNE_NOT_LICENSED,
    ErrorCode.AUTH_FAILED,
}


@pytest.fixture(params=["registry_off", "registry_on"])
def canary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh canary secret; with ``registry_off`` the client cannot lean on exact-value redaction."""
    if request.param == "registry_off":
        monkeypatch.setattr(auth, "register_secret", lambda value: None)
    return f"CANARY-{request.param}-{uuid.uuid4().hex}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def _error_texts(error: GraphError) -> Iterator[str]:
    for link in _chain(error):
        yield str(link)
        yield repr(link)
        yield repr(link.args)
        record = getattr(link, "record", None)
        if record is not None:
            yield repr(record)
            yield str(record.to_dict())
    yield "".join(traceback.format_exception(error))


def _log_texts(records: list[logging.LogRecord]) -> Iterator[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        yield record.getMessage()
        yield repr(record.args)
        yield formatter.format(record)


async def _list_every_type(sim: GraphSimulator, secret: str, errors: list[GraphError]) -> None:
    client = make_client(sim.transport(), secret=secret, clock=FakeClock())
    async with client:
        for key in CATALOG:
            try:
                await collect_pages(client, CATALOG[key])
            except GraphError as error:
                errors.append(error)


def test_no_secret_or_token_reaches_errors_or_logs(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "tenantatlas_pipelines"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[GraphError] = []
    counts = {k: 12 for k in CATALOG}
    tenant_faults = [Fault(kind=FaultKind.EXPIRE_TOKEN_AFTER, count=5)]

    sims = [
        GraphSimulator(
            make_scenario(
                counts, page_size=5, faults=[*TYPE_FAULTS.values(), *tenant_faults], client_secret=canary
            )
        ),
        GraphSimulator(
            make_scenario(counts, faults=[Fault(kind=FaultKind.UNLICENSED)], client_secret=canary)
        ),
        GraphSimulator(
            make_scenario(counts, faults=[Fault(kind=FaultKind.WRONG_SECRET)], client_secret=canary)
        ),
    ]
    for sim in sims:
        run(lambda sim=sim: _list_every_type(sim, canary, errors))  # type: ignore[misc]

    # timeouts and refused connections over real HTTP
    slow = Fault(kind=FaultKind.SLOW, policy_type="deviceCategory", delay_seconds=1.0)
    loop_sim = GraphSimulator(make_scenario(counts, faults=[slow], client_secret=canary))
    with serve_loopback(loop_sim) as base:
        timed_out = make_client(
            None, base_url=base, secret=canary, timeout=0.2, retry=RetryPolicy(max_attempts=2)
        )
        errors.append(run(lambda: expect_error(timed_out, CATALOG["deviceCategory"])))
        refused = make_client(
            None, base_url=closed_port_url(), login_url=base, secret=canary, retry=RetryPolicy(max_attempts=2)
        )
        errors.append(run(lambda: expect_error(refused, CATALOG["deviceCategory"])))
    sims.append(loop_sim)

    tokens = set().union(*(sim.issued_tokens for sim in sims))
    assert len(tokens) >= 4  # first tokens, the 401 refresh, the expiry refresh, the loopback ones
    assert {e.record.code for e in errors} == EXPECTED_CODES
    assert len(errors) >= len(TYPE_FAULTS) + 3
    assert caplog.records  # the client and httpx did log
    canaries = {canary, *tokens}
    for text in [*(t for e in errors for t in _error_texts(e)), *_log_texts(caplog.records)]:
        leaked = [c for c in canaries if c in text]
        assert not leaked, f"secret leaked into: {text[:300]}"
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None


def test_a_server_echoing_secrets_is_redacted_by_the_registry(caplog: pytest.LogCaptureFixture) -> None:
    """Hostile answers that quote the form and the Authorization header back."""
    caplog.set_level(logging.DEBUG)
    secret = f"CANARY-echo-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"

    def handler(request: httpx.Request) -> httpx.Response:
        if "/oauth2/" in request.url.path:
            form = request.content.decode()
            if "refuse" in form:
                return httpx.Response(400, json={"error": "invalid_client", "error_description": form})
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        echoed = f"you sent {request.headers['authorization']} and raw {token} with secret {secret}"
        return httpx.Response(403, json={"error": {"code": "Forbidden", "message": echoed}})

    async def forbidden() -> GraphError:
        return await expect_error(
            make_client(httpx.MockTransport(handler), base_url="http://graph.test", secret=secret),
            CATALOG["deviceCategory"],
        )

    errors = [run(forbidden)]
    refused = make_client(
        httpx.MockTransport(handler), base_url="http://graph.test", secret=secret + "-refuse"
    )
    errors.append(run(lambda: expect_error(refused, CATALOG["deviceCategory"])))
    assert [e.record.code for e in errors] == [ErrorCode.GRAPH_FORBIDDEN, ErrorCode.AUTH_FAILED]
    for text in [*(t for e in errors for t in _error_texts(e)), *_log_texts(caplog.records)]:
        assert secret not in text and token not in text, text[:300]
    assert TENANT_ID  # the tenant id is not a secret and may appear
