"""Text bounds in normalisation: every text of a catalog row fits its column, deterministically."""

from __future__ import annotations

import pytest

from tenantatlas_pipelines.inventory.catalog import CATALOG, Category
from tenantatlas_pipelines.inventory.errors import ErrorCode, ErrorRecord, ItemInvalidError
from tenantatlas_pipelines.inventory.normalize import normalize_item
from tenantatlas_pipelines.inventory.text_bounds import (
    CATEGORY_CHARS,
    ERROR_FIELD_CHARS,
    EXTERNAL_ID_CHARS,
    PLATFORM_CHARS,
    POLICY_TYPE_CHARS,
    bounded,
)

LONG_TYPE = "#microsoft.graph.zz" + "VeryLongAppType" * 40


def test_a_long_odata_type_platform_is_truncated_on_a_code_point_with_a_warning() -> None:
    item = normalize_item(CATALOG["mobileApp"], {"id": "a", "displayName": "A", "@odata.type": LONG_TYPE})
    assert item.platform == LONG_TYPE.removeprefix("#microsoft.graph.")[:PLATFORM_CHARS]
    assert item.meta["warnings"] == ["platform_truncated"]
    again = normalize_item(CATALOG["mobileApp"], {"id": "a", "displayName": "A", "@odata.type": LONG_TYPE})
    assert again.platform == item.platform  # deterministic


@pytest.mark.parametrize(
    ("platforms", "expected", "warnings"),
    [
        (["\U0001f512" * 70], "\U0001f512" * PLATFORM_CHARS, ["platform_truncated"]),
        (["win\x00dows"], "windows", ["platform_sanitized"]),
        (["\ud800x"], "\ufffdx", ["platform_sanitized"]),
        (["\x00"], None, ["platform_sanitized"]),
        (["macOS", "windows10"], "macOS,windows10", None),
    ],
)
def test_platforms_are_storable_and_bounded(
    platforms: list[str], expected: str | None, warnings: list[str] | None
) -> None:
    item = normalize_item(CATALOG["settingsCatalogPolicy"], {"id": "a", "name": "A", "platforms": platforms})
    assert item.platform == expected
    assert item.meta.get("warnings") == warnings


def test_an_id_one_past_its_column_is_refused_and_one_at_it_is_kept() -> None:
    policy_type = CATALOG["mobileApp"]
    assert normalize_item(policy_type, {"id": "j" * EXTERNAL_ID_CHARS}).external_id == "j" * EXTERNAL_ID_CHARS
    with pytest.raises(ItemInvalidError) as refused:
        normalize_item(policy_type, {"id": "i" * (EXTERNAL_ID_CHARS + 1)})
    assert refused.value.code is ErrorCode.ITEM_INVALID


def test_catalog_values_fit_their_columns() -> None:
    assert max(len(c.value) for c in Category) <= CATEGORY_CHARS
    assert max(len(key) for key in CATALOG) <= POLICY_TYPE_CHARS


def test_error_records_keep_graphs_text_storable_and_short() -> None:
    hostile = "x\x00y\ud800" * 1000
    record = ErrorRecord(
        code=ErrorCode.GRAPH_FORBIDDEN,
        message=hostile,
        graph_code=hostile,
        request_id=hostile,
        client_request_id=hostile,
        date=hostile,
        path="/" + hostile,
        scopes=[hostile] * 500,
    )
    texts = [record.message, record.graph_code, record.request_id, record.client_request_id, record.date]
    texts += [record.path, *record.scopes]
    for text in texts:
        assert text is not None and "\x00" not in text
        text.encode("utf-8")
    assert all(len(t or "") <= ERROR_FIELD_CHARS for t in texts[1:])
    assert len(record.scopes) < 500
    assert bounded("abc", 2) == "ab" and bounded("a\x00b", 10) == "ab"
