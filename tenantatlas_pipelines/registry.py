"""The registry file: tenants and named selections, loaded and validated.

A bad registry raises one ``RegistryError`` whose text names the file, the
entry and the fix. Nothing is written by loading; secrets are referenced by
the *name* of an environment variable and read only at run time.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tenantatlas_pipelines.inventory.errors import ConfigError, SelectionError
from tenantatlas_pipelines.inventory.selection import Selection

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
Cloud = Literal["global", "usgov", "usgov-dod", "china", "simulated"]
KEY_FIX = "use 1 to 63 characters: lower-case letters, digits, '_' or '-', starting with a letter or digit"


class RegistryError(ConfigError):
    """The registry file cannot be used; the text says where and how to fix it."""


def _guid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what} must be a GUID like 0f6a1c2e-4b5d-4e8f-9a01-23456789abcd") from None


class TenantEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    client_id: str
    client_secret_env: str
    cloud: Cloud = "global"
    enabled: bool = True
    display_name: str | None = Field(default=None, max_length=256)
    graph_endpoint: str | None = None
    login_endpoint: str | None = None

    @field_validator("tenant_id")
    @classmethod
    def _tenant_guid(cls, value: str) -> str:
        return _guid(value, "tenant_id (the Entra tenant id)")

    @field_validator("client_id")
    @classmethod
    def _client_guid(cls, value: str) -> str:
        return _guid(value, "client_id (the app registration's application id)")

    @field_validator("client_secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME_PATTERN.fullmatch(value):  # fullmatch: "$" would let a trailing newline in
            raise ValueError(
                "client_secret_env is the NAME of an environment variable (for example "
                "CONTOSO_GRAPH_SECRET), never the secret itself"
            )
        return value

    @field_validator("graph_endpoint", "login_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s?#]+/?$", value):
            raise ValueError("an endpoint override is a scheme and host only, like http://127.0.0.1:8765")
        return value.rstrip("/")


def read_secret(tenant_key: str, tenant: TenantEntry, environ: Mapping[str, str] | None = None) -> str:
    """The tenant's client secret, read from its env var at run time (never stored)."""
    env = os.environ if environ is None else environ
    value = env.get(tenant.client_secret_env)
    if not value:
        raise RegistryError(
            f"tenant {tenant_key!r}: environment variable {tenant.client_secret_env} (its client secret) "
            "is not set; set it for the Dagster webserver, daemon and run workers"
        )
    return value


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    selections: dict[str, Selection]
    tenants: dict[str, TenantEntry]
    source: str = "<registry>"

    def enabled_tenants(self) -> dict[str, TenantEntry]:
        return {key: t for key, t in self.tenants.items() if t.enabled}

    def selection(self, key: str) -> Selection:
        try:
            return self.selections[key]
        except KeyError:
            raise RegistryError(
                f"{self.source}: selection {key!r} is not defined; defined selections: "
                f"{', '.join(sorted(self.selections)) or '(none)'}"
            ) from None

    def tenant(self, key: str) -> TenantEntry:
        try:
            return self.tenants[key]
        except KeyError:
            raise RegistryError(
                f"{self.source}: tenant {key!r} is not defined; add it under 'tenants:' or remove "
                f"its partitions (the registry sensor does that on its next tick)"
            ) from None

    def missing_secrets(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """tenant key -> env var name, for enabled tenants whose secret env var is unset or empty."""
        env = os.environ if environ is None else environ
        return {
            key: t.client_secret_env
            for key, t in self.enabled_tenants().items()
            if not env.get(t.client_secret_env)
        }

    def require_secrets(self, environ: Mapping[str, str] | None = None) -> None:
        missing = self.missing_secrets(environ)
        if missing:
            lines = "; ".join(
                f"tenant {key!r} needs environment variable {env}" for key, env in sorted(missing.items())
            )
            raise RegistryError(
                f"{self.source}: missing client secret: {lines}. Set it in the environment of the "
                "Dagster webserver, daemon and run workers (never in the registry file)"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys instead of keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_registry(data: Any, source: str = "<registry>") -> Registry:
    """Validate an already-parsed registry document."""
    if not isinstance(data, Mapping):
        raise RegistryError(
            f"{source}: the registry must be a mapping with 'selections:' and 'tenants:' at the top"
        )
    unknown = sorted(set(data) - {"selections", "tenants"})
    if unknown:
        raise RegistryError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            "only 'selections' and 'tenants' are allowed"
        )
    problems: list[str] = []
    selections: dict[str, Selection] = {}
    for key, payload in _section(data, "selections", source).items():
        where = f"selections.{key}"
        if not valid_key(key):
            problems.append(f"{where}: bad selection key; {KEY_FIX}")
            continue
        try:
            selection = Selection.parse(payload or {}, name=where)
        except SelectionError as exc:
            problems.append(exc.message)
            continue
        if not selection.resolve():
            problems.append(
                f"{where}: resolves to no policy type; name policy_types, categories or set "
                "include_foundations: true"
            )
            continue
        selections[str(key)] = selection

    tenants: dict[str, TenantEntry] = {}
    guids: dict[str, str] = {}
    for key, entry in _section(data, "tenants", source).items():
        where = f"tenants.{key}"
        if not valid_key(key):
            problems.append(f"{where}: bad tenant key; {KEY_FIX}")
            continue
        try:
            tenant = TenantEntry.model_validate(entry if isinstance(entry, Mapping) else {"_": entry})
        except ValidationError as exc:
            problems.extend(f"{where}: {_describe(e)}" for e in exc.errors())
            continue
        if tenant.cloud != "simulated" and (tenant.graph_endpoint is None) != (tenant.login_endpoint is None):
            problems.append(f"{where}: set both graph_endpoint and login_endpoint, or neither")
        if tenant.tenant_id in guids:
            problems.append(
                f"{where}: tenant_id {tenant.tenant_id} is already used by tenant "
                f"{guids[tenant.tenant_id]!r}; "
                "each Entra tenant is registered once"
            )
        guids[tenant.tenant_id] = str(key)
        tenants[str(key)] = tenant

    if problems:
        raise RegistryError(f"{source}: invalid registry:\n  - " + "\n  - ".join(problems))
    return Registry(selections=selections, tenants=tenants, source=source)


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate the registry file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"{file}: registry file not found; set TENANTATLAS_REGISTRY to an existing file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{file}: cannot read the registry file ({type(exc).__name__})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise RegistryError(f"{file}: bad YAML{where}: {problem}; fix the file and retry") from None
    return parse_registry(data, source=str(file))


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    section = data.get(name)
    if section is None:
        raise RegistryError(f"{source}: missing '{name}:' section")
    if not isinstance(section, Mapping):
        raise RegistryError(f"{source}: '{name}:' must be a mapping of key -> entry")
    return section


def valid_key(key: object) -> bool:
    """A well-formed tenant or selection key (fullmatch: "$" alone would accept a trailing newline)."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "entry"
    if error.get("type") == "extra_forbidden":
        return f"unknown key {where!r}; allowed: {', '.join(TenantEntry.model_fields)}"
    if error.get("type") == "missing":
        return f"missing required key {where!r}"
    return f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"
