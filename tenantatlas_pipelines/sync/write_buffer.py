"""The buffer between normalisation and the database: batches that grow while the database is busy.

The sync's writer adds each normalised page; one flusher takes everything buffered as
one batch (every policy type in it, for one upsert statement) as soon as the previous
upsert is done and at least ``flush_at`` items wait. So the writer never waits for the
database while it is writing: when the database is the slower side, batches grow instead
of the fetchers stalling. Only a full buffer (``max_items``) makes the writer wait, which
keeps memory bounded.
"""

from __future__ import annotations

import asyncio

from tenantatlas_pipelines.inventory.normalize import NormalizedItem

Batch = dict[str, list[NormalizedItem]]  # policy type -> its items


class WriteBuffer:
    """Items waiting for the database, per policy type (one producer, one consumer)."""

    def __init__(self, flush_at: int, max_items: int) -> None:
        if not 0 < flush_at <= max_items:
            raise ValueError(f"need 0 < flush_at <= max_items, got {flush_at} and {max_items}")
        self.flush_at = flush_at
        self.max_items = max_items
        self.count = 0
        self._items: Batch = {}
        self._closed = False
        self._wanted = asyncio.Event()  # a batch is ready (or the buffer is closed)
        self._room = asyncio.Event()  # below max_items
        self._room.set()

    async def add(self, policy_type: str, items: list[NormalizedItem]) -> None:
        """Buffer ``items``; wait while the buffer is full."""
        if self._closed:
            raise RuntimeError("the write buffer is closed")
        self._items.setdefault(policy_type, []).extend(items)
        self.count += len(items)
        if self.count >= self.flush_at:
            self._wanted.set()
        while self.count >= self.max_items:
            self._room.clear()
            await self._room.wait()

    def close(self) -> None:
        """No more items: the consumer takes what is left, then gets None."""
        self._closed = True
        self._wanted.set()

    async def next_batch(self) -> Batch | None:
        """At least ``flush_at`` items, or whatever is left once closed; None when closed and empty."""
        while self.count < self.flush_at and not self._closed:
            self._wanted.clear()
            await self._wanted.wait()
        if self.count == 0:
            return None
        batch, self._items, self.count = self._items, {}, 0
        self._room.set()
        return batch
