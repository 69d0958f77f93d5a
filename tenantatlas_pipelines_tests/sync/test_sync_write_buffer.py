"""The write buffer: batches grow while the database is busy; a full buffer makes the writer wait."""

from __future__ import annotations

import asyncio

import pytest

from tenantatlas_pipelines.inventory.normalize import NormalizedItem
from tenantatlas_pipelines.sync.write_buffer import WriteBuffer


def _items(prefix: str, n: int) -> list[NormalizedItem]:
    return [NormalizedItem(f"{prefix}{i}", None, "configuration", None) for i in range(n)]


def test_a_batch_is_ready_only_from_flush_at_items_and_holds_every_type_buffered() -> None:
    async def body() -> None:
        buffer = WriteBuffer(flush_at=5, max_items=100)
        await buffer.add("a", _items("a", 3))
        waiting = asyncio.create_task(buffer.next_batch())
        await asyncio.sleep(0)
        assert not waiting.done()  # 3 < 5
        await buffer.add("b", _items("b", 2))
        batch = await asyncio.wait_for(waiting, 1)
        assert batch is not None
        assert {key: len(items) for key, items in batch.items()} == {"a": 3, "b": 2}
        assert buffer.count == 0

    asyncio.run(body())


def test_items_added_while_the_consumer_writes_come_as_one_larger_batch() -> None:
    async def body() -> list[int]:
        buffer = WriteBuffer(flush_at=2, max_items=1000)
        sizes: list[int] = []

        async def consumer() -> None:
            while (batch := await buffer.next_batch()) is not None:
                sizes.append(sum(len(items) for items in batch.values()))
                await asyncio.sleep(0.05)  # a slow database

        task = asyncio.create_task(consumer())
        for page in range(10):
            await buffer.add("a", _items(f"p{page}-", 2))
            await asyncio.sleep(0.01)
        buffer.close()
        await asyncio.wait_for(task, 5)
        return sizes

    sizes = asyncio.run(body())
    assert sum(sizes) == 20
    assert len(sizes) < 10 and max(sizes) > 2  # fewer, larger statements than pages


def test_a_full_buffer_makes_the_writer_wait_until_a_batch_is_taken() -> None:
    async def body() -> None:
        buffer = WriteBuffer(flush_at=1, max_items=4)
        adding = asyncio.create_task(buffer.add("a", _items("a", 4)))
        await asyncio.sleep(0.01)
        assert not adding.done()  # full: waits for the consumer
        assert await buffer.next_batch() is not None
        await asyncio.wait_for(adding, 1)

    asyncio.run(body())


def test_closing_hands_over_what_is_left_then_none_and_refuses_more() -> None:
    async def body() -> None:
        buffer = WriteBuffer(flush_at=10, max_items=100)
        await buffer.add("a", _items("a", 1))
        buffer.close()
        rest = await buffer.next_batch()
        assert rest is not None and len(rest["a"]) == 1
        assert await buffer.next_batch() is None
        with pytest.raises(RuntimeError, match="closed"):
            await buffer.add("a", _items("x", 1))

    asyncio.run(body())


def test_flush_at_must_be_positive_and_within_the_bound() -> None:
    with pytest.raises(ValueError, match="flush_at"):
        WriteBuffer(flush_at=0, max_items=10)
    with pytest.raises(ValueError, match="flush_at"):
        WriteBuffer(flush_at=11, max_items=10)


def test_sync_settings_refuse_a_batch_larger_than_the_buffer_and_name_the_fix() -> None:
    from tenantatlas_pipelines.sync.service import SyncSettings

    with pytest.raises(ValueError, match="raise max_buffered_items"):
        SyncSettings(batch_size=10_000)
    assert SyncSettings(batch_size=10_000, max_buffered_items=20_000).batch_size == 10_000
    with pytest.raises(ValueError, match="queue_pages"):
        SyncSettings(queue_pages=0)
