"""Listings (what a Graph path serves) and pages over them, rendered lazily.

A listing is a list of segments; each segment is one population of items of
one shape. Most paths serve one segment. ``deviceConfigurations`` without
``$filter`` serves the device configurations and then the update rings (the
client must exclude those), ``managedAppPolicies`` serves the app protection
policies and then the targeted app configurations, ``roleDefinitions``
without ``isBuiltIn eq false`` serves Intune's built-in roles first.

A cursor is ``(segment, item index)``; the opaque ``$skiptoken`` carries it
and the page number, so no server-side paging state exists.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tenantatlas_pipelines.inventory.catalog import CATALOG
from tenantatlas_pipelines.simulator.population import Population
from tenantatlas_pipelines.simulator.shapes import BUILTIN_ROLE_SHAPE

Cursor = tuple[int, int]
_TOKEN_PREFIX = "sim1"


@dataclass(frozen=True, slots=True)
class Segment:
    owner: str | None  # the catalog policy type these items belong to (None: built-in roles)
    shape: str
    population: Population


@dataclass(frozen=True, slots=True)
class Listing:
    policy_type: str  # the type the request is for: faults and 403 scopes follow it
    segments: tuple[Segment, ...]


class ListingError(ValueError):
    """A path or query the simulated Graph refuses (answered 400 BadRequest)."""


def normalise_filter(value: str) -> str:
    return " ".join(value.replace('"', "'").split()).lower()


_RING_FILTER = normalise_filter(CATALOG["windowsUpdateRing"].filter or "")
_CUSTOM_ROLES_FILTER = normalise_filter(CATALOG["roleDefinition"].filter or "")
_BUILTIN_ROLES_FILTER = "isbuiltin eq true"

# catalog path -> the policy type served when no $filter is given
PATH_TYPES: Mapping[str, str] = {
    row.path: row.key for row in CATALOG.values() if row.filter is None or row.key == "roleDefinition"
}


def resolve_listing(path: str, filter_: str | None, population: Callable[[str], Population]) -> Listing:
    """The listing a catalog path serves for ``$filter``; ``population(shape)`` gives populations."""
    policy_type = PATH_TYPES.get(path)
    if policy_type is None:
        segment = path.rsplit("/", 1)[-1] or path
        raise ListingError(f"Resource not found for the segment '{segment}'.")

    def seg(key: str) -> Segment:
        return Segment(None if key == BUILTIN_ROLE_SHAPE else key, key, population(key))

    wanted = normalise_filter(filter_) if filter_ else None
    if policy_type == "deviceConfiguration":
        if wanted is None:
            return Listing(policy_type, (seg("deviceConfiguration"), seg("windowsUpdateRing")))
        if wanted == _RING_FILTER:
            return Listing("windowsUpdateRing", (seg("windowsUpdateRing"),))
    elif policy_type == "appProtectionPolicy":
        if wanted is None:
            return Listing(policy_type, (seg("appProtectionPolicy"), seg("targetedManagedAppConfiguration")))
    elif policy_type == "roleDefinition":
        if wanted is None:
            return Listing(policy_type, (seg(BUILTIN_ROLE_SHAPE), seg("roleDefinition")))
        if wanted == _CUSTOM_ROLES_FILTER:
            return Listing(policy_type, (seg("roleDefinition"),))
        if wanted == _BUILTIN_ROLES_FILTER:
            return Listing(policy_type, (seg(BUILTIN_ROLE_SHAPE),))
    elif wanted is None:
        return Listing(policy_type, (seg(policy_type),))
    raise ListingError("Invalid filter clause: the filter is not supported on this collection.")


def encode_skiptoken(cursor: Cursor, page: int) -> str:
    raw = f"{_TOKEN_PREFIX}:{cursor[0]}:{cursor[1]}:{page}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str, segments: int) -> tuple[Cursor, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, seg, k, page = raw.split(":")
        cursor, number = (int(seg), int(k)), int(page)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ListingError("Invalid $skiptoken.") from None
    if prefix != _TOKEN_PREFIX or not 0 <= cursor[0] < max(segments, 1) or cursor[1] < 0 or number < 0:
        raise ListingError("Invalid $skiptoken.")
    return cursor, number


@dataclass(slots=True)
class Page:
    items: list[str]
    next_cursor: Cursor | None  # None: this is the last page
    last_cursor: Cursor | None  # the cursor of the last item on the page


Render = Callable[[int, Segment, int], str]


def collect(listing: Listing, generation: int, start: Cursor, limit: int, render: Render) -> Page:
    """Up to ``limit`` alive items from ``start``; the next cursor only if another item exists."""
    items: list[str] = []
    last: Cursor | None = None
    s, k = start
    while s < len(listing.segments):
        segment = listing.segments[s]
        population = segment.population
        for index in population.alive_indices(generation, k):
            if len(items) >= limit:
                return Page(items, (s, index), last)
            items.append(render(s, segment, index))
            last = (s, index)
        s, k = s + 1, 0
    return Page(items, None, last)


def page_start(listing: Listing, generation: int, page: int, limit: int) -> Cursor:
    """Where page number ``page`` starts when paging from the beginning (no faults)."""
    cursor: Cursor = (0, 0)
    for _ in range(page):
        skipped = collect(listing, generation, cursor, limit, lambda _s, _seg, _k: "")
        if skipped.next_cursor is None:
            break
        cursor = skipped.next_cursor
    return cursor
