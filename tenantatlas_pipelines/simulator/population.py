"""Which items of one (tenant, policy type) exist in which generation.

Items are numbered by an index ``k``. Generation 1 holds ``0 .. base-1``;
every later generation adds ``round(base * added)`` new indices and removes,
from the items alive before it, about the fraction ``removed``, and edits about the
fraction ``edited`` of the items that were already alive (``edits``): half of the edits
move ``lastModifiedDateTime`` and ``version``, half change the content without touching
either (Graph does not move them for every kind of edit). Everything is
computed from ``k`` alone (no item list is ever held), so a population of a
million items costs nothing until it is paged, and memory stays flat.

Removal uses a low-discrepancy sequence (golden-ratio steps from a seeded
offset) instead of a plain hash: the removed fraction is then close to
``removed`` even for a type of a handful of items, and deterministic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0
_NEVER = 1e12  # generations


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass(frozen=True, slots=True)
class Population:
    """The lifecycle of the items of one tenant's policy type (pure arithmetic on indices)."""

    key: bytes
    base: int
    removed: float
    added: float
    edited: float = 0.0
    per_generation: int = field(init=False)
    _offset: float = field(init=False)
    _log_survive: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_generation", _round_half_up(self.base * self.added))
        object.__setattr__(self, "_offset", int.from_bytes(self.key[:8], "big") / 2.0**64)
        log_survive = math.log1p(-self.removed) if 0.0 < self.removed < 1.0 else None
        object.__setattr__(self, "_log_survive", log_survive)

    @classmethod
    def of(
        cls,
        seed: int,
        tenant_id: str,
        policy_type: str,
        *,
        base: int,
        removed: float,
        added: float,
        edited: float = 0.0,
    ) -> Population:
        key = hashlib.blake2b(f"{seed}|{tenant_id}|{policy_type}".encode(), digest_size=32).digest()
        return cls(key=key, base=base, removed=removed, added=added, edited=edited)

    def span(self, generation: int) -> int:
        """Number of indices that exist (alive or not) by ``generation``."""
        return self.base + max(0, generation - 1) * self.per_generation

    def birth(self, k: int) -> int:
        if k < self.base:
            return 1
        return 2 + (k - self.base) // self.per_generation

    def death(self, k: int) -> int | None:
        """The first generation in which item ``k`` is gone (None: never)."""
        if self.removed <= 0.0:
            return None
        born = self.birth(k)
        if self._log_survive is None:  # removed == 1: every item lives one generation
            return born + 1
        survive_draw = 1.0 - ((self._offset + k * _INV_PHI) % 1.0)  # in (0, 1]
        later_generations = math.log(survive_draw) / self._log_survive
        if later_generations > _NEVER:  # a vanishing removal rate: the item outlives any run
            return None
        return born + 1 + math.floor(later_generations)

    def alive(self, k: int, generation: int) -> bool:
        if k < 0 or k >= self.span(generation):
            return False
        died = self.death(k)
        return died is None or generation < died

    def alive_indices(self, generation: int, start: int = 0) -> Iterator[int]:
        """Alive indices from ``start`` on, in order, lazily."""
        for k in range(max(0, start), self.span(generation)):
            if self.alive(k, generation):
                yield k

    def first_alive(self, generation: int) -> int | None:
        return next(self.alive_indices(generation), None)

    def edits(self, k: int, generation: int) -> tuple[int, int]:
        """Edits of item ``k`` up to ``generation``: (all of them, those that moved its modified time).

        Each generation after the item's birth edits it with probability ``edited``; an edit
        moves ``lastModifiedDateTime`` and ``version`` or not, half and half.
        """
        if self.edited <= 0.0:
            return 0, 0
        threshold = self.edited * 65_536
        edits = touched = 0
        for g in range(self.birth(k) + 1, generation + 1):
            draw = hashlib.blake2b(g.to_bytes(4, "big"), key=self.digest(k), digest_size=4).digest()
            if (draw[0] << 8 | draw[1]) < threshold:
                edits += 1
                touched += draw[2] & 1
        return edits, touched

    def digest(self, k: int) -> bytes:
        """32 pseudo-random bytes of item ``k``: its id and every generated attribute."""
        return hashlib.blake2b(k.to_bytes(8, "big"), key=self.key, digest_size=32).digest()

    def item_id(self, k: int) -> str:
        return guid(self.digest(k))


def guid(digest: bytes) -> str:
    """A version-4-looking GUID from the first 16 bytes of ``digest``."""
    h = digest[:16].hex()
    variant = "89ab"[digest[8] & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"
