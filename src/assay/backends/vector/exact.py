"""Exact cosine search by brute force over an in-memory float32 matrix (small collections)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import ThreadpoolController

from assay.backends.vector.base import (
    VectorIndexError,
    as_key,
    coerce_keys,
    coerce_query,
    coerce_vectors,
    empty_result,
    last_occurrences,
    members,
    normalise_rows,
    sorted_unique,
    top_k,
    write_index_files,
)

_MIN_CAPACITY = 64


@cache
def _single_threaded_blas() -> None:
    """numpy's OpenBLAS on one thread (torch's own BLAS is left alone).

    A search is one matrix-vector product of a few milliseconds: splitting it gains little,
    and two BLAS threads waiting on each other stall for whole scheduler slices whenever the
    cores are busy (measured: 10 ms instead of 0.6 ms for 3,000 x 384 while extraction ran).
    """
    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


class ExactIndex:
    """Unit-normalised rows in one growable matrix; a search scores every (allowed) row."""

    kind = "exact"

    def __init__(self, dimensions: int) -> None:
        if dimensions <= 0:
            raise VectorIndexError(f"dimensions must be positive, got {dimensions}")
        _single_threaded_blas()
        self.dimensions = int(dimensions)
        self._matrix = np.zeros((_MIN_CAPACITY, self.dimensions), dtype=np.float32)
        self._keys = np.zeros(_MIN_CAPACITY, dtype=np.uint64)
        self._rows: dict[int, int] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, keys: ArrayLike, vectors: ArrayLike) -> None:
        """Insert or replace the vectors of `keys`."""
        key_arr = coerce_keys(keys)
        vecs = coerce_vectors(vectors, key_arr.size, self.dimensions)
        if key_arr.size == 0:
            return
        keep = last_occurrences(key_arr)
        key_arr, vecs = key_arr[keep], normalise_rows(vecs[keep])
        rows = self._rows_of(key_arr)
        existing = rows >= 0
        self._matrix[rows[existing]] = vecs[existing]
        fresh = ~existing
        count = int(fresh.sum())
        if count == 0:
            return
        start = self._n
        self._reserve(start + count)
        self._matrix[start : start + count] = vecs[fresh]
        self._keys[start : start + count] = key_arr[fresh]
        self._rows.update(zip(key_arr[fresh].tolist(), range(start, start + count), strict=True))
        self._n = start + count

    def remove(self, keys: ArrayLike) -> None:
        """Drop `keys`; unknown ones are ignored."""
        for key in coerce_keys(keys).tolist():
            row = self._rows.pop(key, None)
            if row is None:
                continue
            # Swap-with-last keeps the live rows contiguous, so removal is O(1) per key.
            last = self._n - 1
            if row != last:
                moved = int(self._keys[last])
                self._matrix[row] = self._matrix[last]
                self._keys[row] = moved
                self._rows[moved] = row
            self._n = last
        capacity = self._keys.size
        if capacity > _MIN_CAPACITY and self._n < capacity // 4:
            self._resize(max(_MIN_CAPACITY, 2 * self._n))

    def contains(self, key: int) -> bool:
        """Whether `key` is in the index."""
        value = as_key(key)
        return value is not None and value in self._rows

    def contains_many(self, keys: ArrayLike) -> np.ndarray:
        """Boolean mask: which of `keys` are in the index."""
        return self._rows_of(coerce_keys(keys)) >= 0

    def keys(self) -> np.ndarray:
        """All keys, as uint64."""
        return self._keys[: self._n].copy()

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of all keys and their unit-normalised vectors."""
        return self._keys[: self._n].copy(), self._matrix[: self._n].copy()

    def search(
        self, query: ArrayLike, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` keys most cosine-similar to `query` (only `allowed` ones, if given)."""
        q = coerce_query(query, self.dimensions)
        if k <= 0 or self._n == 0:
            return empty_result()
        if allowed is None:
            scores = self._matrix[: self._n] @ q
            pick = top_k(scores, k)
            rows = pick
        else:
            allow = sorted_unique(allowed)
            if allow.size * 8 < self._n:
                # Few allowed keys: dictionary lookups beat a pass over every stored key.
                candidates = self._rows_of(allow)
                candidates = candidates[candidates >= 0]
            else:
                candidates = np.flatnonzero(members(self._keys[: self._n], allow))
            if candidates.size == 0:
                return empty_result()
            scores = self._matrix[candidates] @ q
            pick = top_k(scores, k)
            rows = candidates[pick]
        sims = np.clip(scores[pick], -1.0, 1.0).astype(np.float32)
        return self._keys[rows].copy(), sims

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the index and `meta` to `path` (+ `<path>.meta.json`) atomically."""
        write_index_files(Path(path), self.write_data, self.save_header(meta))

    def save_header(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The header fields `save` writes next to the data."""
        return {
            "kind": self.kind,
            "dimensions": self.dimensions,
            "count": self._n,
            "params": {},
            "meta": meta,
        }

    def write_data(self, path: Path) -> None:
        """Write keys and vectors to `path` as an uncompressed .npz."""
        # A file object stops numpy from appending ".npz" to the temporary name.
        with Path(path).open("wb") as f:
            np.savez(f, keys=self._keys[: self._n], vectors=self._matrix[: self._n])

    @classmethod
    def from_saved(cls, path: Path, header: dict[str, Any]) -> ExactIndex:
        """The index whose data `write_data` wrote to `path`."""
        dims = int(header["dimensions"])
        with np.load(Path(path), allow_pickle=False) as data:
            keys = data["keys"]
            vectors = data["vectors"]
        if (
            keys.dtype != np.uint64
            or vectors.dtype != np.float32
            or keys.ndim != 1
            or vectors.shape != (keys.size, dims)
        ):
            raise VectorIndexError(f"vector index data {path} has an unexpected layout")
        index = cls(dims)
        index._resize(max(_MIN_CAPACITY, keys.size))
        index._matrix[: keys.size] = vectors
        index._keys[: keys.size] = keys
        index._rows = dict(zip(keys.tolist(), range(keys.size), strict=True))
        index._n = keys.size
        if len(index._rows) != keys.size:
            raise VectorIndexError(f"vector index data {path} repeats keys")
        return index

    def _rows_of(self, keys: np.ndarray) -> np.ndarray:
        rows = self._rows
        return np.fromiter(
            (rows.get(key, -1) for key in keys.tolist()), dtype=np.int64, count=keys.size
        )

    def _reserve(self, needed: int) -> None:
        capacity = self._keys.size
        if needed > capacity:
            # Doubling keeps a stream of single-row adds amortised O(1) per row.
            self._resize(max(needed, 2 * capacity))

    def _resize(self, capacity: int) -> None:
        matrix = np.zeros((capacity, self.dimensions), dtype=np.float32)
        keys = np.zeros(capacity, dtype=np.uint64)
        matrix[: self._n] = self._matrix[: self._n]
        keys[: self._n] = self._keys[: self._n]
        self._matrix, self._keys = matrix, keys
