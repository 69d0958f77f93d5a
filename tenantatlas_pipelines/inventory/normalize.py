"""Item normalisation: a raw Graph object becomes one catalog row.

Each item gets its content fingerprint (``content_hash``, inventory/fingerprint.py); the
payload itself goes no further. Only whitelisted keys reach ``meta_jsonb``; every other key
is dropped and counted, never an exception. An item without a usable id (or with one longer
than its column) is refused with ``ItemInvalidError`` (the sync skips it and records
``item_invalid``). Every text the row holds is storable and within its column's length
(``inventory/text_bounds.py``): an over-long name or platform is truncated, with a warning
in meta.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantatlas_pipelines.inventory.catalog import (
    Category,
    PolicyType,
    derive_category,
    derive_platform,
    template_family,
)
from tenantatlas_pipelines.inventory.errors import ItemInvalidError
from tenantatlas_pipelines.inventory.fingerprint import content_hash
from tenantatlas_pipelines.inventory.text_bounds import (
    CATEGORY_CHARS,
    DISPLAY_NAME_CHARS,
    EXTERNAL_ID_CHARS,
    PLATFORM_CHARS,
    storable,
)

# the column lengths (inventory/text_bounds.py), under the names the tests know
MAX_EXTERNAL_ID_CHARS = EXTERNAL_ID_CHARS
MAX_DISPLAY_NAME_CHARS = DISPLAY_NAME_CHARS
MAX_META_STRING_CHARS = 256
MAX_META_LIST_ITEMS = 100
# NUL dropped, unpaired surrogates replaced: one such item must not fail the whole run
_storable = storable

if max(map(len, Category)) > CATEGORY_CHARS:  # categories come from the catalog, never from Graph
    raise RuntimeError(f"a Category value is longer than its column ({CATEGORY_CHARS} characters)")


def _string(value: Any) -> str | None:
    return _storable(value[:MAX_META_STRING_CHARS]) if isinstance(value, str) else None


def _int_or_string(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return _string(value)


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        return None
    out = sorted({_storable(v[:MAX_META_STRING_CHARS]) for v in value if isinstance(v, str)})
    return out[:MAX_META_LIST_ITEMS]


# meta key -> the Graph keys it consumes (every other key of an item is dropped and counted);
# ``_meta`` extracts them, in this order
META_WHITELIST: dict[str, tuple[str, ...]] = {
    "odata_type": ("@odata.type",),
    "version": ("version",),
    "role_scope_tag_ids": ("roleScopeTagIds",),
    "platforms": ("platforms", "platform", "platformType"),
    "technologies": ("technologies",),
    "template_family": ("templateReference",),
    "template_id": ("templateId",),
    "is_assigned": ("isAssigned",),
    "is_global_script": ("isGlobalScript",),
    "created_at": ("createdDateTime",),
    "modified_at": ("lastModifiedDateTime", "modifiedDateTime"),  # conditional access: modifiedDateTime
    "publisher": ("publisher",),
    "publishing_state": ("publishingState",),
    "state": ("state",),
}
_CONSUMED: frozenset[str] = frozenset(
    {"id", "displayName", "name", "@odata.context", "@odata.etag"}
    | {key for keys in META_WHITELIST.values() for key in keys}
)


def _meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The whitelisted meta of one item (straight-line: this runs for every item of a sync)."""
    get = raw.get
    meta: dict[str, Any] = {}
    value: Any
    for meta_key, graph_key in _PLAIN_STRINGS_BEFORE:
        if isinstance(value := get(graph_key), str):
            meta[meta_key] = _storable(value[:MAX_META_STRING_CHARS])
    if (value := _int_or_string(get("version"))) is not None:
        meta["version"] = value
    if tags := _string_list(get("roleScopeTagIds")):
        meta["role_scope_tag_ids"] = tags
    platforms = get("platforms")
    if platforms := _string_list(platforms if platforms is not None else get("platform")):
        meta["platforms"] = platforms
    if technologies := _string_list(get("technologies")):
        meta["technologies"] = technologies
    ref = get("templateReference")
    if isinstance(ref, dict):
        if (value := _string(template_family(raw))) is not None:
            meta["template_family"] = value
        template = ref.get("templateId")
        value = template if isinstance(template, str) else get("templateId")
    else:
        value = get("templateId")
    if isinstance(value, str):
        meta["template_id"] = _storable(value[:MAX_META_STRING_CHARS])
    if isinstance(value := get("isAssigned"), bool):
        meta["is_assigned"] = value
    if isinstance(value := get("isGlobalScript"), bool):
        meta["is_global_script"] = value
    if isinstance(value := get("createdDateTime"), str):
        meta["created_at"] = _storable(value[:MAX_META_STRING_CHARS])
    if isinstance(value := get("lastModifiedDateTime") or get("modifiedDateTime"), str):
        meta["modified_at"] = _storable(value[:MAX_META_STRING_CHARS])
    for meta_key, graph_key in _PLAIN_STRINGS_AFTER:
        if isinstance(value := get(graph_key), str):
            meta[meta_key] = _storable(value[:MAX_META_STRING_CHARS])
    return meta


# plain string keys, before and after the others (the order meta keys are written in)
_PLAIN_STRINGS_BEFORE = (("odata_type", "@odata.type"),)
_PLAIN_STRINGS_AFTER = (
    ("publisher", "publisher"),
    ("publishing_state", "publishingState"),
    ("state", "state"),
)


@dataclass(slots=True)
class NormalizedItem:
    external_id: str
    display_name: str | None
    category: str
    platform: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    dropped_meta_keys: int = 0
    content_hash: str | None = None  # inventory/fingerprint.py; None only for hand-made items


def normalize_item(
    policy_type: PolicyType, raw: Mapping[str, Any], fingerprint: str | None = None
) -> NormalizedItem:
    """Turn one Graph object into a catalog row; raise ItemInvalidError if it has no id.

    ``fingerprint``: ``content_hash(policy_type.key, raw)`` if the caller computed it already
    (the sync does, as each page arrives); computed here otherwise.
    """
    if not isinstance(raw, Mapping):
        raise ItemInvalidError(f"{policy_type.key}: item is a {type(raw).__name__}, not an object")
    external_id = raw.get("id")
    if not isinstance(external_id, str) or not external_id.strip():
        kind = "missing" if external_id is None else f"not a non-empty string ({type(external_id).__name__})"
        raise ItemInvalidError(f"{policy_type.key}: item id is {kind}; the item was skipped")
    if len(external_id) > MAX_EXTERNAL_ID_CHARS:
        raise ItemInvalidError(
            f"{policy_type.key}: item id is longer than {MAX_EXTERNAL_ID_CHARS} characters; skipped"
        )
    if _storable(external_id) is not external_id:
        raise ItemInvalidError(
            f"{policy_type.key}: item id holds a NUL character or an unpaired surrogate; skipped"
        )

    warnings: list[str] | None = None
    name = raw.get(policy_type.name_field)
    if name is None and policy_type.name_field != "displayName":
        name = raw.get("displayName")
    display_name: str | None
    if isinstance(name, str):
        display_name = _storable(name)
        if display_name is not name:
            warnings = ["display_name_sanitized"]
        if len(display_name) > MAX_DISPLAY_NAME_CHARS:
            display_name = display_name[:MAX_DISPLAY_NAME_CHARS]
            warnings = [*(warnings or ()), "display_name_truncated"]
    else:
        display_name = None
        warnings = ["display_name_missing"]

    platform = derive_platform(policy_type, raw)
    # Graph's text (an odata type name, a platforms list): the column holds 64 characters
    if platform is not None and (len(platform) > PLATFORM_CHARS or storable(platform) is not platform):
        platform, platform_warnings = _bounded_platform(platform)
        warnings = [*(warnings or ()), *platform_warnings]

    meta = _meta(raw)
    dropped = len(raw.keys() - _CONSUMED)
    if warnings:
        meta["warnings"] = warnings

    return NormalizedItem(
        external_id=external_id,
        display_name=display_name,
        category=derive_category(policy_type, raw).value,
        platform=platform,
        meta=meta,
        dropped_meta_keys=dropped,
        content_hash=fingerprint if fingerprint is not None else content_hash(policy_type.key, raw),
    )


def _bounded_platform(platform: str) -> tuple[str | None, list[str]]:
    """The platform storable and within its column (truncated on a code point), and the warnings."""
    clean = storable(platform)
    warnings = [] if clean is platform else ["platform_sanitized"]
    if len(clean) > PLATFORM_CHARS:
        clean = clean[:PLATFORM_CHARS]
        warnings.append("platform_truncated")
    return clean or None, warnings
