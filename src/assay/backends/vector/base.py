"""The vector index contract, its error, and the input checks and file format it shares."""

from __future__ import annotations

import json
import os
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

# usearch reserves the largest uint64 as its "free slot" marker: such a key is accepted, then
# silently dropped on save, so every index refuses it up front.
MAX_KEY = np.iinfo(np.uint64).max - 1
FORMAT_VERSION = 1
_CRC_CHUNK = 4 * 1024 * 1024


class VectorIndexError(Exception):
    """A vector index refused an input, or a saved index is missing, corrupt or unreadable."""


@runtime_checkable
class VectorIndex(Protocol):
    """A mutable set of `uint64` keys, each with one dense float vector, searched by cosine.

    - `add(keys, vectors)` upserts: a key already present gets its new vector. Vectors need not
      be unit length (the index normalises them); they must be finite and have `dimensions`
      columns. A batch naming the same key twice keeps the last row.
    - `remove(keys)` ignores keys that are not present.
    - `search(query, k, allowed)` returns `(keys, scores)`: at most `k` keys (`uint64`) and their
      cosine similarities (`float32`, higher is closer, sorted descending). With `allowed`, only
      keys in that array may come back (unknown ones are ignored). An empty index or `k <= 0`
      gives two empty arrays.
    - `save(path, meta)` writes the index to `path` plus `<path>.meta.json` atomically (temp
      files, fsync, `os.replace`, data first); `meta` is the caller's JSON-serialisable state
      (its sync watermark) and comes back from `adaptive.load_index(path)`, which raises
      `VectorIndexError` when the pair is missing, torn or corrupt, so the caller rebuilds.

    Keys are `0 <= key < 2**64 - 1`. A wrong dimension count, a negative or non-integer key, or
    a non-finite vector raises `VectorIndexError`. Indexes are not safe for concurrent writers:
    the owner serialises `add`, `remove` and `save`; searches may interleave only with other
    searches.
    """

    dimensions: int

    def __len__(self) -> int: ...

    def add(self, keys: ArrayLike, vectors: ArrayLike) -> None: ...

    def remove(self, keys: ArrayLike) -> None: ...

    def contains(self, key: int) -> bool: ...

    def keys(self) -> np.ndarray: ...

    def search(
        self, query: ArrayLike, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: Path, meta: dict[str, Any]) -> None: ...


def empty_result() -> tuple[np.ndarray, np.ndarray]:
    """The `(keys, scores)` pair of a search that found nothing."""
    return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)


def coerce_keys(keys: ArrayLike) -> np.ndarray:
    """`keys` as a 1-d uint64 array, refusing negatives, non-integers and the reserved key."""
    arr = np.asarray(keys)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise VectorIndexError(f"keys must be a 1-d array, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    if arr.dtype == np.uint64:
        out = arr
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0:
            raise VectorIndexError("keys must be non-negative")
        out = arr.astype(np.uint64)
    elif arr.dtype == object:
        # Python ints beyond int64 arrive as objects; let numpy range-check them.
        try:
            out = np.array([int(x) for x in arr], dtype=np.uint64)
        except (OverflowError, TypeError, ValueError) as exc:
            raise VectorIndexError(f"keys must be integers in [0, 2**64 - 1): {exc}") from exc
    else:
        raise VectorIndexError(f"keys must be integers, got dtype {arr.dtype}")
    if out.max() > MAX_KEY:
        raise VectorIndexError("key 2**64 - 1 is reserved")
    return out


def as_key(key: int) -> int | None:
    """`key` as a plain int, or None when no index could hold it."""
    try:
        value = int(key)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= MAX_KEY else None


def coerce_vectors(vectors: ArrayLike, count: int, dimensions: int) -> np.ndarray:
    """`vectors` as a finite float32 `(count, dimensions)` matrix."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1 and count == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[0] != count:
        raise VectorIndexError(
            f"expected {count} vectors of {dimensions} dimensions, got shape {arr.shape}"
        )
    if arr.shape[1] != dimensions:
        raise VectorIndexError(
            f"vectors have {arr.shape[1]} dimensions but the index has {dimensions}"
        )
    if not np.isfinite(arr).all():
        raise VectorIndexError("vectors must be finite (no NaN or infinity)")
    return arr


def coerce_query(query: ArrayLike, dimensions: int) -> np.ndarray:
    """`query` as a finite, unit-length float32 vector of `dimensions` values."""
    arr = np.asarray(query, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise VectorIndexError(f"query must be one vector, got shape {arr.shape}")
    if arr.shape[0] != dimensions:
        raise VectorIndexError(
            f"query has {arr.shape[0]} dimensions but the index has {dimensions}"
        )
    if not np.isfinite(arr).all():
        raise VectorIndexError("query must be finite (no NaN or infinity)")
    return normalise_rows(arr.reshape(1, -1))[0]


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """A float32 copy of `matrix` with unit-length rows; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector has no direction: leaving it at zero gives it similarity 0 to everything.
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32, copy=False)


def last_occurrences(keys: np.ndarray) -> np.ndarray:
    """Row positions that keep only the last row of each repeated key."""
    if keys.size < 2:
        return np.arange(keys.size)
    _, first_in_reversed = np.unique(keys[::-1], return_index=True)
    return np.sort(keys.size - 1 - first_in_reversed)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` highest `scores`, best first."""
    if k >= scores.size:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def sorted_unique(keys: ArrayLike) -> np.ndarray:
    """`keys` as a sorted, duplicate-free uint64 array (for `searchsorted` membership)."""
    arr = coerce_keys(keys)
    if arr.size > 1 and not bool((arr[1:] > arr[:-1]).all()):
        arr = np.unique(arr)
    return arr


def members(candidates: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which `candidates` occur in the sorted, unique `sorted_keys`."""
    if sorted_keys.size == 0:
        return np.zeros(candidates.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, candidates)
    pos[pos == sorted_keys.size] = 0
    return sorted_keys[pos] == candidates


# The on-disk pair: the data file at `path` and a JSON header at `<path>.meta.json`.


def meta_path(path: Path) -> Path:
    """Where the header of the index saved at `path` lives."""
    return path.with_name(path.name + ".meta.json")


def file_crc32(path: Path) -> tuple[int, int]:
    """`(size, crc32)` of the file at `path`."""
    crc = 0
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CRC_CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


def write_index_files(
    path: Path, write_data: Callable[[Path], None], header: dict[str, Any]
) -> None:
    """Atomically write a data file via `write_data(tmp)` and its JSON header next to it."""
    path = Path(path)
    final_meta = meta_path(path)
    try:
        # Serialise the caller's meta before touching disk, so a bad value leaves nothing behind.
        json.dumps(header.get("meta"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise VectorIndexError(f"index meta is not JSON-serialisable: {exc}") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VectorIndexError(f"cannot create {path.parent}: {exc}") from exc
    token = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp_data = path.with_name(path.name + token)
    tmp_meta = final_meta.with_name(final_meta.name + token)
    try:
        write_data(tmp_data)
        _fsync(tmp_data)
        # The checksum ties the header to this exact data file: a crash between the two
        # renames below, or a damaged file, then fails the load instead of loading stale data.
        size, crc = file_crc32(tmp_data)
        full = {"format": FORMAT_VERSION, **header, "data_bytes": size, "data_crc32": crc}
        tmp_meta.write_text(json.dumps(full, allow_nan=False), encoding="utf-8")
        _fsync(tmp_meta)
        os.replace(tmp_data, path)
        os.replace(tmp_meta, final_meta)
        _fsync_dir(path.parent)
    except VectorIndexError:
        raise
    except Exception as exc:
        raise VectorIndexError(f"cannot save vector index to {path}: {exc}") from exc
    finally:
        for leftover in (tmp_data, tmp_meta):
            leftover.unlink(missing_ok=True)


def read_index_header(path: Path) -> dict[str, Any]:
    """The header saved with the index at `path`, after checking the data file against it."""
    path = Path(path)
    try:
        header = json.loads(meta_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VectorIndexError(f"no saved vector index at {path}") from exc
    except (OSError, ValueError) as exc:
        raise VectorIndexError(f"unreadable vector index header for {path}: {exc}") from exc
    numbers = ("dimensions", "count", "data_bytes", "data_crc32")
    if (
        not isinstance(header, dict)
        or header.get("format") != FORMAT_VERSION
        or not isinstance(header.get("kind"), str)
        or any(type(header.get(name)) is not int for name in numbers)
    ):
        raise VectorIndexError(f"unrecognised vector index header for {path}")
    try:
        size, crc = file_crc32(path)
    except OSError as exc:
        raise VectorIndexError(f"cannot read vector index data {path}: {exc}") from exc
    if (size, crc) != (header["data_bytes"], header["data_crc32"]):
        raise VectorIndexError(f"vector index data {path} does not match its header (corrupt?)")
    return header


def check_loaded(index: VectorIndex, header: dict[str, Any], path: Path) -> None:
    """Raise unless a freshly loaded `index` has the size and shape its header promised."""
    if index.dimensions != header["dimensions"] or len(index) != header["count"]:
        raise VectorIndexError(
            f"vector index {path} holds {len(index)} x {index.dimensions}-d vectors, "
            f"its header says {header['count']} x {header['dimensions']}-d"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the renames themselves durable; some platforms cannot open a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
