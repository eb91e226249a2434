"""Huge pages under vector indexes: finding the memory a load mapped, and advising it."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from assay.backends.vector.hnsw import HnswIndex
from assay.kit import hugepages
from assay.kit.hugepages import HUGE_PAGE, MIN_REGION

MiB = 1 << 20


def test_new_regions_are_the_new_or_changed_large_mappings_trimmed_to_huge_pages() -> None:
    base = 1 << 40
    before = {base: base + 64 * MiB, base + 128 * MiB: base + 130 * MiB}
    after = {
        base: base + 64 * MiB,  # unchanged: not new
        base + 128 * MiB: base + 160 * MiB,  # grew: new as it is now
        base + 256 * MiB + 4096: base + 300 * MiB + 4096,  # new, unaligned: trimmed inward
        base + 512 * MiB: base + 512 * MiB + MIN_REGION - 4096,  # new, too small
    }
    assert hugepages.new_regions(before, after) == [
        (base + 128 * MiB, base + 160 * MiB),
        (base + 258 * MiB, base + 300 * MiB),
    ]


needs_thp = pytest.mark.skipif(not hugepages.supported(), reason="no transparent huge pages")


@needs_thp
def test_a_new_anonymous_mapping_is_found_and_advised_without_harm() -> None:
    before = hugepages.anonymous_mappings()
    size = 32 * MiB
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region[: size // 2] = b"\x07" * (size // 2)  # half touched, half never
        regions = hugepages.new_regions(before, hugepages.anonymous_mappings())
        assert regions, "the new 32 MiB mapping was not found"
        assert all(end - start >= MIN_REGION and start % HUGE_PAGE == 0 for start, end in regions)
        hugepages.advise(regions, background=False)  # untouched huge pages are skipped
        made = hugepages.collapse(regions)  # again: already huge, or refused; never an error
        assert 0 <= made <= sum(end - start for start, end in regions) // HUGE_PAGE
        assert region[: size // 2] == b"\x07" * (size // 2)  # contents survive a collapse
        assert region[size // 2 :] == bytes(size // 2)
    finally:
        region.close()


def test_collapse_of_memory_no_longer_mapped_is_refused_quietly() -> None:
    region = mmap.mmap(-1, 16 * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    array = np.frombuffer(region, dtype=np.uint8)
    start = array.ctypes.data
    del array
    region.close()
    # Unmapped now: the kernel refuses each page (unless something else was mapped there
    # since, which a collapse does not harm); nothing raises.
    first = -(-start // HUGE_PAGE) * HUGE_PAGE
    assert 0 <= hugepages.collapse([(first, first + 4 * HUGE_PAGE)]) <= 4


def test_a_bulk_add_and_a_load_search_the_same_with_huge_pages(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)  # a bulk add (>= 1024 keys)
    keys = np.arange(3000, dtype=np.uint64)
    index = HnswIndex(32)
    index.add(keys, vectors)
    path = tmp_path / "graph.index"
    index.save(path, {"feature": "f"})
    loaded = HnswIndex.from_saved(path, index.save_header({"feature": "f"}))
    for row in (0, 1234, 2999):
        found, _ = loaded.search(vectors[row], 5)
        assert found[0] == row
        assert list(found) == list(index.search(vectors[row], 5)[0])
