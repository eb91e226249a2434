"""Transparent huge pages under a large in-memory vector index (Linux; elsewhere a no-op).

An HNSW walk at a million vectors reads a few thousand vectors and neighbour lists spread over a
gigabyte or more. With 4 KiB pages nearly every one of those reads is also a TLB miss; with
2 MiB pages most are not, and the same walk takes less time (1M x 384-d bf16: 1.29 -> 1.09 ms
a query at the median, two copies of one graph compared in one process; `bench/RESULTS.md`).

Most kernels hand huge pages only to memory that asks (`transparent_hugepage/enabled` set to
`madvise`), and usearch maps its memory itself. So the mappings a load or a bulk add made are
found by comparing `/proc/self/maps` before and after, advised `MADV_HUGEPAGE` (their later
growth faults in 2 MiB pages), and what is already in them is collapsed into huge pages with
`MADV_COLLAPSE` (Linux 6.1+) by one background thread, 2 MiB at a time, while searches go on.
A kernel set to `never` (the operator's switch) or without THP makes this a no-op.

A walk that reaches the 2 MiB being collapsed waits until the kernel has copied it (~14 ms on
this project's virtual machines, where guest memory is backed on first touch; far less on bare
metal), and a walk reaches most of them. So the collapser works a tenth of the time and sleeps
the rest: at most one search in ten meets it, for the minute or so a 1 GiB index takes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25
# Smaller mappings are malloc arenas and the like: not worth a huge page's rounding.
MIN_REGION = 8 << 20
# The collapser's share of the time (see the module's docstring).
DUTY = 0.1
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

Region = tuple[int, int]


@cache
def _madvise() -> Any:
    """libc's `madvise`, or None where huge pages cannot be asked for."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mode = _THP_MODE.read_text()
    except OSError:
        return None
    if "[never]" in mode:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def supported() -> bool:
    """Whether this process can ask for transparent huge pages."""
    return _madvise() is not None


def anonymous_mappings() -> dict[int, int]:
    """This process's private anonymous writable mappings: start -> end."""
    found: dict[int, int] = {}
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                # No sixth field: no file, and not [heap] or [stack].
                if len(fields) == 5 and fields[1].startswith("rw") and fields[1][3] == "p":
                    start, end = fields[0].split("-")
                    found[int(start, 16)] = int(end, 16)
    except OSError:
        pass
    return found


def new_regions(before: dict[int, int], after: dict[int, int]) -> list[Region]:
    """The mappings of `after` at least `MIN_REGION` long that `before` did not have as they
    are now, trimmed inward to whole huge pages."""
    regions = []
    for start, end in after.items():
        if before.get(start) == end:
            continue
        first = -(-start // HUGE_PAGE) * HUGE_PAGE
        last = end // HUGE_PAGE * HUGE_PAGE
        if last - first >= MIN_REGION:
            regions.append((first, last))
    return regions


@contextmanager
def for_new_mappings(*, background: bool = True) -> Iterator[None]:
    """Back whatever large memory the block maps with huge pages (see the module); its
    present pages are collapsed in the background, or before the block ends."""
    if not supported():
        yield
        return
    before = anonymous_mappings()
    yield
    advise(new_regions(before, anonymous_mappings()), background=background)


def advise(regions: list[Region], *, background: bool = True) -> None:
    """Ask for huge pages in `regions`, and collapse their present pages (in the background,
    or before returning)."""
    madvise = _madvise()
    if madvise is None or not regions:
        return
    for start, end in regions:
        madvise(start, end - start, _MADV_HUGEPAGE)
    if background:
        _collapser().put(regions)
    else:
        collapse(regions)


@cache
def _collapser() -> queue.SimpleQueue[list[Region]]:
    work: queue.SimpleQueue[list[Region]] = queue.SimpleQueue()
    threading.Thread(target=_collapse_forever, args=(work,), name="hugepages", daemon=True).start()
    return work


def _collapse_forever(work: queue.SimpleQueue[list[Region]]) -> None:
    while True:
        collapse(work.get(), duty=DUTY)


def collapse(regions: list[Region], *, duty: float = 1.0) -> int:
    """Collapse `regions` into huge pages, one at a time, working `duty` of the time; how
    many were made. A huge page's worth never touched (no page table yet), or one the region
    no longer has (freed since), is refused by the kernel and skipped: its first touch will
    fault in a huge page anyway."""
    madvise = _madvise()
    if madvise is None:
        return 0
    made = 0
    for start, end in regions:
        for page in range(start, end, HUGE_PAGE):
            started = time.perf_counter()
            # ctypes lets go of the GIL for the call: searches run while the kernel copies.
            made += madvise(page, HUGE_PAGE, _MADV_COLLAPSE) == 0
            if duty < 1.0:
                time.sleep((time.perf_counter() - started) * (1.0 / duty - 1.0))
    log.debug("collapsed %d huge pages in %d regions", made, len(regions))
    return made
