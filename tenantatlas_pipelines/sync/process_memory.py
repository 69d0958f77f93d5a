"""Process memory settings for a sync: flat RSS, and a garbage collector that skips startup objects.

Both are process-wide and applied once per process (``prepare_process``): a Dagster run
worker exists for its run, and a long-lived process (tests, a notebook) gets them once.

**The C heap.** glibc serves allocations above its mmap threshold (128 KiB at start) with mmap, and gives
the memory back on free. But each time such a block is freed the threshold rises to its
size (up to 32 MiB), so later pages of Graph JSON and batch documents of a few MiB come
from the heap instead, where freed space fragments and stays resident: the W1x10 sync
(1,000,000 items) grew by 60 MB over its minute. Pinning the threshold keeps every large
buffer on mmap: its peak RSS stays flat (benchmarks/README.md). Nothing happens off glibc.

**The garbage collector.** A sync makes millions of short-lived containers (Graph's JSON
objects), so the collector runs often, and each full collection walks every object the
process holds: in a Dagster worker, the hundreds of thousands made by importing Dagster,
SQLAlchemy and the definitions. ``gc.freeze()`` (after one collection) moves those to the
permanent generation, which collections skip: 0.5 s of collector time per W1 sync became
0.2 s. Objects made later are collected as usual.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed
_pinned = False
_frozen = False


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None (not Linux, or a C library without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    return cast(Callable[[int, int], int], function)


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB (once per process); False where that is not possible."""
    global _pinned
    if not _pinned and (mallopt := _mallopt()) is not None:
        _pinned = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        if not _pinned:
            log.debug("mallopt(M_MMAP_THRESHOLD) refused; the heap may grow with long syncs")
    return _pinned


def freeze_startup_objects() -> bool:
    """Collect once, then exclude every object alive now from later collections (once per process)."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
    return _frozen


def prepare_process() -> None:
    """Both settings above, each at most once per process."""
    pin_mmap_threshold()
    freeze_startup_objects()
