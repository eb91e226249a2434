"""Handing freed heap memory back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
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
