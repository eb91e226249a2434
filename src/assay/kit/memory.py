"""The process heap: freed memory handed back to the operating system, and the cyclic
garbage collector kept off what a long-running process holds for its whole life."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only, not musl
    except OSError:
        return None


def trim_heap() -> None:
    """Return the free pages of every malloc arena to the OS (glibc; elsewhere a no-op).

    Long extractions allocate and free large buffers piece after piece from several threads
    (Whisper, onnxruntime, torch); glibc keeps the freed pages in per-thread arenas, so a
    process's footprint creeps up with the length of the media unless it is trimmed.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


# Allocations between two collections of the youngest generation (CPython's default: 700).
# A request allocates a few hundred container objects, so the default ran a collection
# every request or two; most of what one finds is still in flight and gets promoted, which
# is what made the full collections below frequent.
_YOUNG_THRESHOLD = 10_000
_long_running = False


def tune_for_serving() -> None:
    """Opt this process in to `freeze_heap` (a server or worker that runs for hours; not a
    test run, whose apps come and go) and collect the youngest generation less often."""
    global _long_running
    _long_running = True
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, oldest)


def freeze_heap() -> None:
    """After start-up, or a model load: collect once, then move every object alive into
    the permanent generation, which the collector never scans again. A no-op unless
    `tune_for_serving` was called.

    A full collection walks every tracked object: with the app, its models and SQLAlchemy's
    metadata that was ~200,000 objects and ~100 ms, a dozen times in 15 s of registration
    load (~10 % of the server's time, and its slowest answers). Frozen objects are still
    freed when their last reference goes; only a cycle among them would now outlive its use.
    """
    if _long_running:
        gc.collect()
        gc.freeze()
