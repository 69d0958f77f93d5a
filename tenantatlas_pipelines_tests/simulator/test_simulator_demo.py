"""The bundled demo scenario behaves as the demo narrates it."""

from __future__ import annotations

from simulator_testkit import connect, run

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator import GraphSimulator, Scenario, demo_scenario_path

CONTOSO, FABRIKAM, NORTHWIND = (
    "0f6a1c2e-4b5d-4e8f-9a01-23456789abcd",
    "1b7e2d3f-5c6a-4f90-8b12-3456789abcde",
    "2c8f3e40-6d7b-4a01-9c23-456789abcdef",
)


def _first_statuses(sim: GraphSimulator, tenant_id: str, attempts: int = 1) -> dict[str, list[int]]:
    async def scenario() -> dict[str, list[int]]:
        async with connect(sim) as ep:
            token = await ep.token(sim.scenario.tenant(tenant_id))
            out: dict[str, list[int]] = {}
            for key, row in CATALOG.items():
                url = f"{row.version}/{row.path}"
                out[key] = [
                    (await ep.get(url, token, row.query_params() or None)).status_code
                    for _ in range(attempts)
                ]
            return out

    return run(scenario())


def test_contoso_answers_every_type() -> None:
    sim = GraphSimulator(Scenario.from_yaml(demo_scenario_path()))
    assert all(codes == [200] for codes in _first_statuses(sim, CONTOSO).values())


def test_fabrikam_forbids_conditional_access_and_scripts_only() -> None:
    sim = GraphSimulator(Scenario.from_yaml(demo_scenario_path()))
    statuses = _first_statuses(sim, FABRIKAM)
    forbidden = {key for key, codes in statuses.items() if codes == [403]}
    assert forbidden == {"conditionalAccessPolicy", "deviceManagementScript"}
    assert all(codes == [200] for key, codes in statuses.items() if key not in forbidden)


def test_northwind_storm_passes_after_a_few_throttled_attempts() -> None:
    sim = GraphSimulator(Scenario.from_yaml(demo_scenario_path()))
    statuses = _first_statuses(sim, NORTHWIND, attempts=4)
    assert statuses["mobileApp"] == [429, 429, 429, 200]
    assert statuses["deviceConfiguration"] == [429, 429, 200, 200]
    assert all(
        codes == [200] * 4
        for key, codes in statuses.items()
        if key not in {"mobileApp", "deviceConfiguration"}
    )
    retry_after = [r.status for r in sim.stats.records if r.status == 429]
    assert len(retry_after) == 5
