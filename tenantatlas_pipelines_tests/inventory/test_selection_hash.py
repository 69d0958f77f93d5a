from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantatlas_pipelines.inventory.catalog import CATALOG, Category
from tenantatlas_pipelines.inventory.errors import SelectionError
from tenantatlas_pipelines.inventory.selection import Selection, canonical_json, selection_hash

TYPES = sorted(CATALOG)
CATEGORIES = [c.value for c in Category]


def test_hash_is_sha256_of_canonical_json_with_every_key() -> None:
    payload = {"policy_types": ["mobileApp", "deviceConfiguration"]}
    expected = json.dumps(
        {
            "categories": [],
            "include_dependencies": False,
            "include_foundations": False,
            "policy_types": ["deviceConfiguration", "mobileApp"],
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    assert selection_hash(payload) == hashlib.sha256(expected.encode()).hexdigest()
    assert len(selection_hash(payload)) == 64


def test_array_order_and_duplicates_do_not_change_the_hash() -> None:
    a = {
        "policy_types": ["mobileApp", "deviceConfiguration", "mobileApp"],
        "categories": ["apps", "security"],
    }
    b = {"categories": ["security", "apps", "apps"], "policy_types": ["deviceConfiguration", "mobileApp"]}
    assert selection_hash(a) == selection_hash(b)


def test_different_selections_hash_differently() -> None:
    assert selection_hash({"policy_types": ["mobileApp"]}) != selection_hash(
        {"policy_types": ["mobileApp"], "include_dependencies": True}
    )


def test_canonical_json_sorts_nested_keys_and_keeps_unicode() -> None:
    assert (
        canonical_json({"b": [3, 1, 1], "a": {"z": "é", "y": None}}) == '{"a":{"y":null,"z":"é"},"b":[1,3]}'
    )


@given(
    types=st.lists(st.sampled_from(TYPES), max_size=8),
    categories=st.lists(st.sampled_from(CATEGORIES), max_size=4),
    foundations=st.booleans(),
    permutation_seed=st.randoms(use_true_random=False),
)
def test_hash_is_invariant_under_any_reordering_and_repetition(
    types: list[str], categories: list[str], foundations: bool, permutation_seed: object
) -> None:
    import random

    rng = permutation_seed if isinstance(permutation_seed, random.Random) else random.Random(0)
    shuffled_types = types + types[: len(types) // 2]
    shuffled_categories = list(categories)
    rng.shuffle(shuffled_types)
    rng.shuffle(shuffled_categories)
    first = {"policy_types": types, "categories": categories, "include_foundations": foundations}
    second = {
        "include_foundations": foundations,
        "categories": shuffled_categories,
        "policy_types": shuffled_types,
    }
    assert selection_hash(first) == selection_hash(second)


def test_unknown_policy_type_is_rejected_with_the_fix() -> None:
    with pytest.raises(SelectionError, match=r"unknown policy type.*deviceConfigurationz"):
        Selection.parse({"policy_types": ["deviceConfigurationz"]}, name="selections.broken")


def test_unknown_key_and_category_are_rejected() -> None:
    with pytest.raises(SelectionError, match="unknown key 'colour'"):
        Selection.parse({"colour": "red"})
    with pytest.raises(SelectionError, match="categories"):
        Selection.parse({"categories": ["firmware"]})


def test_resolution_unions_types_categories_and_foundations() -> None:
    selection = Selection.parse(
        {"policy_types": ["mobileApp"], "categories": ["scripts"], "include_foundations": True}
    )
    resolved = selection.resolve()
    assert "mobileApp" in resolved
    assert {"deviceManagementScript", "deviceHealthScript", "deviceShellScript"} <= resolved
    assert {"roleScopeTag", "assignmentFilter", "roleDefinition"} <= resolved
    assert "deviceConfiguration" not in resolved


def test_security_category_includes_settings_catalog_which_may_hold_endpoint_security() -> None:
    assert "settingsCatalogPolicy" in Selection.parse({"categories": ["security"]}).resolve()
