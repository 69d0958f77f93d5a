"""Item normalisation: a raw Graph object becomes one catalog row.

Only whitelisted keys reach ``meta_jsonb``; every other key is dropped and
counted, never an exception. An item without a usable id is refused with
``ItemInvalidError`` (the sync skips it and records ``item_invalid``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantatlas_pipelines.inventory.catalog import (
    PolicyType,
    derive_category,
    derive_platform,
    template_family,
)
from tenantatlas_pipelines.inventory.errors import ItemInvalidError

MAX_EXTERNAL_ID_CHARS = 255
MAX_DISPLAY_NAME_CHARS = 1024
MAX_META_STRING_CHARS = 256
MAX_META_LIST_ITEMS = 100
# text no database stores: NUL (PostgreSQL refuses it) and unpaired surrogates (not UTF-8 at all);
# JSON may carry both as \u escapes, and one such item must not fail the whole run
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """``text`` without NUL characters, unpaired surrogates replaced by U+FFFD."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def _string(value: Any) -> str | None:
    return _storable(value[:MAX_META_STRING_CHARS]) if isinstance(value, str) else None


def _int_or_string(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return _string(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        return None
    out = sorted({_storable(v[:MAX_META_STRING_CHARS]) for v in value if isinstance(v, str)})
    return out[:MAX_META_LIST_ITEMS]


def _template_family(item: Mapping[str, Any]) -> str | None:
    return _string(template_family(item))


def _template_id(item: Mapping[str, Any]) -> str | None:
    ref = item.get("templateReference")
    if isinstance(ref, dict) and isinstance(ref.get("templateId"), str):
        return _string(ref["templateId"])
    return _string(item.get("templateId"))


# meta key -> (graph keys it consumes, extractor over the whole raw item)
_Extractor = Callable[[Mapping[str, Any]], Any]
META_WHITELIST: dict[str, tuple[tuple[str, ...], _Extractor]] = {
    "odata_type": (("@odata.type",), lambda i: _string(i.get("@odata.type"))),
    "version": (("version",), lambda i: _int_or_string(i.get("version"))),
    "role_scope_tag_ids": (("roleScopeTagIds",), lambda i: _string_list(i.get("roleScopeTagIds"))),
    "platforms": (
        ("platforms", "platform", "platformType"),
        lambda i: _string_list(i.get("platforms") if i.get("platforms") is not None else i.get("platform")),
    ),
    "technologies": (("technologies",), lambda i: _string_list(i.get("technologies"))),
    "template_family": (("templateReference",), _template_family),
    "template_id": (("templateId",), _template_id),
    "is_assigned": (("isAssigned",), lambda i: _bool(i.get("isAssigned"))),
    "is_global_script": (("isGlobalScript",), lambda i: _bool(i.get("isGlobalScript"))),
    "created_at": (("createdDateTime",), lambda i: _string(i.get("createdDateTime"))),
    "modified_at": (
        ("lastModifiedDateTime", "modifiedDateTime"),  # conditional access says modifiedDateTime
        lambda i: _string(i.get("lastModifiedDateTime") or i.get("modifiedDateTime")),
    ),
    "publisher": (("publisher",), lambda i: _string(i.get("publisher"))),
    "publishing_state": (("publishingState",), lambda i: _string(i.get("publishingState"))),
    "state": (("state",), lambda i: _string(i.get("state"))),
}
_CONSUMED: frozenset[str] = frozenset(
    {"id", "displayName", "name", "@odata.context", "@odata.etag"}
    | {key for keys, _ in META_WHITELIST.values() for key in keys}
)


@dataclass(slots=True)
class NormalizedItem:
    external_id: str
    display_name: str | None
    category: str
    platform: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    dropped_meta_keys: int = 0


def normalize_item(policy_type: PolicyType, raw: Mapping[str, Any]) -> NormalizedItem:
    """Turn one Graph object into a catalog row; raise ItemInvalidError if it has no id."""
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
    if _UNSTORABLE.search(external_id) is not None:
        raise ItemInvalidError(
            f"{policy_type.key}: item id holds a NUL character or an unpaired surrogate; skipped"
        )

    warnings: list[str] = []
    name = raw.get(policy_type.name_field)
    if name is None and policy_type.name_field != "displayName":
        name = raw.get("displayName")
    display_name: str | None
    if isinstance(name, str):
        display_name = _storable(name)
        if display_name != name:
            warnings.append("display_name_sanitized")
        if len(display_name) > MAX_DISPLAY_NAME_CHARS:
            display_name = display_name[:MAX_DISPLAY_NAME_CHARS]
            warnings.append("display_name_truncated")
    else:
        display_name = None
        warnings.append("display_name_missing")

    meta: dict[str, Any] = {}
    for meta_key, (_, extract) in META_WHITELIST.items():
        value = extract(raw)
        if value is not None and value != []:
            meta[meta_key] = value
    dropped = sum(1 for key in raw if key not in _CONSUMED)
    if warnings:
        meta["warnings"] = warnings

    return NormalizedItem(
        external_id=external_id,
        display_name=display_name,
        category=derive_category(policy_type, raw).value,
        platform=derive_platform(policy_type, raw),
        meta=meta,
        dropped_meta_keys=dropped,
    )
