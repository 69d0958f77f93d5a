"""Rendering items: JSON text for pages, dicts for tests, straight from the digest."""

from __future__ import annotations

import calendar
import functools
import hashlib
import json
import time
from typing import Any

from tenantatlas_pipelines.simulator.population import Population, guid
from tenantatlas_pipelines.simulator.shape_kit import Shape, Variant, member, number, pick, to_json
from tenantatlas_pipelines.simulator.shapes import BUILTIN_ROLE_SHAPE, SHAPES

_EPOCH = 1_609_459_200  # 2021-01-01T00:00:00Z
_YEARS3 = 3 * 365 * 86_400
_NAME_SUFFIXES = tuple(
    to_json(x)[1:-1] for x in ("", "", "", "", "", "", "", " (Zürich)", " \u2013 Ünterwerk", " [pilot]")
)
_SCOPE_TAGS = (
    *(['"roleScopeTagIds":["0"]'] * 3),
    *(f'"roleScopeTagIds":["0","{n}"]' for n in range(1, 5)),
)
_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))


@functools.lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86_400))


def _timestamp(seconds: int, fraction: int) -> str:
    """Graph's format: seconds with seven fractional digits, UTC."""
    days, rest = divmod(seconds, 86_400)
    minutes, secs = divmod(rest, 60)
    return f"{_day(days)}T{_MINUTES[minutes]}{secs:02d}.{fraction % 10_000_000:07d}Z"


def _dates(d: bytes, born: int) -> tuple[str, str]:
    """Created and last-modified stamps; items born in later generations are younger."""
    if born <= 1:
        created = _EPOCH + int.from_bytes(d[8:12], "big") % _YEARS3
    else:
        created = _EPOCH + _YEARS3 + (born - 2) * 30 * 86_400 + int.from_bytes(d[8:12], "big") % (29 * 86_400)
    modified = created + int.from_bytes(d[12:15], "big") % (200 * 86_400)
    return (
        _timestamp(created, d[15] << 16 | d[16] << 8 | d[17]),
        _timestamp(modified, d[18] << 16 | d[19] << 8 | d[20]),
    )


# first-generation items draw their stamps from a table (formatting dates is the slow part)
_FIRST_GENERATION_DATES = tuple(
    _dates(hashlib.blake2b(i.to_bytes(4, "big"), digest_size=32).digest(), 1) for i in range(4096)
)


def _members(
    population: Population, shape: Shape, k: int, generation: int = 1
) -> tuple[list[tuple[str, str]], Variant]:
    """The per-item members of item ``k`` in ``generation`` as (key, JSON member text), in Graph's order.

    An edited item (``Population.edits``) has its description revised per edit; an edit that
    touched it also moves ``lastModifiedDateTime`` on by a day and ``version`` up by one.
    """
    d = population.digest(k)
    variant = shape.variant(d)
    born = population.birth(k)
    edits, touched = population.edits(k, generation)
    created, modified = _FIRST_GENERATION_DATES[number(d, 8, 4096)] if born <= 1 else _dates(d, born)
    if touched:
        modified = _touched(modified, touched)
    out: list[tuple[str, str]] = []
    if variant.odata_member is not None:
        out.append(("@odata.type", variant.odata_member))
    out.append(("id", f'"id":"{guid(d)}"'))
    if shape.key == BUILTIN_ROLE_SHAPE:
        name = shape.nouns[k % len(shape.nouns)]
    else:
        name = f"{shape.nouns[number(d, 2, len(shape.nouns))]} {k + 1:04d}{pick(d, 4, _NAME_SUFFIXES)}"
    out.append((shape.name_field, f'"{shape.name_field}":"{name}"'))
    description = variant.description_members[number(d, 6, len(variant.description_members))]
    if edits:  # the JSON string's closing quote is the member's last character
        description = f'{description[:-1]} (revision {edits + 1})"'
    out.append(("description", description))
    out.append(("createdDateTime", f'"createdDateTime":"{created}"'))
    out.append((shape.modified_field, f'"{shape.modified_field}":"{modified}"'))
    if shape.versioned:
        out.append(("version", f'"version":{1 + d[21] % 9 + touched}'))
    if shape.scope_tags:
        out.append(("roleScopeTagIds", _SCOPE_TAGS[d[23] % len(_SCOPE_TAGS)]))
    for key, value in shape.fields(d, k, variant.odata_type).items():
        out.append((key, member(key, value)))
    return out, variant


def _touched(modified: str, days: int) -> str:
    """A Graph timestamp ``days`` days later (same time of day and fraction)."""
    moved = time.gmtime(calendar.timegm(time.strptime(modified[:10], "%Y-%m-%d")) + days * 86_400)
    return time.strftime("%Y-%m-%d", moved) + modified[10:]


def render_item(
    population: Population,
    shape_key: str,
    k: int,
    *,
    select: frozenset[str] | None = None,
    drop_id: bool = False,
    generation: int = 1,
) -> str:
    """Item ``k`` as JSON text, as it appears in a page's ``value`` in ``generation``.

    With ``select`` only those properties are kept (plus ``@odata.type`` and ``id``).
    """
    members, variant = _members(population, SHAPES[shape_key], k, generation)
    if drop_id:
        members = [m for m in members if m[0] != "id"]
    if select is not None:
        wanted = [text for key, text in members if key in select or key in ("@odata.type", "id")]
        wanted.extend(text for key, text in variant.static_members if key in select)
        return "{" + ",".join(wanted) + "}"
    if variant.fragment:
        return "{" + ",".join([text for _key, text in members]) + "," + variant.fragment + "}"
    return "{" + ",".join([text for _key, text in members]) + "}"


def build_item(
    population: Population,
    shape_key: str,
    k: int,
    generation: int = 1,
    select: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Item ``k`` of a population as a fresh dict: exactly what ``render_item`` serves."""
    text = render_item(population, shape_key, k, select=select, generation=generation)
    item: dict[str, Any] = json.loads(text)
    return item
