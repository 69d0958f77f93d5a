"""Generations: between two runs some items are removed and some added, deterministically."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulator_testkit import TENANT_A, connect, run, simulator, tenant

from tenantatlas_pipelines.simulator import Scenario, items_for
from tenantatlas_pipelines.simulator.population import Population


def _ids(scenario: Scenario, policy_type: str, generation: int) -> set[str]:
    t = scenario.tenants[0]
    return {i["id"] for i in items_for(scenario, t, policy_type, generation)}


def test_each_later_generation_removes_about_the_fraction_and_adds_new_items() -> None:
    scenario = Scenario(tenants=[tenant(item_counts={"deviceConfiguration": 1000})])
    gen1, gen2 = _ids(scenario, "deviceConfiguration", 1), _ids(scenario, "deviceConfiguration", 2)
    removed, added = gen1 - gen2, gen2 - gen1
    assert 95 <= len(removed) <= 105  # 10 % of 1000, low-discrepancy: close to exact
    assert len(added) == 50  # round(1000 * 0.05)


def test_small_types_lose_items_too() -> None:
    scenario = Scenario(tenants=[tenant(item_counts={"mobileApp": 40})])
    gen1, gen2 = _ids(scenario, "mobileApp", 1), _ids(scenario, "mobileApp", 2)
    assert 3 <= len(gen1 - gen2) <= 5
    assert len(gen2 - gen1) == 2


def test_generations_are_deterministic() -> None:
    def make() -> Scenario:
        return Scenario(seed=7, tenants=[tenant(item_counts={"deviceCompliancePolicy": 300})])

    for generation in (1, 2, 5):
        assert _ids(make(), "deviceCompliancePolicy", generation) == _ids(
            make(), "deviceCompliancePolicy", generation
        )


def test_a_removed_item_never_comes_back() -> None:
    scenario = Scenario(tenants=[tenant(item_counts={"roleScopeTag": 500})])
    seen_gone: set[str] = set()
    previous = _ids(scenario, "roleScopeTag", 1)
    for generation in range(2, 8):
        current = _ids(scenario, "roleScopeTag", generation)
        assert not (current & seen_gone)
        seen_gone |= previous - current
        previous = current


def test_zero_rates_keep_the_item_set_stable() -> None:
    t = tenant(item_counts={"assignmentFilter": 50}, removed_per_generation=0.0, added_per_generation=0.0)
    scenario = Scenario(tenants=[t])
    assert _ids(scenario, "assignmentFilter", 1) == _ids(scenario, "assignmentFilter", 9)


def test_full_removal_replaces_everything_each_generation() -> None:
    t = tenant(item_counts={"deviceCategory": 20}, removed_per_generation=1.0, added_per_generation=0.5)
    scenario = Scenario(tenants=[t])
    gen1, gen2 = _ids(scenario, "deviceCategory", 1), _ids(scenario, "deviceCategory", 2)
    assert gen1.isdisjoint(gen2) and len(gen2) == 10


def test_new_items_are_created_after_the_first_generation_items() -> None:
    scenario = Scenario(tenants=[tenant(item_counts={"deviceConfiguration": 100})])
    t = scenario.tenants[0]
    first = items_for(scenario, t, "deviceConfiguration", 1)
    later = items_for(scenario, t, "deviceConfiguration", 3)
    newest = max(i["createdDateTime"] for i in first)
    new_ids = {i["id"] for i in later} - {i["id"] for i in first}
    assert new_ids and all(i["createdDateTime"] > newest for i in later if i["id"] in new_ids)


def test_advance_changes_what_the_server_lists() -> None:
    sim = simulator(tenant(item_counts={"deviceConfiguration": 120}))

    async def scenario() -> None:
        async with connect(sim) as ep:
            token = await ep.token()
            before = set((await ep.list_type(token, "deviceConfiguration")).ids)
            assert before == sim.expected_item_ids(TENANT_A, "deviceConfiguration")
            sim.advance()
            after = (await ep.list_type(token, "deviceConfiguration")).ids
            assert sim.generation == 2
            assert set(after) == sim.expected_item_ids(TENANT_A, "deviceConfiguration")
            assert len(after) == len(set(after))
            assert before - set(after) and set(after) - before

    run(scenario())


def test_a_simulator_can_start_at_a_later_generation() -> None:
    t = tenant(item_counts={"mobileApp": 60})
    sim = simulator(t, generation=3)
    assert sim.expected_item_ids(TENANT_A, "mobileApp") == _ids(sim.scenario, "mobileApp", 3)
    with pytest.raises(ValueError):
        simulator(t, generation=0)


def test_advance_refuses_going_back() -> None:
    sim = simulator()
    with pytest.raises(ValueError):
        sim.advance(-1)


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(0, 300),
    removed=st.floats(0.0, 1.0),
    added=st.floats(0.0, 1.0),
    generation=st.integers(1, 6),
)
def test_alive_items_are_born_and_not_yet_dead(
    base: int, removed: float, added: float, generation: int
) -> None:
    population = Population.of(42, TENANT_A, "deviceConfiguration", base=base, removed=removed, added=added)
    alive = list(population.alive_indices(generation))
    assert alive == sorted(set(alive))
    for k in range(population.span(generation)):
        died = population.death(k)
        expected = population.birth(k) <= generation and (died is None or generation < died)
        assert (k in alive) == expected
        if died is not None:
            assert died > population.birth(k)
    if generation == 1:
        assert alive == list(range(base))
