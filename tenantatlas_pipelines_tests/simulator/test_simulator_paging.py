"""Paging over every catalog type, in-process and over loopback HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulator_testkit import MODES, TENANT_A, base_url, connect, run, simulator, tenant

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator import IN_PROCESS_BASE_URL, items_for
from tenantatlas_pipelines.simulator.paging import Listing, Segment, collect
from tenantatlas_pipelines.simulator.population import Population

# counts around page boundaries (page size 7; settings catalog pages by 25)
COUNTS = {key: (i * 5) % 31 for i, key in enumerate(CATALOG)}
COUNTS["settingsCatalogPolicy"] = 60
COUNTS["deviceConfiguration"] = 15
COUNTS["windowsUpdateRing"] = 4


@pytest.mark.parametrize("mode", MODES)
def test_every_catalog_type_pages_each_item_exactly_once(mode: str) -> None:
    sim = simulator(tenant(item_counts=COUNTS, page_size=7))

    async def scenario(base: str | None) -> None:
        async with connect(sim, base) as ep:
            token = await ep.token()
            for policy_type in CATALOG:
                listed = await ep.list_type(token, policy_type)
                expected = [i["id"] for i in items_for(sim.scenario, sim.scenario.tenants[0], policy_type, 1)]
                assert listed.ids == expected, policy_type
                assert set(listed.ids) == sim.expected_item_ids(TENANT_A, policy_type)
                assert len(expected) == COUNTS[policy_type]
                assert listed.links[-1] is None

    with base_url(sim, mode) as base:
        run(scenario(base))


@pytest.mark.parametrize("mode", MODES)
def test_both_api_versions_serve_every_path(mode: str) -> None:
    sim = simulator(tenant(item_counts={"securityIntent": 3, "deviceCategory": 2}))

    async def scenario(base: str | None) -> None:
        async with connect(sim, base) as ep:
            token = await ep.token()
            for version in ("v1.0", "beta"):
                assert len((await ep.list_type(token, "securityIntent", version=version)).ids) == 3
                assert len((await ep.list_type(token, "deviceCategory", version=version)).ids) == 2

    with base_url(sim, mode) as base:
        run(scenario(base))


def test_settings_catalog_pages_by_25_whatever_the_page_size() -> None:
    sim = simulator(
        tenant(item_counts={"settingsCatalogPolicy": 60, "deviceCompliancePolicy": 60}, page_size=100)
    )

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            assert (await ep.list_type(token, "settingsCatalogPolicy")).page_sizes == [25, 25, 10]
            assert (await ep.list_type(token, "deviceCompliancePolicy")).page_sizes == [60]

    run(scenario())


def test_device_configurations_list_update_rings_unless_filtered() -> None:
    sim = simulator(tenant(item_counts={"deviceConfiguration": 10, "windowsUpdateRing": 3}))
    ring = "#microsoft.graph.windowsUpdateForBusinessConfiguration"

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            unfiltered = await ep.list_type(token, "deviceConfiguration")
            assert sum(1 for i in unfiltered.raw if i["@odata.type"] == ring) == 3
            assert len(unfiltered.items) == 10
            rings = await ep.list_type(token, "windowsUpdateRing")
            assert {i["@odata.type"] for i in rings.raw} == {ring}
            assert set(rings.ids) == sim.expected_item_ids(TENANT_A, "windowsUpdateRing")

    run(scenario())


def test_managed_app_policies_also_list_targeted_app_configurations() -> None:
    counts = {"appProtectionPolicy": 5, "targetedManagedAppConfiguration": 4}
    sim = simulator(tenant(item_counts=counts))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            listed = await ep.list_type(token, "appProtectionPolicy")
            targeted = await ep.list_type(token, "targetedManagedAppConfiguration")
            assert len(listed.raw) == 9 and len(listed.items) == 5
            extra = {i["id"] for i in listed.raw} - set(listed.ids)
            assert extra == set(targeted.ids)

    run(scenario())


def test_role_definitions_list_built_in_roles_unless_filtered() -> None:
    sim = simulator(tenant(item_counts={"roleDefinition": 3}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            custom = await ep.list_type(token, "roleDefinition")
            assert len(custom.ids) == 3 and not any(i["isBuiltIn"] for i in custom.raw)
            everything = await ep.list_type(token, "roleDefinition", params={})
            assert sum(1 for i in everything.raw if i["isBuiltIn"]) == 8
            assert set(custom.ids) < {i["id"] for i in everything.raw}

    run(scenario())


def test_mobile_apps_carry_the_icon_unless_select_leaves_it_out() -> None:
    sim = simulator(tenant(item_counts={"mobileApp": 5}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            selected = await ep.list_type(token, "mobileApp")
            full = await ep.list_type(token, "mobileApp", params={})
            assert all("largeIcon" in i for i in full.raw)
            assert all("largeIcon" not in i for i in selected.raw)
            wanted = set(CATALOG["mobileApp"].select) | {"@odata.type"}
            assert all(
                set(i) <= wanted and {"id", "displayName", "publisher"} <= set(i) for i in selected.raw
            )
            assert selected.ids == full.ids

    run(scenario())


def test_top_only_lowers_the_page_size_and_survives_in_next_links() -> None:
    sim = simulator(tenant(item_counts={"deviceCategory": 12}, page_size=5))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            assert (await ep.list_type(token, "deviceCategory", params={"$top": "3"})).page_sizes == [
                3,
                3,
                3,
                3,
            ]
            assert (await ep.list_type(token, "deviceCategory", params={"$top": "999"})).page_sizes == [
                5,
                5,
                2,
            ]
            bad = await ep.get("v1.0/deviceManagement/deviceCategories", token, {"$top": "zero"})
            assert bad.status_code == 400

    run(scenario())


def test_next_link_is_absolute_on_the_request_base_and_keeps_the_query() -> None:
    sim = simulator(tenant(item_counts={"windowsUpdateRing": 4}, page_size=2))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            listed = await ep.list_type(token, "windowsUpdateRing")
            link = listed.links[0]
            assert link is not None and link.startswith(
                f"{IN_PROCESS_BASE_URL}/v1.0/deviceManagement/deviceConfigurations?"
            )
            query = parse_qs(urlsplit(link).query)
            assert query["$filter"] == [CATALOG["windowsUpdateRing"].filter]
            assert query["$skiptoken"]
            assert listed.page_sizes == [2, 2]

    run(scenario())


def test_the_page_carries_odata_context() -> None:
    sim = simulator(tenant(item_counts={"mobileApp": 1}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            body = (
                await ep.get("v1.0/deviceAppManagement/mobileApps", token, {"$select": "id,displayName"})
            ).json()
            assert body["@odata.context"] == (
                f"{IN_PROCESS_BASE_URL}/v1.0/$metadata#deviceAppManagement/mobileApps(id,displayName)"
            )

    run(scenario())


def test_empty_type_answers_one_empty_page() -> None:
    sim = simulator(tenant())

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            body = (await ep.get("beta/deviceManagement/deviceShellScripts", token)).json()
            assert body["value"] == [] and "@odata.nextLink" not in body

    run(scenario())


@pytest.mark.parametrize(
    ("url", "params", "fragment"),
    [
        ("v1.0/deviceManagement/deviceCategories", {"$filter": "displayName eq 'x'"}, "filter"),
        ("v1.0/deviceManagement/deviceCategories", {"$skiptoken": "garbage!"}, "skiptoken"),
        ("v1.0/deviceManagement/deviceCategories", {"$skiptoken": "c2ltMTo5Ojk6OQ"}, "skiptoken"),
        ("v1.0/deviceManagement/unicorns", None, "unicorns"),
        ("v2.0/deviceManagement/deviceCategories", None, "version"),
    ],
)
def test_unknown_paths_filters_versions_and_skiptokens_are_bad_requests(
    url: str, params: dict[str, str] | None, fragment: str
) -> None:
    sim = simulator(tenant(item_counts={"deviceCategory": 2}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            response = await ep.get(url, token, params)
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["code"] == "BadRequest" and fragment in error["message"]

    run(scenario())


def test_served_items_are_exactly_items_for() -> None:
    sim = simulator(tenant(item_counts={"deviceConfiguration": 9, "conditionalAccessPolicy": 4}, page_size=4))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            for policy_type in ("deviceConfiguration", "conditionalAccessPolicy"):
                served = (await ep.list_type(token, policy_type)).items
                assert served == items_for(sim.scenario, sim.scenario.tenants[0], policy_type, 1)

    run(scenario())


def test_client_request_id_is_echoed_and_request_id_added() -> None:
    sim = simulator(tenant())

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            ok = await ep.get(
                "v1.0/deviceManagement/deviceCategories", token, None, **{"client-request-id": "c-1"}
            )
            assert ok.headers["client-request-id"] == "c-1" and ok.headers["request-id"]
            bad = await ep.get("v1.0/nowhere/x", token, None, **{"client-request-id": "c-2"})
            inner = bad.json()["error"]["innerError"]
            assert inner["client-request-id"] == "c-2" == bad.headers["client-request-id"]
            assert inner["request-id"] == bad.headers["request-id"] and inner["date"]

    run(scenario())


@settings(max_examples=80, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=3),
    limit=st.integers(1, 30),
    generation=st.integers(1, 4),
)
def test_collect_covers_every_alive_item_once_for_any_page_size(
    counts: list[int], limit: int, generation: int
) -> None:
    segments = tuple(
        Segment(
            f"t{i}", "deviceCategory", Population.of(1, TENANT_A, f"t{i}", base=n, removed=0.3, added=0.2)
        )
        for i, n in enumerate(counts)
    )
    listing = Listing("deviceCategory", segments)
    expected = [(s, k) for s, seg in enumerate(segments) for k in seg.population.alive_indices(generation)]
    seen: list[tuple[int, int]] = []
    cursor: tuple[int, int] | None = (0, 0)
    pages = 0
    while cursor is not None:
        page = collect(listing, generation, cursor, limit, lambda s, _seg, k: f"{s}:{k}")
        assert len(page.items) <= limit
        assert page.items or pages == 0  # only the first page may be empty
        seen += [(int(a), int(b)) for a, b in (item.split(":") for item in page.items)]
        cursor, pages = page.next_cursor, pages + 1
    assert seen == expected
