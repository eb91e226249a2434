"""The index the app uses: exact while small, HNSW once large; and loading any saved index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from assay.backends.vector.base import (
    VectorIndex,
    VectorIndexError,
    check_loaded,
    coerce_keys,
    coerce_vectors,
    read_index_header,
    write_index_files,
)
from assay.backends.vector.exact import ExactIndex
from assay.backends.vector.hnsw import HnswIndex

DEFAULT_EXACT_LIMIT = 20_000


class AdaptiveIndex:
    """Exact search up to `exact_limit` vectors, then a one-way move to HNSW.

    Below the limit brute force is both exact and fast (20k x 384 floats is one 30 MB matrix
    product); above it the graph keeps search sub-linear. Once moved, the index stays HNSW
    even if it shrinks again, so a collection hovering at the limit does not rebuild back and
    forth.
    """

    def __init__(
        self,
        dimensions: int,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        dtype: str = "bf16",
        *,
        inner: ExactIndex | HnswIndex | None = None,
    ) -> None:
        self.dimensions = int(dimensions)
        self.exact_limit = int(exact_limit)
        self.dtype = dtype
        if inner is not None and inner.dimensions != self.dimensions:
            raise VectorIndexError(
                f"inner index has {inner.dimensions} dimensions, expected {self.dimensions}"
            )
        self._inner: ExactIndex | HnswIndex = inner if inner is not None else ExactIndex(dimensions)

    @property
    def kind(self) -> str:
        """Which index holds the vectors now: "exact" or "hnsw"."""
        return self._inner.kind

    def __len__(self) -> int:
        return len(self._inner)

    def add(self, keys: ArrayLike, vectors: ArrayLike) -> None:
        """Insert or replace the vectors of `keys`, moving to HNSW if this crosses the limit."""
        key_arr = coerce_keys(keys)
        vecs = coerce_vectors(vectors, key_arr.size, self.dimensions)
        if isinstance(self._inner, ExactIndex) and key_arr.size:
            fresh = int((~self._inner.contains_many(np.unique(key_arr))).sum())
            # Move before adding, so a large first batch goes straight into the graph rather
            # than through a full-size float32 matrix first.
            if len(self._inner) + fresh > self.exact_limit:
                self._move_to_hnsw()
        self._inner.add(key_arr, vecs)

    def remove(self, keys: ArrayLike) -> None:
        """Drop `keys`; unknown ones are ignored."""
        self._inner.remove(keys)

    def contains(self, key: int) -> bool:
        """Whether `key` is in the index."""
        return self._inner.contains(key)

    def keys(self) -> np.ndarray:
        """All keys, as uint64."""
        return self._inner.keys()

    def search(
        self, query: ArrayLike, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` keys most cosine-similar to `query` (only `allowed` ones, if given)."""
        return self._inner.search(query, k, allowed)

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the index and `meta` to `path` (+ `<path>.meta.json`) atomically."""
        header = self._inner.save_header(meta)
        header["adaptive"] = {"exact_limit": self.exact_limit, "dtype": self.dtype}
        write_index_files(Path(path), self._inner.write_data, header)

    def _move_to_hnsw(self) -> None:
        keys, vectors = self._inner.export()
        graph = HnswIndex(self.dimensions, dtype=self.dtype)
        if keys.size:
            graph.add(keys, vectors)
        self._inner = graph


def load_index(path: Path) -> tuple[VectorIndex, dict[str, Any]]:
    """The index saved at `path` and the caller's meta saved with it; VectorIndexError if bad."""
    path = Path(path)
    header = read_index_header(path)
    kinds: dict[str, type[ExactIndex] | type[HnswIndex]] = {
        "exact": ExactIndex,
        "hnsw": HnswIndex,
    }
    cls = kinds.get(header["kind"])
    if cls is None:
        raise VectorIndexError(f"unknown vector index kind {header['kind']!r} at {path}")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise VectorIndexError(f"vector index header for {path} has no meta object")
    try:
        inner = cls.from_saved(path, header)
    except VectorIndexError:
        raise
    except Exception as exc:
        # usearch and numpy fail in many ways on a bad file; the caller only needs to rebuild.
        raise VectorIndexError(f"cannot load vector index {path}: {exc}") from exc
    check_loaded(inner, header, path)
    adaptive = header.get("adaptive")
    if not isinstance(adaptive, dict):
        return inner, meta
    try:
        index = AdaptiveIndex(
            inner.dimensions,
            exact_limit=int(adaptive["exact_limit"]),
            dtype=str(adaptive["dtype"]),
            inner=inner,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VectorIndexError(f"bad adaptive settings in the header for {path}") from exc
    return index, meta
