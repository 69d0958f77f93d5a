"""Build the Graph client of one tenant for one run.

Tenants on cloud ``simulated`` without endpoint overrides are served by the
in-process Graph simulator (the demo scenario unless
``TENANTATLAS_SIMULATOR_SCENARIO`` names another), at the generation kept in
``.tenantatlas/simulator_generation`` (``tenantatlas simulator advance``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tenantatlas_pipelines.graph.auth import ClientSecretCredential
from tenantatlas_pipelines.graph.client import GraphClient
from tenantatlas_pipelines.graph.clouds import endpoints_for
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


def graph_factory(simulator: GraphSimulator | None = None, **client_options: Any) -> GraphFactory:
    """A GraphFactory; ``simulator`` serves tenants on cloud ``simulated`` (default: the process's)."""

    @asynccontextmanager
    async def open_client(tenant_key: str, tenant: TenantEntry) -> AsyncIterator[GraphClient]:
        credential = ClientSecretCredential(tenant.client_id, read_secret(tenant_key, tenant))
        transport: httpx.AsyncBaseTransport | None = None
        graph_endpoint, login_endpoint = tenant.graph_endpoint, tenant.login_endpoint
        if tenant.cloud == "simulated" and graph_endpoint is None:
            transport = (simulator or simulator_for_process()).transport()
            graph_endpoint = login_endpoint = SIMULATED_BASE
        endpoints = endpoints_for(tenant.cloud, graph_endpoint=graph_endpoint, login_endpoint=login_endpoint)
        async with GraphClient(
            tenant_id=tenant.tenant_id,
            credential=credential,
            endpoints=endpoints,
            transport=transport,
            **client_options,
        ) as client:
            yield client

    return open_client


graph_client_for = graph_factory()
"""The default GraphFactory: over the network, or the process's in-process simulator."""
