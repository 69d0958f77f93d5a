"""Every fault kind answers as documented; faults count, order and scope as documented."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from simulator_testkit import TENANT_A, Endpoint, connect, run, with_faults

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator import GraphSimulator, serve_loopback
from tenantatlas_pipelines.simulator import app as app_module

COUNTS = {"deviceConfiguration": 9, "mobileApp": 4, "conditionalAccessPolicy": 3, "deviceCategory": 2}


def _sim(*faults: dict[str, Any], page_size: int = 100) -> GraphSimulator:
    return with_faults(*faults, item_counts=COUNTS, page_size=page_size)


def _url(policy_type: str) -> str:
    row = CATALOG[policy_type]
    return f"{row.version}/{row.path}"


async def _get(ep: Endpoint, token: str, policy_type: str) -> httpx.Response:
    return await ep.get(_url(policy_type), token, CATALOG[policy_type].query_params() or None)


def _statuses(sim: GraphSimulator, policy_type: str, times: int) -> list[int]:
    async def scenario() -> list[int]:
        async with connect(sim) as ep:
            token = await ep.token()
            return [(await _get(ep, token, policy_type)).status_code for _ in range(times)]

    return run(scenario())


def _first(sim: GraphSimulator, policy_type: str) -> httpx.Response:
    async def scenario() -> httpx.Response:
        async with connect(sim) as ep:
            return await _get(ep, await ep.token(), policy_type)

    return run(scenario())


def test_forbidden_names_the_scopes_in_an_intune_nested_message() -> None:
    sim = _sim({"kind": "forbidden", "policy_type": "deviceConfiguration"})
    response = _first(sim, "deviceConfiguration")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "Forbidden"
    nested = json.loads(error["message"])
    assert {
        "_version",
        "Message",
        "CustomApiErrorPhrase",
        "RetryAfter",
        "ErrorSourceService",
        "HttpHeaders",
    } <= set(nested)
    assert (
        "Application must have one of the following scopes: DeviceManagementConfiguration.Read.All, "
        "DeviceManagementConfiguration.ReadWrite.All" in nested["Message"]
    )
    assert response.headers["request-id"] in nested["Message"]
    assert _statuses(sim, "mobileApp", 1) == [200]  # other types go on


@pytest.mark.parametrize(
    ("policy_type", "scope"),
    [
        ("conditionalAccessPolicy", "Policy.Read.All"),
        ("deviceManagementScript", "DeviceManagementScripts.Read.All"),
        ("mobileApp", "DeviceManagementApps.Read.All"),
        ("roleDefinition", "DeviceManagementRBAC.Read.All"),
        ("enrollmentConfiguration", "DeviceManagementServiceConfig.Read.All"),
    ],
)
def test_forbidden_scopes_follow_the_policy_type(policy_type: str, scope: str) -> None:
    response = _first(_sim({"kind": "forbidden", "policy_type": policy_type}), policy_type)
    assert response.status_code == 403
    assert f"following scopes: {scope}" in json.loads(response.json()["error"]["message"])["Message"]


def test_a_forever_fault_never_stops_and_a_counted_one_does() -> None:
    assert (
        _statuses(_sim({"kind": "forbidden", "policy_type": "deviceCategory"}), "deviceCategory", 4)
        == [403] * 4
    )
    counted = _sim({"kind": "forbidden", "policy_type": "deviceCategory", "count": 2})
    assert _statuses(counted, "deviceCategory", 4) == [403, 403, 200, 200]


def test_unauthorized_fault_answers_401_invalid_authentication_token() -> None:
    sim = _sim({"kind": "unauthorized", "count": 1})
    response = _first(sim, "deviceCategory")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert _statuses(sim, "deviceCategory", 1) == [200]


def test_unlicensed_tenant_answers_400_on_every_intune_path_but_not_on_conditional_access() -> None:
    sim = _sim({"kind": "unlicensed"})
    for policy_type in CATALOG:
        response = _first(sim, policy_type)
        if policy_type == "conditionalAccessPolicy":
            assert response.status_code == 200
            continue
        assert response.status_code == 400, policy_type
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("BadRequest", "Request not applicable to target tenant.")


def test_bad_request_and_not_found_faults() -> None:
    bad = _first(_sim({"kind": "bad_request", "policy_type": "mobileApp"}), "mobileApp")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    assert "not applicable" not in bad.json()["error"]["message"]
    missing = _first(_sim({"kind": "not_found", "policy_type": "mobileApp"}), "mobileApp")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"


@pytest.mark.parametrize(
    ("retry_after", "header"), [(2.128, "2.128"), (0.2, "0.2"), (3, "3"), ("soon", "soon")]
)
def test_throttle_storm_sends_retry_after_then_recovers(retry_after: float | str, header: str) -> None:
    sim = _sim({"kind": "throttle", "policy_type": "mobileApp", "count": 2, "retry_after": retry_after})

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            for _ in range(2):
                response = await _get(ep, token, "mobileApp")
                assert response.status_code == 429 and response.headers["retry-after"] == header
                error = response.json()["error"]
                assert error["code"] == "TooManyRequests"
                assert json.loads(error["message"])["RetryAfter"] == header
            assert (await _get(ep, token, "mobileApp")).status_code == 200

    run(scenario())


def test_throttle_with_http_date_sends_a_date_a_moment_ahead() -> None:
    response = _first(_sim({"kind": "throttle", "retry_after": "http-date"}), "mobileApp")
    assert response.status_code == 429
    ahead = parsedate_to_datetime(response.headers["retry-after"]).timestamp() - time.time()
    assert 0 < ahead <= 2.5


def test_throttle_without_retry_after_sends_no_header() -> None:
    response = _first(_sim({"kind": "throttle", "policy_type": "deviceConfiguration"}), "deviceConfiguration")
    assert response.status_code == 429 and "retry-after" not in response.headers


def test_conditional_access_429s_never_carry_retry_after() -> None:
    sim = _sim({"kind": "throttle", "retry_after": 1.5})
    ca = _first(sim, "conditionalAccessPolicy")
    assert ca.status_code == 429 and "retry-after" not in ca.headers
    assert _first(sim, "deviceCategory").headers["retry-after"] == "1.5"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("unavailable", 503, "ServiceUnavailable"), ("gateway_timeout", 504, "GatewayTimeout")],
)
def test_transient_faults_answer_for_count_requests(kind: str, status: int, code: str) -> None:
    sim = _sim({"kind": kind, "policy_type": "deviceCategory", "count": 3, "retry_after": 0.5})
    assert _statuses(sim, "deviceCategory", 4) == [status] * 3 + [200]
    sim.reset_faults()
    response = _first(sim, "deviceCategory")
    assert response.json()["error"]["code"] == code and response.headers["retry-after"] == "0.5"


def test_slow_fault_awaits_the_delay_count_times(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(app_module, "asyncio", SimpleNamespace(sleep=fake_sleep))
    sim = _sim({"kind": "slow", "policy_type": "deviceCategory", "count": 2, "delay_seconds": 7.5})
    assert _statuses(sim, "deviceCategory", 3) == [200, 200, 200]
    assert _statuses(sim, "mobileApp", 1) == [200]
    assert delays == [7.5, 7.5]


def test_slow_fault_makes_a_client_timeout_fire_over_http() -> None:
    sim = _sim({"kind": "slow", "policy_type": "deviceCategory", "count": 1, "delay_seconds": 0.6})

    async def scenario(base: str) -> None:
        async with connect(sim, base) as ep:
            token = await ep.token()
            with pytest.raises(httpx.ReadTimeout):
                await ep.client.get(
                    f"{base}/{_url('deviceCategory')}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=0.1,
                )
            assert (await _get(ep, token, "deviceCategory")).status_code == 200

    with serve_loopback(sim) as base:
        run(scenario(base))


def _pages(sim: GraphSimulator, policy_type: str, pages: int) -> list[httpx.Response]:
    """Follow nextLinks verbatim (also foreign or looping ones) for ``pages`` pages."""

    async def scenario() -> list[httpx.Response]:
        async with connect(sim) as ep:
            token = await ep.token()
            out = [await _get(ep, token, policy_type)]
            while len(out) < pages:
                link = out[-1].json().get("@odata.nextLink")
                if link is None:
                    break
                out.append(await ep.client.get(link, headers={"Authorization": f"Bearer {token}"}))
            return out

    return run(scenario())


def test_malformed_json_fault_breaks_the_chosen_page_only() -> None:
    sim = _sim({"kind": "malformed_json", "policy_type": "deviceConfiguration", "page": 1}, page_size=4)
    first, second = _pages(sim, "deviceConfiguration", 2)
    assert first.json()["value"]
    assert second.status_code == 200 and second.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(second.content)


def test_malformed_json_fault_with_a_count_recovers() -> None:
    sim = _sim({"kind": "malformed_json", "policy_type": "deviceCategory", "count": 1})
    with pytest.raises(json.JSONDecodeError):
        json.loads(_first(sim, "deviceCategory").content)
    assert _first(sim, "deviceCategory").json()["value"]


def test_not_a_page_fault_answers_json_without_value() -> None:
    body = _first(_sim({"kind": "not_a_page", "policy_type": "deviceCategory"}), "deviceCategory").json()
    assert isinstance(body, dict) and "value" not in body and "@odata.context" in body


def test_nextlink_loop_points_back_to_an_earlier_page() -> None:
    sim = _sim({"kind": "nextlink_loop", "policy_type": "deviceConfiguration", "page": 2}, page_size=2)
    pages = _pages(sim, "deviceConfiguration", 4)
    links = [p.json()["@odata.nextLink"] for p in pages[:3]]
    assert links[2] == links[0]  # page 2 sends the client back to page 1
    assert pages[3].json()["value"] == pages[1].json()["value"]


def test_nextlink_loop_on_the_first_page_points_to_itself() -> None:
    sim = _sim({"kind": "nextlink_loop", "policy_type": "deviceConfiguration", "page": 0}, page_size=4)
    first, again, third = _pages(sim, "deviceConfiguration", 3)
    assert again.json()["value"] == first.json()["value"]
    assert again.json()["@odata.nextLink"] == first.json()["@odata.nextLink"]
    assert third.json()["value"] == first.json()["value"]


def test_foreign_nextlink_fault_points_off_the_graph_host() -> None:
    sim = _sim({"kind": "foreign_nextlink", "policy_type": "deviceCategory"})
    link = _first(sim, "deviceCategory").json()["@odata.nextLink"]  # also on a last page
    assert link.startswith("https://evil.example.com/v1.0/deviceManagement/deviceCategories?")


def test_repeated_item_fault_repeats_the_last_item_of_the_page_on_the_next() -> None:
    sim = _sim({"kind": "repeated_item", "policy_type": "deviceConfiguration", "page": 1}, page_size=3)
    pages = _pages(sim, "deviceConfiguration", 10)
    values = [p.json()["value"] for p in pages]
    assert values[1][-1]["id"] == values[2][0]["id"]
    ids = [item["id"] for page in values for item in page]
    assert len(ids) == len(set(ids)) + 1
    excluded = CATALOG["deviceConfiguration"].exclude_odata_types
    served = {i["id"] for page in values for i in page if i["@odata.type"] not in excluded}
    assert served == sim.expected_item_ids(TENANT_A, "deviceConfiguration")


def test_item_without_id_strips_one_item_per_type() -> None:
    sim = _sim({"kind": "item_without_id"})
    for policy_type in ("deviceCategory", "mobileApp", "conditionalAccessPolicy"):
        items = _first(sim, policy_type).json()["value"]
        assert sum(1 for i in items if "id" not in i) == 1, policy_type
        served = {i["id"] for i in items if "id" in i}
        assert served == sim.expected_item_ids(TENANT_A, policy_type)
        assert len(served) == COUNTS[policy_type] - 1


def test_item_without_id_with_a_count_heals_and_expected_ids_follow() -> None:
    sim = _sim({"kind": "item_without_id", "policy_type": "deviceCategory", "count": 1})
    assert len(sim.expected_item_ids(TENANT_A, "deviceCategory")) == 1
    assert any("id" not in i for i in _first(sim, "deviceCategory").json()["value"])
    assert all("id" in i for i in _first(sim, "deviceCategory").json()["value"])
    assert len(sim.expected_item_ids(TENANT_A, "deviceCategory")) == 2


def test_expired_tokens_are_refused_after_count_requests_and_a_fresh_token_works() -> None:
    sim = _sim({"kind": "expire_token_after", "count": 3})

    async def scenario() -> None:
        async with connect(sim) as ep:
            old = await ep.token()
            assert [(await _get(ep, old, "deviceCategory")).status_code for _ in range(3)] == [200] * 3
            refused = await _get(ep, old, "deviceCategory")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
            assert (await _get(ep, old, "deviceCategory")).status_code == 401
            fresh = await ep.token()
            assert [(await _get(ep, fresh, "deviceCategory")).status_code for _ in range(6)] == [200] * 6

    run(scenario())


def test_faults_fire_in_scenario_order_and_the_first_wins() -> None:
    sim = _sim(
        {"kind": "throttle", "policy_type": "deviceCategory", "count": 1},
        {"kind": "forbidden", "policy_type": "deviceCategory", "count": 1},
    )
    assert _statuses(sim, "deviceCategory", 3) == [429, 403, 200]


def test_update_ring_faults_hit_only_the_filtered_listing() -> None:
    sim = _sim({"kind": "forbidden", "policy_type": "windowsUpdateRing"})
    assert _first(sim, "windowsUpdateRing").status_code == 403
    assert _first(sim, "deviceConfiguration").status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_graph_refuses_every_write_even_with_a_valid_token(method: str) -> None:
    sim = _sim()

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            for path in (_url("deviceCategory"), "v1.0/$batch", f"{_url('deviceCategory')}/some-id"):
                response = await ep.client.request(
                    method, f"{ep.base}/{path}", headers={"Authorization": f"Bearer {token}"}, json={"a": 1}
                )
                assert response.status_code == 405, path
                assert response.headers["allow"] == "GET"
                assert response.json()["error"]["code"] == "MethodNotAllowed"

    run(scenario())
