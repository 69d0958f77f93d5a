"""Resources: the inventory database and the registry. Secrets only through EnvVar."""

from __future__ import annotations

import functools
import os

import dagster as dg
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.migrate import assert_at_head
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.settings import (
    DATABASE_URL_ENV,
    REGISTRY_ENV,
    default_database_url,
    registry_path,
)
from tenantatlas_pipelines.registry import Registry, load_registry


@functools.lru_cache(maxsize=4)
def _engine(url: str) -> Engine:
    engine = make_engine(url)
    assert_at_head(engine)  # a clear "run `tenantatlas migrate`" instead of a missing-table error
    return engine


class InventoryDatabase(dg.ConfigurableResource):
    """The inventory database; the URL (it may hold a password) comes from an env var."""

    url: str

    def store(self) -> InventoryStore:
        return InventoryStore(_engine(self.url))


class RegistryResource(dg.ConfigurableResource):
    """The registry file of tenants and selections."""

    path: str

    def load(self) -> Registry:
        return load_registry(self.path)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources bound from the contract's env vars, falling back to the embedded defaults."""
    database_url: str | dg.EnvVar = (
        dg.EnvVar(DATABASE_URL_ENV) if os.environ.get(DATABASE_URL_ENV) else default_database_url()
    )
    registry: str | dg.EnvVar = (
        dg.EnvVar(REGISTRY_ENV) if os.environ.get(REGISTRY_ENV) else str(registry_path())
    )
    return {
        "database": InventoryDatabase(url=database_url),
        "registry": RegistryResource(path=registry),
    }
