from __future__ import annotations

import pytest

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.inventory.errors import ErrorCode, ItemInvalidError
from tenantatlas_pipelines.inventory.normalize import MAX_DISPLAY_NAME_CHARS, normalize_item


def test_whitelisted_meta_is_kept_and_unknown_keys_are_dropped_and_counted() -> None:
    raw = {
        "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
        "id": "a1",
        "displayName": "Baseline",
        "version": 3,
        "roleScopeTagIds": ["0", "7", "0"],
        "createdDateTime": "2026-01-01T00:00:00Z",
        "lastModifiedDateTime": "2026-02-01T00:00:00Z",
        "passwordRequired": True,
        "someFutureSetting": {"nested": [1, 2]},
        "description": "free text that may hold anything",
    }
    item = normalize_item(CATALOG["deviceConfiguration"], raw)
    assert item.external_id == "a1"
    assert item.display_name == "Baseline"
    assert item.category == "configuration"
    assert item.platform == "windows"
    assert item.meta == {
        "odata_type": "#microsoft.graph.windows10GeneralConfiguration",
        "version": 3,
        "role_scope_tag_ids": ["0", "7"],
        "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-02-01T00:00:00Z",
    }
    assert item.dropped_meta_keys == 3


def test_settings_catalog_uses_name_platforms_technologies_and_template_family() -> None:
    raw = {
        "id": "p1",
        "name": "Firewall",
        "platforms": "windows10",
        "technologies": "mdm,microsoftSense",
        "isAssigned": True,
        "templateReference": {"templateFamily": "endpointSecurityFirewall", "templateId": "t-1"},
    }
    item = normalize_item(CATALOG["settingsCatalogPolicy"], raw)
    assert item.display_name == "Firewall"
    assert item.category == "security"
    assert item.meta["platforms"] == ["windows10"]
    assert item.meta["technologies"] == ["mdm", "microsoftSense"]
    assert item.meta["template_family"] == "endpointSecurityFirewall"
    assert item.meta["template_id"] == "t-1"
    assert item.meta["is_assigned"] is True


@pytest.mark.parametrize("bad_id", [None, "", "   ", 42, ["x"], {"id": 1}])
def test_item_without_a_string_id_is_refused_with_item_invalid(bad_id: object) -> None:
    raw = {"displayName": "x"} if bad_id is None else {"id": bad_id, "displayName": "x"}
    with pytest.raises(ItemInvalidError) as info:
        normalize_item(CATALOG["mobileApp"], raw)
    assert info.value.code is ErrorCode.ITEM_INVALID


def test_null_fields_and_wrong_types_never_raise() -> None:
    raw = {
        "id": "x",
        "displayName": None,
        "version": None,
        "roleScopeTagIds": None,
        "isAssigned": "yes",
        "platforms": 7,
        "templateReference": None,
    }
    item = normalize_item(CATALOG["settingsCatalogPolicy"], raw)
    assert item.display_name is None
    assert item.meta == {"warnings": ["display_name_missing"]}


def test_huge_and_unicode_display_names_are_kept_within_bounds() -> None:
    name = "Ünïcødé 政策 🚀 " * 500
    item = normalize_item(CATALOG["deviceCategory"], {"id": "u", "displayName": name})
    assert item.display_name is not None and len(item.display_name) == MAX_DISPLAY_NAME_CHARS
    assert item.display_name == name[:MAX_DISPLAY_NAME_CHARS]
    assert item.meta["warnings"] == ["display_name_truncated"]
