"""The scenario: which tenants the simulator serves, their items and their faults.

A scenario is plain data (pydantic v2, unknown keys refused) and loads from
YAML. ``items_for`` gives the objects of one policy type in one generation,
exactly as the simulator serves them (without faults and without ``$select``).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator.population import Population
from tenantatlas_pipelines.simulator.render import build_item
from tenantatlas_pipelines.simulator.shapes import SETTINGS_CATALOG_PAGE_SIZE

MAX_PAGE_SIZE = 10_000


class ScenarioError(ValueError):
    """A scenario file or model that is not valid; the text names the file and the problem."""


class FaultKind(StrEnum):
    """What goes wrong. The simulator module docstring documents each response."""

    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    UNLICENSED = "unlicensed"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    THROTTLE = "throttle"
    UNAVAILABLE = "unavailable"
    GATEWAY_TIMEOUT = "gateway_timeout"
    SLOW = "slow"
    MALFORMED_JSON = "malformed_json"
    NOT_A_PAGE = "not_a_page"
    NEXTLINK_LOOP = "nextlink_loop"
    FOREIGN_NEXTLINK = "foreign_nextlink"
    REPEATED_ITEM = "repeated_item"
    ITEM_WITHOUT_ID = "item_without_id"
    WRONG_SECRET = "wrong_secret"
    EXPIRE_TOKEN_AFTER = "expire_token_after"


# faults about the tenant as a whole: a policy_type makes no sense for them
TENANT_LEVEL_FAULTS = frozenset({FaultKind.UNLICENSED, FaultKind.WRONG_SECRET, FaultKind.EXPIRE_TOKEN_AFTER})
HTTP_DATE = "http-date"


class Fault(BaseModel):
    """One fault of a tenant; ``count`` None means it fires forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    policy_type: str | None = None
    count: int | None = Field(default=None, ge=0)
    # seconds (fractional allowed), "http-date" for an HTTP-date, any other string is sent verbatim
    retry_after: float | str | None = None
    delay_seconds: float = Field(default=0.0, ge=0.0)
    page: int = Field(default=0, ge=0)

    @field_validator("policy_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in CATALOG:
            raise ValueError(f"unknown policy type {value!r}; use a key of the catalog")
        return value

    @field_validator("retry_after")
    @classmethod
    def _non_negative(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float | int) and value < 0:
            raise ValueError("retry_after must be >= 0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Fault:
        if self.kind in TENANT_LEVEL_FAULTS and self.policy_type is not None:
            raise ValueError(f"fault {self.kind.value!r} is tenant-level: leave policy_type out")
        if self.kind is FaultKind.EXPIRE_TOKEN_AFTER and self.count is None:
            raise ValueError("fault 'expire_token_after' needs count (list requests before expiry)")
        return self

    def applies_to(self, policy_type: str) -> bool:
        return self.policy_type is None or self.policy_type == policy_type


class TenantScenario(BaseModel):
    """One simulated tenant: credentials, item counts per policy type, faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    client_id: str
    client_secret: str = Field(repr=False)
    display_name: str = ""
    item_counts: dict[str, int] = Field(default_factory=dict)
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE)
    faults: list[Fault] = Field(default_factory=list)
    removed_per_generation: float = Field(default=0.1, ge=0.0, le=1.0)
    added_per_generation: float = Field(default=0.05, ge=0.0, le=10.0)
    # items edited per generation (content changes, half without a lastModifiedDateTime change)
    edited_per_generation: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("tenant_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError(f"tenant_id {value!r} is not a GUID") from None

    @field_validator("item_counts")
    @classmethod
    def _counts(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(CATALOG))
        if unknown:
            raise ValueError(f"unknown policy type(s) {', '.join(unknown)}; use keys of the catalog")
        negative = sorted(k for k, v in value.items() if v < 0)
        if negative:
            raise ValueError(f"item counts must be >= 0 ({', '.join(negative)})")
        return value

    def page_size_for(self, policy_type: str) -> int:
        """configurationPolicies always pages by 25, like Graph."""
        return SETTINGS_CATALOG_PAGE_SIZE if policy_type == "settingsCatalogPolicy" else self.page_size

    def faults_of(self, kind: FaultKind) -> list[Fault]:
        return [f for f in self.faults if f.kind is kind]


class Scenario(BaseModel):
    """Every simulated tenant, and the seed all generated data derives from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    tenants: list[TenantScenario] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        ids = [t.tenant_id for t in self.tenants]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate tenant_id(s): {', '.join(duplicates)}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> Scenario:
        source = Path(path)
        try:
            data: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"{source}: cannot read the scenario ({exc})") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: {e['msg']}" for e in exc.errors()
            )
            raise ScenarioError(f"{source}: invalid scenario: {problems}") from None

    def tenant(self, tenant_id: str) -> TenantScenario:
        wanted = tenant_id.lower()
        for tenant in self.tenants:
            if tenant.tenant_id == wanted:
                return tenant
        raise KeyError(f"no tenant {tenant_id!r} in the scenario")


def population_for(scenario: Scenario, tenant: TenantScenario, policy_type: str) -> Population:
    """The lifecycle (births and removals over generations) of one tenant's policy type."""
    return Population.of(
        scenario.seed,
        tenant.tenant_id,
        policy_type,
        base=tenant.item_counts.get(policy_type, 0),
        removed=tenant.removed_per_generation,
        added=tenant.added_per_generation,
        edited=tenant.edited_per_generation,
    )


def items_for(
    scenario: Scenario, tenant: TenantScenario, policy_type: str, generation: int, *, as_synced: bool = False
) -> list[dict[str, Any]]:
    """Every item of ``policy_type`` alive in ``generation``, in paging order (deterministic).

    Full objects as served without ``$select`` and without faults; only the
    items of this policy type (no update rings among device configurations,
    no built-in role definitions). ``as_synced``: as served to the sync, whose
    requests carry the catalog's ``$select`` (a mobile app without its icon).
    """
    if policy_type not in CATALOG:
        raise KeyError(f"unknown policy type {policy_type!r}")
    select = frozenset(CATALOG[policy_type].select) if as_synced and CATALOG[policy_type].select else None
    population = population_for(scenario, tenant, policy_type)
    return [
        build_item(population, policy_type, k, generation, select)
        for k in population.alive_indices(generation)
    ]
