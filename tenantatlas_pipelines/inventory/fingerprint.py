"""The content fingerprint of one Graph item: sha256 hex of its canonical JSON.

Canonical JSON: the object as Graph returned it (after the client parsed the page), keys
sorted at every depth, no insignificant whitespace, UTF-8 (non-ASCII written as itself,
not as ``\\u`` escapes). Only fields that change without anybody editing the item are left
out, each with its evidence (``../shared/spec/msgraph.md`` "Shapes" and the simulator's
shapes modelled on it):

- OData control information, any top-level key holding ``@odata.`` except
  ``@odata.type``: ``@odata.context`` and ``@odata.nextLink`` belong to the page, not the
  item (msgraph.md "Shapes": ``{"@odata.context": ..., "@odata.nextLink": ..., "value":
  [...]}``); ``@odata.etag``, ``@odata.id`` and ``<property>@odata.associationLink`` /
  ``@odata.navigationLink`` (configurationPolicies' ``settings@odata.associationLink``,
  groupPolicyConfigurations' ``definitionValues@odata.associationLink``) are URLs or
  version tags the service writes, which follow the endpoint (a proxy, another cloud)
  rather than the item. ``@odata.type`` is the item's type: kept.
- ``mobileApp``: ``publishingState`` and ``uploadState`` (the service moves them while it
  processes an upload: ``notPublished`` -> ``processing`` -> ``published``), and
  ``dependentAppCount``, ``supersedingAppCount``, ``supersededAppCount`` (they count
  *other* apps' relationships to this one: editing another app changes them).
- ``windowsDriverUpdateProfile``: ``inventorySyncStatus`` (the service's driver inventory
  sync: ``lastSuccessfulSyncDateTime`` moves on every sync of the service).

Kept on purpose: ``lastModifiedDateTime`` / ``version`` (they move on an edit),
``isAssigned`` (an assignment added or removed is an administrator's change),
``settingCount`` and ``definitionValueSummary`` (derived from the settings, which only an
edit changes), ``deployedAppCount`` (the apps a protection policy targets).

Nested ``@odata`` annotations inside property values are kept (they describe the value's
type, e.g. ``largeIcon.@odata.type``). The payload itself is never stored: only the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import orjson

KEPT_ANNOTATION: Final = "@odata.type"
# per policy type: top-level fields that change without an edit (see the module docstring)
VOLATILE_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "mobileApp": frozenset(
        {
            "publishingState",
            "uploadState",
            "dependentAppCount",
            "supersedingAppCount",
            "supersededAppCount",
        }
    ),
    "windowsDriverUpdateProfile": frozenset({"inventorySyncStatus"}),
}
_NONE: Final[frozenset[str]] = frozenset()
_SORTED: Final = orjson.OPT_SORT_KEYS
# (policy type, *the item's keys in order) -> the keys left out. Items of one type share a few
# shapes, so the key check runs once per shape, not per item (benchmarks/fingerprint_cost.py:
# 3.1 -> 1.1 us per W1 item). Bounded: a shape never seen again is dropped with the rest.
_LEFT_OUT_BY_SHAPE: dict[tuple[str, ...], tuple[str, ...]] = {}
_SHAPES_KEPT: Final = 1024


def _left_out(policy_type: str, raw: Mapping[str, Any]) -> tuple[str, ...]:
    volatile = VOLATILE_FIELDS.get(policy_type, _NONE)
    return tuple(k for k in raw if k in volatile or ("@odata." in k and k != KEPT_ANNOTATION))


def fingerprint_source(policy_type: str, raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the fingerprint covers: ``raw`` without the left-out fields (``raw`` itself if none)."""
    shape = (policy_type, *raw)
    left_out = _LEFT_OUT_BY_SHAPE.get(shape)
    if left_out is None:
        if len(_LEFT_OUT_BY_SHAPE) >= _SHAPES_KEPT:
            _LEFT_OUT_BY_SHAPE.clear()
        left_out = _LEFT_OUT_BY_SHAPE[shape] = _left_out(policy_type, raw)
    if not left_out:
        return raw
    source = dict(raw)  # a shallow copy: the values are not copied
    for key in left_out:
        del source[key]
    return source


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Keys sorted at every depth, no whitespace, UTF-8; any JSON Graph can send."""
    try:
        return orjson.dumps(value, option=_SORTED)
    except TypeError:  # an integer beyond 64 bits or an unpaired surrogate: the standard library
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def content_hash(policy_type: str, raw: Mapping[str, Any]) -> str:
    """sha256 hex of the item's canonical JSON, without the fields that change without an edit."""
    source = fingerprint_source(policy_type, raw)
    try:  # canonical_json inlined: this runs once per item of every sync
        canonical = orjson.dumps(source, option=_SORTED)
    except TypeError:
        canonical = canonical_json(source)
    return hashlib.sha256(canonical).hexdigest()
