"""Fixtures for the Dagster tests: an ephemeral instance, the demo registry, resources on a test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.demo import DEMO_SECRETS
from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in DEMO_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENANTATLAS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def resources(db_url: str, engine: object, demo_env: None) -> dict[str, dg.ConfigurableResource]:
    return {
        "database": InventoryDatabase(url=db_url),
        "registry": RegistryResource(path=str(DEMO_REGISTRY)),
    }


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(DEMO_REGISTRY.read_text())
    return path
