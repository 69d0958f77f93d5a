"""Listing against the in-process simulator: completeness, exclusions, $select, headers, paging."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from graphtest_support import (
    TENANT_ID,
    RecordingTransport,
    collect_pages,
    list_all,
    make_client,
    make_scenario,
    run,
)

from tenantatlas_pipelines.graph.client import ACCEPT
from tenantatlas_pipelines.inventory.catalog import CATALOG, POLICY_TYPE_KEYS
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind

SCENARIO = make_scenario({k: 23 for k in CATALOG}, page_size=10)


@pytest.mark.parametrize("key", POLICY_TYPE_KEYS)
def test_every_catalog_type_is_listed_completely_each_item_once(key: str) -> None:
    sim = GraphSimulator(SCENARIO)
    items = run(lambda: list_all(make_client(sim.transport()), CATALOG[key]))
    ids = [item["id"] for item in items]
    assert Counter(ids).most_common(1)[0][1] == 1
    assert set(ids) == sim.expected_item_ids(TENANT_ID, key)
    assert len(ids) == 23


def test_update_rings_are_excluded_from_device_configurations() -> None:
    sim = GraphSimulator(SCENARIO)

    async def body() -> tuple[list[dict[str, object]], int]:
        client = make_client(sim.transport())
        async with client:
            pages = await collect_pages(client, CATALOG["deviceConfiguration"])
        return [i for p in pages for i in p.items], sum(p.excluded for p in pages)

    items, excluded = run(body)
    ring = "#microsoft.graph.windowsUpdateForBusinessConfiguration"
    assert excluded == 23  # the simulator serves the rings after the configurations
    assert all(item.get("@odata.type") != ring for item in items)
    assert not {i["id"] for i in items} & sim.expected_item_ids(TENANT_ID, "windowsUpdateRing")


def test_targeted_app_configurations_are_excluded_from_app_protection() -> None:
    sim = GraphSimulator(SCENARIO)
    items = run(lambda: list_all(make_client(sim.transport()), CATALOG["appProtectionPolicy"]))
    assert all(i.get("@odata.type") != "#microsoft.graph.targetedManagedAppConfiguration" for i in items)
    assert {i["id"] for i in items} == sim.expected_item_ids(TENANT_ID, "appProtectionPolicy")


def test_mobile_apps_are_listed_with_select_and_without_large_icons() -> None:
    sim = GraphSimulator(SCENARIO)
    transport = RecordingTransport(sim.transport())
    items = run(lambda: list_all(make_client(transport), CATALOG["mobileApp"]))
    assert items and all("largeIcon" not in item for item in items)
    assert all("displayName" in item for item in items)
    first_graph_url = next(url for url, _ in transport.requests if "/v1.0/" in url.path)
    assert first_graph_url.params["$select"].split(",")[:2] == ["id", "displayName"]


def test_filters_from_the_catalog_are_sent() -> None:
    sim = GraphSimulator(SCENARIO)
    transport = RecordingTransport(sim.transport())
    run(lambda: list_all(make_client(transport), CATALOG["roleDefinition"]))
    graph = [url for url, _ in transport.requests if "roleDefinitions" in url.path]
    assert graph[0].params["$filter"] == "isBuiltIn eq false"


def test_requests_carry_accept_client_request_id_and_bearer_token() -> None:
    sim = GraphSimulator(SCENARIO)
    transport = RecordingTransport(sim.transport())
    run(lambda: list_all(make_client(transport), CATALOG["deviceCategory"]))
    graph = [headers for url, headers in transport.requests if "/oauth2/" not in url.path]
    assert len(graph) == 3  # 23 items, 10 per page
    assert all(h["accept"] == ACCEPT for h in graph)
    ids = [h["client-request-id"] for h in graph]
    assert len(set(ids)) == len(ids)
    token = next(iter(sim.issued_tokens))
    assert all(h["authorization"] == f"Bearer {token}" for h in graph)


def test_only_get_requests_reach_graph_and_one_token_is_fetched() -> None:
    sim = GraphSimulator(SCENARIO)

    async def body() -> None:
        client = make_client(sim.transport())
        async with client:
            for key in ("deviceCategory", "roleScopeTag", "mobileApp"):
                await collect_pages(client, CATALOG[key])
            assert client.request_count == 9 and client.retry_count == 0

    run(body)
    methods = Counter((r.method, "/oauth2/" in r.path) for r in sim.stats.records)
    assert methods == {("GET", False): 9, ("POST", True): 1}
    assert len(sim.issued_tokens) == 1


def test_pages_are_numbered_and_may_be_empty() -> None:
    sim = GraphSimulator(make_scenario({"deviceCategory": 20, "roleScopeTag": 0}, page_size=10))

    async def body() -> tuple[list[int], list[int]]:
        client = make_client(sim.transport())
        async with client:
            full = await collect_pages(client, CATALOG["deviceCategory"])
            empty = await collect_pages(client, CATALOG["roleScopeTag"])
        return [p.page_number for p in full], [len(p.items) for p in empty]

    assert run(body) == ([1, 2], [0])


def test_repeated_items_are_passed_on_not_deduplicated() -> None:
    fault = Fault(kind=FaultKind.REPEATED_ITEM, policy_type="deviceCategory", page=0, count=1)
    sim = GraphSimulator(make_scenario({"deviceCategory": 25}, faults=[fault]))
    items = run(lambda: list_all(make_client(sim.transport()), CATALOG["deviceCategory"]))
    ids = [i["id"] for i in items]
    assert len(ids) == 26 and set(ids) == sim.expected_item_ids(TENANT_ID, "deviceCategory")


def test_items_without_id_are_passed_on_for_the_sync_to_refuse() -> None:
    fault = Fault(kind=FaultKind.ITEM_WITHOUT_ID, policy_type="deviceCategory", count=1)
    sim = GraphSimulator(make_scenario({"deviceCategory": 15}, faults=[fault]))
    expected = sim.expected_item_ids(TENANT_ID, "deviceCategory")
    items = run(lambda: list_all(make_client(sim.transport()), CATALOG["deviceCategory"]))
    assert len(items) == 15
    assert [i for i in items if "id" not in i] and {i["id"] for i in items if "id" in i} == expected


def test_pages_are_yielded_as_they_arrive() -> None:
    sim = GraphSimulator(make_scenario({"deviceCategory": 50}, page_size=10))

    async def body() -> list[int]:
        client = make_client(sim.transport())
        seen: list[int] = []
        async with client:
            async for _page in client.list_pages(CATALOG["deviceCategory"]):
                seen.append(sim.stats.total)  # requests made by the time each page is handed over
        return seen

    assert run(body) == [2, 3, 4, 5, 6]  # token + page 1, then one request per page


def test_several_types_can_be_listed_concurrently_on_one_client() -> None:
    sim = GraphSimulator(SCENARIO)
    keys = ["deviceCategory", "mobileApp", "settingsCatalogPolicy", "conditionalAccessPolicy"]

    async def body() -> dict[str, set[str]]:
        client = make_client(sim.transport())
        async with client:
            results = await asyncio.gather(*(collect_pages(client, CATALOG[k]) for k in keys))
        return {k: {i["id"] for p in pages for i in p.items} for k, pages in zip(keys, results, strict=True)}

    got = run(body)
    assert got == {k: sim.expected_item_ids(TENANT_ID, k) for k in keys}
    assert len(sim.issued_tokens) == 1  # single-flight token fetch


def test_listing_before_opening_is_a_clear_error() -> None:
    client = make_client(httpx.MockTransport(lambda r: httpx.Response(200)))

    async def body() -> None:
        await collect_pages(client, CATALOG["deviceCategory"])

    with pytest.raises(RuntimeError, match="async with"):
        run(body)
