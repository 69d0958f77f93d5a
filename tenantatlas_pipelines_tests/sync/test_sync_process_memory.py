"""Process memory settings of a sync: the mmap threshold and the frozen startup objects."""

from __future__ import annotations

import platform
import sys

import pytest

from tenantatlas_pipelines.sync import process_memory


def test_the_mmap_threshold_is_set_once_to_128_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_memory, "_pinned", False)
    calls: list[tuple[int, int]] = []

    def mallopt(option: int, value: int) -> int:
        calls.append((option, value))
        return 1

    monkeypatch.setattr(process_memory, "_mallopt", lambda: mallopt)
    assert process_memory.pin_mmap_threshold() is True
    assert process_memory.pin_mmap_threshold() is True
    assert calls == [(process_memory.M_MMAP_THRESHOLD, 128 * 1024)]


def test_without_mallopt_or_when_refused_nothing_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_memory, "_pinned", False)
    monkeypatch.setattr(process_memory, "_mallopt", lambda: None)
    assert process_memory.pin_mmap_threshold() is False
    monkeypatch.setattr(process_memory, "_mallopt", lambda: lambda _option, _value: 0)
    assert process_memory.pin_mmap_threshold() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_glibc_accepts_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_memory, "_pinned", False)
    assert process_memory.pin_mmap_threshold() is True


def test_startup_objects_are_frozen_once_and_later_garbage_is_still_collected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    monkeypatch.setattr(process_memory, "_frozen", False)
    freezes: list[int] = []
    monkeypatch.setattr(process_memory.gc, "freeze", lambda: freezes.append(1))
    assert process_memory.freeze_startup_objects() is True
    assert process_memory.freeze_startup_objects() is True
    assert freezes == [1]

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    import weakref

    node = Node()
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None
