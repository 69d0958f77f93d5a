"""error_from_response: status + code mapping, Intune JSON-in-message, safe records."""

from __future__ import annotations

import json

import httpx
import pytest

from tenantatlas_pipelines.graph.errors import (
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
    parse_scopes,
)
from tenantatlas_pipelines.inventory.errors import ErrorCode

URL = "https://graph.microsoft.com/beta/deviceManagement/intents?$select=id&$skiptoken=abc"


def _response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers, request=httpx.Request("GET", URL))


def _graph_body(code: str, message: str) -> dict[str, object]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "request-id": "11111111-2222-3333-4444-555555555555",
                "client-request-id": "66666666-7777-8888-9999-000000000000",
                "date": "2025-03-01T12:00:00",
            },
        }
    }


def _intune_wrapped(text: str) -> str:
    return json.dumps(
        {
            "_version": 3,
            "Message": f"{text} - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000",
            "CustomApiErrorPhrase": "",
            "RetryAfter": None,
            "ErrorSourceService": "",
            "HttpHeaders": "{}",
        }
    )


@pytest.mark.parametrize(
    ("status", "code", "cls", "fatal"),
    [
        (400, "BadRequest", GraphBadRequest, False),
        (401, "InvalidAuthenticationToken", GraphUnauthorized, True),
        (403, "Forbidden", GraphForbidden, False),
        (404, "ResourceNotFound", GraphNotFound, False),
        (405, "MethodNotAllowed", GraphBadRequest, False),
        (429, "TooManyRequests", GraphThrottled, False),
        (500, "InternalServerError", GraphTransient, False),
        (503, "ServiceUnavailable", GraphTransient, False),
        (504, "GatewayTimeout", GraphTransient, False),
        (302, "Found", GraphInvalidResponse, False),
    ],
)
def test_status_maps_to_its_error_class_and_scope(
    status: int, code: str, cls: type[GraphError], fatal: bool
) -> None:
    error = error_from_response(_response(status, _graph_body(code, "something")), "securityIntent")
    assert type(error) is cls
    assert error.tenant_fatal is fatal
    assert error.record.code == cls.code
    assert error.record.status == status
    assert error.record.policy_type == "securityIntent"


def test_record_keeps_ids_and_path_without_query() -> None:
    error = error_from_response(_response(404, _graph_body("ResourceNotFound", "no route")), "securityIntent")
    record = error.record
    assert record.code is ErrorCode.GRAPH_NOT_FOUND
    assert record.graph_code == "ResourceNotFound"
    assert record.request_id == "11111111-2222-3333-4444-555555555555"
    assert record.client_request_id == "66666666-7777-8888-9999-000000000000"
    assert record.date == "2025-03-01T12:00:00"
    assert record.path == "/beta/deviceManagement/intents"
    assert "skiptoken" not in str(error) and "abc" not in (record.path or "")
    assert "request-id 11111111" in str(error)


def test_request_ids_fall_back_to_response_headers() -> None:
    headers = {
        "request-id": "rid-from-header",
        "client-request-id": "crid",
        "Date": "Sat, 01 Mar 2025 12:00:00 GMT",
    }
    error = error_from_response(_response(503, "<html>busy</html>", headers), None)
    assert (error.record.request_id, error.record.client_request_id) == ("rid-from-header", "crid")
    assert error.record.date == "Sat, 01 Mar 2025 12:00:00 GMT"
    assert error.record.message  # reason phrase, not the html body
    assert "<html>" not in error.record.message


def test_intune_json_inside_message_is_unwrapped() -> None:
    body = _graph_body("BadRequest", _intune_wrapped("Invalid filter clause"))
    error = error_from_response(_response(400, body), "securityIntent")
    assert isinstance(error, GraphBadRequest)
    assert error.record.message.startswith("Invalid filter clause")
    assert "_version" not in error.record.message


def test_request_not_applicable_to_target_tenant_is_not_licensed_and_tenant_fatal() -> None:
    body = _graph_body("BadRequest", _intune_wrapped("Request not applicable to target tenant."))
    error = error_from_response(_response(400, body), "deviceConfiguration")
    assert isinstance(error, NotLicensedError)
    assert error.record.code is ErrorCode.INTUNE_NOT_LICENSED
    assert error.tenant_fatal is True


def test_forbidden_keeps_the_scopes_graph_asked_for() -> None:
    message = (
        "Application is not authorized to perform this operation. Application must have one of the "
        "following scopes: DeviceManagementConfiguration.Read.All, "
        "DeviceManagementConfiguration.ReadWrite.All"
        " - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - Activity ID: x"
    )
    error = error_from_response(_response(403, _graph_body("Forbidden", _intune_wrapped(message))), "x")
    assert isinstance(error, GraphForbidden)
    assert error.record.scopes == [
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementConfiguration.ReadWrite.All",
    ]
    assert "DeviceManagementConfiguration.Read.All" in str(error)


def test_parse_scopes_ignores_text_without_scopes() -> None:
    assert parse_scopes("Insufficient privileges to complete the operation.") == []
    assert parse_scopes("must have one of the following scopes: Policy.Read.All") == ["Policy.Read.All"]


def test_messages_are_redacted_and_truncated() -> None:
    secret = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2ln"
    body = _graph_body("BadRequest", f"echo {secret} " + "x" * 5000)
    error = error_from_response(_response(400, body), None)
    assert "eyJ" not in str(error) and "eyJ" not in error.record.message
    assert len(error.record.message) <= 500
    assert "x" * 5000 not in repr(error)


def test_non_json_or_odd_bodies_do_not_break_the_mapping() -> None:
    for body in ["not json", "[1, 2]", {"error": "flat"}, {"error": {"code": 5, "message": ["x"]}}]:
        error = error_from_response(_response(400, body), None)
        assert isinstance(error, GraphBadRequest)
        assert error.record.graph_code is None


def test_errors_pickle_from_their_safe_record() -> None:
    import pickle

    error = error_from_response(_response(403, _graph_body("Forbidden", "scopes: Policy.Read.All")), "x")
    error.tenant_fatal = True
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is GraphForbidden and str(copy) == str(error)
    assert copy.record == error.record and copy.tenant_fatal is True
