"""The building blocks of generated items: variants, shapes and digest helpers.

An item is two parts: small fields that vary per item (id, name, dates,
platform, assignment state ...), computed from the item's 32-byte digest, and
a static block of realistic type-specific settings shared by every item of
the same *variant* (odata type). The static block is serialised once, so a
page is rendered by writing the small part and splicing the pre-rendered block
in: that keeps serving fast and memory flat. Descriptions of several lengths
spread items over 1 to 3 KB of JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

G = "#microsoft.graph."
_SIZE_TARGETS = (1_200, 1_550, 1_900, 2_250, 2_650)  # bytes per item, before any icon
_VARYING_ESTIMATE = 380  # bytes of the per-item fields, roughly

_DESCRIPTION_TEXT = (
    "Managed by the endpoint engineering team. Changes go through the weekly change advisory board "
    "and are piloted on the IT ring for five business days before broad assignment. Owner: workplace "
    "services; escalation: the Intune on-call rota. This profile implements the corporate security "
    "baseline (CIS level 1 with documented exceptions), keeps BitLocker and Defender settings aligned "
    "with the compliance policies, and must not be assigned to kiosk or shared devices. Exceptions are "
    "tracked in the governance register; see the runbook for rollback steps, reporting and the "
    "Conditional Access dependencies. Reviewed quarterly; last review found no drift from the "
    "approved configuration, and the pilot feedback was incorporated. "
)

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
to_json = _ENCODER.encode


def number(d: bytes, i: int, n: int) -> int:
    """A number in ``range(n)`` from bytes ``i`` and ``i+1`` of the digest."""
    return ((d[i] << 8) | d[i + 1]) % n


def pick(d: bytes, i: int, seq: tuple[Any, ...]) -> Any:
    return seq[((d[i] << 8) | d[i + 1]) % len(seq)]


def flag(d: bytes, i: int, percent: int) -> bool:
    """True for about ``percent`` % of digests."""
    return d[i] * 100 < percent * 256


@dataclass(frozen=True, slots=True)
class Variant:
    """One odata type: its static settings, pre-rendered as JSON members."""

    odata_type: str | None
    odata_member: str | None  # '"@odata.type":"#microsoft.graph.x"'
    static_members: tuple[tuple[str, str], ...]  # (key, '"key":value')
    fragment: str  # every static member, comma-joined
    description_members: tuple[str, ...]  # '"description":"..."' of several lengths


FieldsFn = Callable[[bytes, int, "str | None"], dict[str, Any]]
StaticFn = Callable[["str | None"], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Shape:
    key: str
    variants: tuple[Variant, ...]
    name_field: str
    nouns: tuple[str, ...]  # JSON-escaped
    fields: FieldsFn
    versioned: bool = True
    scope_tags: bool = True
    modified_field: str = "lastModifiedDateTime"

    def variant(self, d: bytes) -> Variant:
        return self.variants[number(d, 0, len(self.variants))]


def member(key: str, value: Any) -> str:
    """One JSON object member: ``"key":value``."""
    return f'"{key}":{to_json(value)}'


def _description_members(static_size: int) -> tuple[str, ...]:
    """Descriptions of several lengths, so items spread over the 1 to 3 KB range."""
    out = []
    for target in _SIZE_TARGETS:
        length = max(0, target - static_size - _VARYING_ESTIMATE)
        text = (_DESCRIPTION_TEXT * (1 + length // len(_DESCRIPTION_TEXT)))[:length]
        text = text.rsplit(" ", 1)[0].rstrip(",;:") + "." if " " in text else ""
        out.append(member("description", text))
    return tuple(out)


def make_shape(
    key: str,
    odata_types: Iterable[str | None],
    static: StaticFn,
    fields: FieldsFn,
    nouns: tuple[str, ...],
    *,
    name_field: str = "displayName",
    versioned: bool = True,
    scope_tags: bool = True,
    modified_field: str = "lastModifiedDateTime",
    unsized: frozenset[str] = frozenset(),
) -> Shape:
    variants = []
    for odata_type in odata_types:
        # the per-item fields win: leave their keys out of the static block
        varying_keys = set(fields(bytes(32), 0, odata_type))
        members = tuple(
            (name, member(name, value))
            for name, value in static(odata_type).items()
            if name not in varying_keys
        )
        fragment = ",".join(text for _name, text in members)
        sized = sum(len(text.encode()) + 1 for name, text in members if name not in unsized)
        odata_member = None if odata_type is None else member("@odata.type", odata_type)
        variants.append(Variant(odata_type, odata_member, members, fragment, _description_members(sized)))
    return Shape(
        key,
        tuple(variants),
        name_field,
        tuple(to_json(noun)[1:-1] for noun in nouns),
        fields,
        versioned=versioned,
        scope_tags=scope_tags,
        modified_field=modified_field,
    )
