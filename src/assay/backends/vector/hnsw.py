"""Approximate cosine search with a usearch HNSW graph over bf16 (or f16) vectors."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike
from usearch.compiled import MetricKind, ScalarKind
from usearch.compiled import hardware_acceleration as _hardware_acceleration
from usearch.index import Index

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
from assay.kit import hugepages

# What usearch reports for a (dtype, metric) pair that has no SIMD kernel on this CPU.
_NO_SIMD = frozenset({"", "auto", "serial", "uninitialized"})
_SCALARS = {"bf16": ScalarKind.BF16, "f16": ScalarKind.F16, "f32": ScalarKind.F32}
# Adds of fewer keys do not look for the memory they mapped (reading the maps costs ~0.5 ms).
_HUGE_PAGES_FROM = 1024


def has_simd(dtype: str, dimensions: int) -> bool:
    """Whether this CPU has a SIMD cosine kernel for `dtype` vectors."""
    scalar = _SCALARS.get(dtype.lower())
    if scalar is None:
        return False
    isa = _hardware_acceleration(dtype=scalar, ndim=dimensions, metric_kind=MetricKind.Cos)
    return str(isa) not in _NO_SIMD


def resolve_dtype(dtype: str, dimensions: int) -> str:
    """`dtype`, except bf16 becomes f16 on a CPU with f16 kernels but no bf16 ones."""
    dtype = dtype.lower()
    # Both are 2 bytes a value; bf16 keeps range, f16 precision, and unit vectors need no
    # range, so f16 is an equal-cost stand-in where bf16 would run through scalar code.
    if dtype == "bf16" and not has_simd("bf16", dimensions) and has_simd("f16", dimensions):
        return "f16"
    return dtype


class HnswIndex:
    """A usearch HNSW index (cosine, one vector per key) with exact or oversampled filtering.

    A search restricted to `allowed` keys is exact when the allowed set is small (at most
    `max(exact_filter_limit, exact_filter_per_k * k)` keys): their stored vectors are scored
    directly. A larger set is searched through the graph with oversampling, doubling the
    candidate count until `k` allowed keys turn up, ending in one exhaustive pass.
    """

    kind = "hnsw"

    def __init__(
        self,
        dimensions: int,
        *,
        dtype: str = "bf16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 256,
        exact_filter_limit: int = 4096,
        exact_filter_per_k: int = 50,
    ) -> None:
        if dimensions <= 0:
            raise VectorIndexError(f"dimensions must be positive, got {dimensions}")
        self.dimensions = int(dimensions)
        self.dtype = resolve_dtype(dtype, self.dimensions)
        if self.dtype not in _SCALARS:
            raise VectorIndexError(f"unsupported vector storage type {dtype!r}")
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.exact_filter_limit = exact_filter_limit
        self.exact_filter_per_k = exact_filter_per_k
        self._index = Index(
            ndim=self.dimensions,
            metric="cos",
            dtype=self.dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
            multi=False,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: ArrayLike, vectors: ArrayLike) -> None:
        """Insert or replace the vectors of `keys` (uses every core)."""
        key_arr = coerce_keys(keys)
        vecs = coerce_vectors(vectors, key_arr.size, self.dimensions)
        if key_arr.size == 0:
            return
        keep = last_occurrences(key_arr)
        key_arr, vecs = key_arr[keep], normalise_rows(vecs[keep])
        # usearch refuses a duplicate key outright, so an upsert is remove-then-add; the
        # removed slots are reused by the add, so repeated upserts do not grow the index.
        present = np.asarray(self._index.contains(key_arr), dtype=bool)
        if present.any():
            self._index.remove(key_arr[present])
        bulk = key_arr.size >= _HUGE_PAGES_FROM
        with hugepages.for_new_mappings() if bulk else contextlib.nullcontext():
            self._index.add(key_arr, vecs, threads=0)

    def remove(self, keys: ArrayLike) -> None:
        """Drop `keys`; unknown ones are ignored."""
        key_arr = coerce_keys(keys)
        if key_arr.size:
            self._index.remove(key_arr)

    def contains(self, key: int) -> bool:
        """Whether `key` is in the index."""
        value = as_key(key)
        return value is not None and bool(self._index.contains(value))

    def contains_many(self, keys: ArrayLike) -> np.ndarray:
        """Boolean mask: which of `keys` are in the index."""
        key_arr = coerce_keys(keys)
        if key_arr.size == 0:
            return np.zeros(0, dtype=bool)
        return np.asarray(self._index.contains(key_arr), dtype=bool)

    def keys(self) -> np.ndarray:
        """All keys, as uint64."""
        if len(self._index) == 0:
            return np.empty(0, dtype=np.uint64)
        return np.asarray(self._index.keys, dtype=np.uint64)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """All keys and their stored vectors as float32 (rounded to the storage type)."""
        keys = self.keys()
        return keys, self._vectors_of(keys)

    def search(
        self, query: ArrayLike, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` keys most cosine-similar to `query` (only `allowed` ones, if given)."""
        q = coerce_query(query, self.dimensions)
        total = len(self._index)
        if k <= 0 or total == 0:
            return empty_result()
        if allowed is None:
            found = self._index.search(q, k)
            return _as_result(found.keys, found.distances)
        allow = sorted_unique(allowed)
        if allow.size == 0:
            return empty_result()
        if allow.size <= max(self.exact_filter_limit, self.exact_filter_per_k * k):
            return self._search_among(q, k, allow)
        return self._search_oversampled(q, k, allow, total)

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the index and `meta` to `path` (+ `<path>.meta.json`) atomically."""
        write_index_files(Path(path), self.write_data, self.save_header(meta))

    def save_header(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The header fields `save` writes next to the data."""
        return {
            "kind": self.kind,
            "dimensions": self.dimensions,
            "count": len(self._index),
            "params": {
                "dtype": self.dtype,
                "connectivity": self.connectivity,
                "expansion_add": self.expansion_add,
                "expansion_search": self.expansion_search,
                "exact_filter_limit": self.exact_filter_limit,
                "exact_filter_per_k": self.exact_filter_per_k,
            },
            "meta": meta,
        }

    def write_data(self, path: Path) -> None:
        """Write the usearch index file to `path`."""
        self._index.save(os.fspath(path))

    @classmethod
    def from_saved(cls, path: Path, header: dict[str, Any]) -> HnswIndex:
        """The index whose data `write_data` wrote to `path`."""
        params = header["params"]
        dims = int(header["dimensions"])
        # usearch's own header is the truth about the file's layout: check it before loading.
        file_meta = Index.metadata(os.fspath(path))
        if (
            not file_meta
            or file_meta["kind_metric"] != MetricKind.Cos
            or file_meta["dimensions"] != dims
            or file_meta["kind_scalar"] not in _SCALARS.values()
        ):
            raise VectorIndexError(f"vector index data {path} does not match its header")
        index = cls(
            dims,
            dtype=str(params["dtype"]),
            connectivity=int(params["connectivity"]),
            expansion_add=int(params["expansion_add"]),
            expansion_search=int(params["expansion_search"]),
            exact_filter_limit=int(params["exact_filter_limit"]),
            exact_filter_per_k=int(params["exact_filter_per_k"]),
        )
        # Loading adopts the file's storage type and graph shape, whatever this CPU would pick;
        # the query-time settings are not in the file, so they are set again.
        with hugepages.for_new_mappings():
            index._index.load(os.fspath(path))
        # usearch declares these setters apart from their getters, so mypy thinks them read-only.
        index._index.expansion_add = index.expansion_add  # type: ignore[misc]
        index._index.expansion_search = index.expansion_search  # type: ignore[misc]
        index.dtype = next(name for name, kind in _SCALARS.items() if kind == index._index.dtype)
        return index

    def _search_among(
        self, q: np.ndarray, k: int, allow: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        present = allow[self.contains_many(allow)]
        if present.size == 0:
            return empty_result()
        scores = self._vectors_of(present) @ q
        pick = top_k(scores, k)
        return present[pick], np.clip(scores[pick], -1.0, 1.0).astype(np.float32)

    def _search_oversampled(
        self, q: np.ndarray, k: int, allow: np.ndarray, total: int
    ) -> tuple[np.ndarray, np.ndarray]:
        # Start from the candidate count that should hold k allowed keys twice over if they
        # are spread evenly (never under 4k), then double until k turn up.
        count = min(total, max(4 * k, math.ceil(2 * k * total / allow.size)))
        while True:
            # Once the whole index is asked for, search it exhaustively: the graph walk may
            # miss nodes, and only an exact pass guarantees every allowed key was seen.
            exhaustive = count >= total
            found = self._index.search(q, count, exact=exhaustive)
            keep = members(found.keys, allow)
            if exhaustive or int(keep.sum()) >= k:
                break
            count = min(total, count * 2)
        return _as_result(found.keys[keep][:k], found.distances[keep][:k])

    def _vectors_of(self, keys: np.ndarray) -> np.ndarray:
        if keys.size == 0:
            return np.empty((0, self.dimensions), dtype=np.float32)
        # Many keys come back as a matrix or a tuple of rows; every key here is present (no None).
        rows = cast(Sequence[np.ndarray], self._index.get(keys))
        # Stored values are rounded to 2 bytes; renormalising keeps scores true cosines.
        return normalise_rows(np.vstack(rows).astype(np.float32, copy=False))


def _as_result(keys: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # usearch reports cosine distance; callers want similarity.
    sims = np.clip(1.0 - distances.astype(np.float32), -1.0, 1.0).astype(np.float32)
    return np.asarray(keys, dtype=np.uint64), sims
