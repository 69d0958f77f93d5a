"""The fingerprint's per-shape cache of left-out keys gives the hash the uncached rule gives."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tenantatlas_pipelines.inventory import fingerprint
from tenantatlas_pipelines.inventory.fingerprint import content_hash


def _expected(raw: dict[str, Any], left_out: set[str]) -> str:
    kept = {k: v for k, v in raw.items() if k not in left_out}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


APP = {
    "@odata.type": "#microsoft.graph.win32LobApp",
    "@odata.etag": "W/1",
    "id": "a1",
    "displayName": "App",
    "publishingState": "processing",
    "settings@odata.associationLink": "https://graph/x",
}


def test_same_keys_under_another_policy_type_keep_that_types_fields() -> None:
    assert content_hash("mobileApp", APP) == _expected(
        APP, {"publishingState", "@odata.etag", "settings@odata.associationLink"}
    )
    # the same shape for a type without volatile fields: publishingState is content there
    assert content_hash("deviceConfiguration", APP) == _expected(
        APP, {"@odata.etag", "settings@odata.associationLink"}
    )
    assert content_hash("mobileApp", APP) != content_hash("deviceConfiguration", APP)


def test_key_order_and_repeated_shapes_do_not_change_the_hash() -> None:
    reordered = dict(reversed(list(APP.items())))
    first = content_hash("mobileApp", APP)
    assert content_hash("mobileApp", reordered) == first
    assert content_hash("mobileApp", dict(APP)) == first  # the cached shape
    edited = {**APP, "displayName": "App 2", "publishingState": "published"}
    assert content_hash("mobileApp", edited) == _expected(
        edited, {"publishingState", "@odata.etag", "settings@odata.associationLink"}
    )


def test_more_shapes_than_the_cache_keeps_still_hash_by_the_rule() -> None:
    for index in range(fingerprint._SHAPES_KEPT + 10):
        raw = {"id": str(index), f"k{index}": index, "x@odata.navigationLink": "u", "@odata.type": "t"}
        assert content_hash("deviceConfiguration", raw) == _expected(raw, {"x@odata.navigationLink"})
    assert len(fingerprint._LEFT_OUT_BY_SHAPE) <= fingerprint._SHAPES_KEPT
    assert content_hash("mobileApp", APP) == _expected(
        APP, {"publishingState", "@odata.etag", "settings@odata.associationLink"}
    )


def test_normalize_item_takes_a_fingerprint_given_and_computes_it_otherwise() -> None:
    from tenantatlas_pipelines.inventory.catalog import CATALOG
    from tenantatlas_pipelines.inventory.normalize import normalize_item

    policy_type = CATALOG["mobileApp"]

    assert normalize_item(policy_type, APP).content_hash == content_hash("mobileApp", APP)
    assert normalize_item(policy_type, APP, "f" * 64).content_hash == "f" * 64
