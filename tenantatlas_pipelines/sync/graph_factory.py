"""Build the Graph client of one tenant for one run.

Tenants on cloud ``simulated`` without endpoint overrides are served by the
in-process Graph simulator (the demo scenario unless
``TENANTATLAS_SIMULATOR_SCENARIO`` names another), at the generation kept in
``.tenantatlas/simulator_generation`` (``tenantatlas simulator advance``).

Every client takes its tenant's limiter from a ``GraphBudget`` (graph/limits.py). In a
deployment that is ``graph_budget_for(engine)``: the budget kept in the inventory
database, so every run and process of the deployment shares one Graph budget per tenant
(``deployment_graph_factory(engine)`` is the GraphFactory on it). Without one,
``graph_factory`` uses ``IN_PROCESS_BUDGET``, shared by the clients of this process only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.graph_budget import DatabaseBudgetLedger
from tenantatlas_pipelines.graph.auth import ClientSecretCredential
from tenantatlas_pipelines.graph.client import GraphClient
from tenantatlas_pipelines.graph.clouds import endpoints_for
from tenantatlas_pipelines.graph.limits import GraphBudget
from tenantatlas_pipelines.inventory.settings import DEMO_SCENARIO, state_dir
from tenantatlas_pipelines.registry import TenantEntry, read_secret
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Scenario
from tenantatlas_pipelines.sync.service import GraphFactory

SCENARIO_ENV = "TENANTATLAS_SIMULATOR_SCENARIO"
SIMULATED_BASE = "http://graph.simulator.invalid"


def generation_file() -> Path:
    return state_dir() / "simulator_generation"


def simulator_generation() -> int:
    try:
        return max(1, int(generation_file().read_text().strip()))
    except (FileNotFoundError, ValueError):
        return 1


def set_simulator_generation(generation: int) -> None:
    path = generation_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{generation}\n")


@functools.lru_cache(maxsize=8)
def _simulator(scenario_path: str, generation: int) -> GraphSimulator:
    return GraphSimulator(Scenario.from_yaml(Path(scenario_path)), generation=generation)


def simulator_for_process(environ: Mapping[str, str] | None = None) -> GraphSimulator:
    env = os.environ if environ is None else environ
    return _simulator(env.get(SCENARIO_ENV) or str(DEMO_SCENARIO), simulator_generation())


IN_PROCESS_BUDGET = GraphBudget()
"""The Graph budget of this process alone (an in-memory ledger): tests, a single process."""


def database_graph_budget(engine: Engine, **settings: Any) -> GraphBudget:
    """A Graph budget kept in the inventory database of ``engine`` (``settings``: GraphBudget's)."""
    return GraphBudget(DatabaseBudgetLedger(engine), **settings)


@functools.lru_cache(maxsize=8)
def graph_budget_for(engine: Engine) -> GraphBudget:
    """The process's Graph budget in the database of ``engine`` (one per engine, default limits)."""
    return database_graph_budget(engine)


@functools.lru_cache(maxsize=8)
def deployment_graph_factory(engine: Engine) -> GraphFactory:
    """The GraphFactory of a deployment: every client takes its tenant's budget from the database."""
    return graph_factory(budget=graph_budget_for(engine))


def graph_factory(
    simulator: GraphSimulator | None = None, *, budget: GraphBudget | None = None, **client_options: Any
) -> GraphFactory:
    """A GraphFactory; ``simulator`` serves tenants on cloud ``simulated`` (default: the process's).

    Each client's limiter is its tenant's in ``budget`` (default ``IN_PROCESS_BUDGET``),
    unless ``client_options`` names a ``limiter``.
    """
    shared = budget or IN_PROCESS_BUDGET

    @asynccontextmanager
    async def open_client(tenant_key: str, tenant: TenantEntry) -> AsyncIterator[GraphClient]:
        credential = ClientSecretCredential(tenant.client_id, read_secret(tenant_key, tenant))
        transport: httpx.AsyncBaseTransport | None = None
        graph_endpoint, login_endpoint = tenant.graph_endpoint, tenant.login_endpoint
        if tenant.cloud == "simulated" and graph_endpoint is None:
            transport = (simulator or simulator_for_process()).transport()
            graph_endpoint = login_endpoint = SIMULATED_BASE
        endpoints = endpoints_for(tenant.cloud, graph_endpoint=graph_endpoint, login_endpoint=login_endpoint)
        options = dict(client_options)
        if "limiter" not in options:
            options["limiter"] = shared.limiter(tenant.tenant_id)
        async with GraphClient(
            tenant_id=tenant.tenant_id,
            credential=credential,
            endpoints=endpoints,
            transport=transport,
            **options,
        ) as client:
            yield client

    return open_client


graph_client_for = graph_factory()
"""The default GraphFactory: over the network, or the process's in-process simulator; the
Graph budget of this process only (a deployment uses ``deployment_graph_factory``)."""
