from __future__ import annotations

from pathlib import Path

import pytest

from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY
from tenantatlas_pipelines.registry import RegistryError, load_registry, read_secret

GOOD_TENANT = """
  contoso:
    tenant_id: 0f6a1c2e-4b5d-4e8f-9a01-23456789abcd
    client_id: 3c1e5a7b-0000-4000-8000-00000000c001
    client_secret_env: CONTOSO_GRAPH_SECRET
    cloud: global
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


def test_the_bundled_demo_registry_is_valid() -> None:
    registry = load_registry(DEMO_REGISTRY)
    assert set(registry.tenants) == {"contoso", "fabrikam", "northwind"}
    assert set(registry.selections) == {"all", "compliance"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("selections: {all: {categories: [apps]}\ntenants: {", "bad YAML at line"),
        ("selections: {a: {categories: [apps]}, a: {categories: [apps]}}\ntenants: {}", "duplicate key 'a'"),
        ("selections: {all: {categories: [apps]}}\ntenants: {}\nextras: 1", "unknown top-level key"),
        (
            "selections: {all: {categories: [apps], colour: red}}\ntenants: {}",
            "selections.all: unknown key 'colour'",
        ),
        ("selections: {all: {policy_types: [nope]}}\ntenants: {}", "unknown policy type"),
        ("selections: {all: {categories: [firmware]}}\ntenants: {}", "selections.all"),
        ("selections: {all: {}}\ntenants: {}", "resolves to no policy type"),
        ("selections: {'a|b': {categories: [apps]}}\ntenants: {}", "bad selection key"),
        (
            "selections: {all: {categories: [apps]}}\ntenants:\n  Contoso!:\n    tenant_id: x",
            "bad tenant key",
        ),
        (
            "selections: {all: {categories: [apps]}}\ntenants:" + GOOD_TENANT + "    colour: red\n",
            "unknown key 'colour'",
        ),
        (
            "selections: {all: {categories: [apps]}}\ntenants:" + GOOD_TENANT.replace("global", "mars"),
            "cloud",
        ),
        (
            "selections: {all: {categories: [apps]}}\ntenants:" + GOOD_TENANT.replace("0f6a1c2e-4b5d-", "zz"),
            "tenant_id",
        ),
        (
            "selections: {all: {categories: [apps]}}\ntenants:"
            + GOOD_TENANT
            + GOOD_TENANT.replace("contoso", "contoso2").replace("CONTOSO2", "CONTOSO"),
            "already used by tenant 'contoso'",
        ),
        (
            "selections: {all: {categories: [apps]}}\ntenants:"
            + GOOD_TENANT.replace("CONTOSO_GRAPH_SECRET", "'my secret value!'"),
            "NAME of an environment variable",
        ),
    ],
)
def test_bad_registries_are_refused_naming_the_file_entry_and_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_a_secret_given_in_place_of_the_env_var_name_is_not_echoed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "selections: {all: {categories: [apps]}}\ntenants:"
        + GOOD_TENANT.replace("CONTOSO_GRAPH_SECRET", "'p@ss w0rd~xyz'"),
    )
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert "p@ss w0rd~xyz" not in str(info.value)


def test_missing_file_names_the_env_var_to_set(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="TENANTATLAS_REGISTRY"):
        load_registry(tmp_path / "nope.yaml")


def test_missing_secret_env_var_is_a_clear_error_and_the_value_is_read_at_run_time(tmp_path: Path) -> None:
    registry = load_registry(
        _write(tmp_path, "selections: {all: {categories: [apps]}}\ntenants:" + GOOD_TENANT)
    )
    with pytest.raises(
        RegistryError, match="tenant 'contoso' needs environment variable CONTOSO_GRAPH_SECRET"
    ):
        registry.require_secrets(environ={})
    with pytest.raises(RegistryError, match="CONTOSO_GRAPH_SECRET"):
        read_secret("contoso", registry.tenants["contoso"], environ={})
    assert read_secret("contoso", registry.tenants["contoso"], environ={"CONTOSO_GRAPH_SECRET": "s"}) == "s"
    registry.require_secrets(environ={"CONTOSO_GRAPH_SECRET": "s"})


def test_disabled_tenants_need_no_secret(tmp_path: Path) -> None:
    registry = load_registry(
        _write(
            tmp_path,
            "selections: {all: {categories: [apps]}}\ntenants:" + GOOD_TENANT + "    enabled: false\n",
        )
    )
    assert registry.enabled_tenants() == {}
    registry.require_secrets(environ={})
