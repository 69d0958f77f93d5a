"""The allocator setting that keeps a long sync's memory flat."""

from __future__ import annotations

import platform
import sys

import pytest

from tenantatlas_pipelines.sync import allocator


def test_the_mmap_threshold_is_set_once_to_128_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_pinned", False)
    calls: list[tuple[int, int]] = []

    def mallopt(option: int, value: int) -> int:
        calls.append((option, value))
        return 1

    monkeypatch.setattr(allocator, "_mallopt", lambda: mallopt)
    assert allocator.pin_mmap_threshold() is True
    assert allocator.pin_mmap_threshold() is True
    assert calls == [(allocator.M_MMAP_THRESHOLD, 128 * 1024)]


def test_without_mallopt_or_when_refused_nothing_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_pinned", False)
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    assert allocator.pin_mmap_threshold() is False
    monkeypatch.setattr(allocator, "_mallopt", lambda: lambda _option, _value: 0)
    assert allocator.pin_mmap_threshold() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="a glibc setting"
)
def test_glibc_accepts_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_pinned", False)
    assert allocator.pin_mmap_threshold() is True
