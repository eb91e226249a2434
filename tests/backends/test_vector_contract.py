"""One contract for every vector index (exact, HNSW, adaptive), then each one's own behaviour."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assay.backends.vector.adaptive import AdaptiveIndex, load_index
from assay.backends.vector.base import VectorIndex, VectorIndexError, meta_path
from assay.backends.vector.exact import ExactIndex
from assay.backends.vector.hnsw import HnswIndex, has_simd, resolve_dtype

KINDS = ["exact", "hnsw", "adaptive"]
DIMS = 64
Factory = Callable[[int], VectorIndex]


def make(kind: str, dims: int) -> VectorIndex:
    if kind == "exact":
        return ExactIndex(dims)
    if kind == "hnsw":
        # exact_filter_limit=0 leaves only the 50*k rule (500 keys at k=10), so the selective
        # filter tests take the exact path and the broad ones the oversampling path.
        return HnswIndex(dims, exact_filter_limit=0)
    # A tiny limit makes every sizeable test cross from exact into HNSW.
    return AdaptiveIndex(dims, exact_limit=50)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_index(kind: str) -> Factory:
    return lambda dims: make(kind, dims)


def clustered(n: int, dims: int, seed: int, clusters: int = 40) -> np.ndarray:
    """Unnormalised points around random centres, like real embeddings (not uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    points = centres[labels] + 0.35 * rng.standard_normal((n, dims)).astype(np.float32)
    return points * rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def brute_force(
    keys: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = unit(vectors) @ unit(query)
    order = np.argsort(-scores, kind="stable")[:k]
    return keys[order], scores[order]


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / sum(len(t) for t in truth)


class Corpus:
    """A populated index of one kind plus the data it was built from."""

    def __init__(self, kind: str, n: int, seed: int) -> None:
        self.kind = kind
        self.vectors = clustered(n, DIMS, seed)
        # Sparse, large keys: nothing may assume keys are row numbers.
        self.keys = np.arange(n, dtype=np.uint64) * 7919 + 2**40
        self.index = make(kind, DIMS)
        # Two batches, so the adaptive index crosses its limit mid-stream.
        self.index.add(self.keys[:30], self.vectors[:30])
        self.index.add(self.keys[30:], self.vectors[30:])
        self.queries = clustered(25, DIMS, seed + 1)


_corpora: dict[tuple[str, int], Corpus] = {}


def corpus(kind: str, n: int) -> Corpus:
    """Built once per module and kind; tests using it must not modify it."""
    if (kind, n) not in _corpora:
        _corpora[kind, n] = Corpus(kind, n, seed=n)
    return _corpora[kind, n]


def test_implements_protocol(new_index: Factory) -> None:
    assert isinstance(new_index(4), VectorIndex)


def test_empty_index_searches_to_nothing(new_index: Factory) -> None:
    index = new_index(8)
    keys, scores = index.search(np.ones(8), 5)
    assert len(index) == 0 and keys.size == 0 and scores.size == 0
    assert keys.dtype == np.uint64 and scores.dtype == np.float32
    assert index.keys().dtype == np.uint64 and index.keys().size == 0
    index.add([1, 2], np.eye(8)[:2])
    assert index.search(np.ones(8), 0)[0].size == 0
    assert index.search(np.ones(8), -3)[0].size == 0


def test_add_contains_keys_and_len(new_index: Factory) -> None:
    index = new_index(8)
    index.add(np.array([3, 1, 2], dtype=np.uint64), np.eye(8)[:3] + 0.1)
    assert len(index) == 3
    assert sorted(index.keys().tolist()) == [1, 2, 3]
    assert index.contains(2) and not index.contains(4) and not index.contains(-1)
    index.add([], np.empty((0, 8)))
    assert len(index) == 3


def test_upsert_replaces_the_vector(new_index: Factory) -> None:
    index = new_index(8)
    eye = np.eye(8, dtype=np.float32)
    index.add(np.arange(1, 5), eye[1:5])
    index.add([1], eye[6] * 4)
    assert len(index) == 4
    keys, scores = index.search(eye[6], 1)
    assert keys.tolist() == [1] and scores[0] == pytest.approx(1.0, abs=1e-2)
    # The old vector is gone: key 1 is now orthogonal to where it used to point.
    keys, scores = index.search(eye[1], 4)
    assert dict(zip(keys.tolist(), scores.tolist(), strict=True))[1] == pytest.approx(0, abs=1e-2)
    # A batch naming a key twice keeps its last row.
    index.add([9, 9], np.stack([eye[0], eye[7]]))
    assert len(index) == 5
    assert index.search(eye[7], 1)[0].tolist() == [9]


def test_remove_drops_keys_and_ignores_unknown(new_index: Factory) -> None:
    index = new_index(16)
    vectors = clustered(120, 16, seed=3)
    index.add(np.arange(120), vectors)
    gone = np.arange(0, 120, 3)
    index.remove(np.concatenate([gone, [10_000, 10_001]]))
    assert len(index) == 80
    assert not index.contains(0) and index.contains(1)
    assert set(index.keys().tolist()) == set(range(120)) - set(gone.tolist())
    for query in vectors[gone[:10]]:
        assert not set(index.search(query, 10)[0].tolist()) & set(gone.tolist())
    index.remove([])
    index.remove(np.arange(120))
    assert len(index) == 0 and index.search(vectors[0], 3)[0].size == 0


def test_scores_are_cosine_similarities(new_index: Factory) -> None:
    index = new_index(4)
    # Lengths differ on purpose: the index, not the caller, normalises.
    index.add([10, 20, 30], [[5.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, -2.0, 0]])
    keys, scores = index.search([2.0, 0, 0, 0], 3)
    assert keys.tolist() == [10, 20, 30]
    np.testing.assert_allclose(scores, [1.0, np.sqrt(0.5), 0.0], atol=1e-2)
    assert (np.diff(scores) <= 0).all()
    # Opposite directions score -1 and come last.
    keys, scores = index.search([0, 0, 1.0, 0], 3)
    assert keys[-1] == 30 and scores[-1] == pytest.approx(-1.0, abs=1e-2)


def test_search_finds_the_true_nearest(kind: str) -> None:
    data = corpus(kind, 2000)
    found, truth = [], []
    for query in data.queries:
        keys, scores = data.index.search(query, 10)
        assert keys.size == 10 and (np.diff(scores) <= 1e-6).all()
        true_keys, true_scores = brute_force(data.keys, data.vectors, query, 10)
        # Every reported score is the real cosine of that key (to bf16 precision).
        rows = np.searchsorted(data.keys, keys)
        np.testing.assert_allclose(scores, unit(data.vectors[rows]) @ unit(query), atol=1e-2)
        found.append(keys)
        truth.append(true_keys)
        if kind == "exact":
            np.testing.assert_allclose(scores, true_scores, atol=1e-5)
    assert recall(found, truth) >= (1.0 if kind == "exact" else 0.95)


def filtered_recall(data: Corpus, allowed: np.ndarray, k: int = 10) -> float:
    allowed_set = set(allowed.tolist())
    in_index = np.isin(data.keys, allowed)
    found, truth = [], []
    for query in data.queries:
        keys, _ = data.index.search(query, k, allowed=allowed)
        assert set(keys.tolist()) <= allowed_set
        assert keys.size == min(k, int(in_index.sum()))
        found.append(keys)
        truth.append(brute_force(data.keys[in_index], data.vectors[in_index], query, k)[0])
    return recall(found, truth)


def test_selective_filter_finds_the_nearest_allowed(kind: str) -> None:
    data = corpus(kind, 5000)
    rng = np.random.default_rng(11)
    allowed = rng.choice(data.keys, 30, replace=False)
    # Keys the index never saw are simply ignored.
    allowed = np.concatenate([allowed, np.array([1, 2, 3], dtype=np.uint64)])
    assert filtered_recall(data, allowed) >= (1.0 if kind == "exact" else 0.98)


def test_broad_filter_finds_the_nearest_allowed(kind: str) -> None:
    data = corpus(kind, 5000)
    allowed = data.keys[::2]
    assert filtered_recall(data, allowed) >= (1.0 if kind == "exact" else 0.95)


def test_filter_with_nothing_allowed_finds_nothing(kind: str) -> None:
    data = corpus(kind, 2000)
    for allowed in (np.empty(0, dtype=np.uint64), np.array([5, 6], dtype=np.uint64)):
        keys, scores = data.index.search(data.queries[0], 5, allowed=allowed)
        assert keys.size == 0 and scores.size == 0


def test_save_then_load_gives_the_same_answers(kind: str, tmp_path: Path) -> None:
    data = corpus(kind, 5000)
    path = tmp_path / "sub" / "feature.idx"
    data.index.save(path, {"watermark": 123, "cursor": "abc"})
    loaded, meta = load_index(path)
    assert meta == {"watermark": 123, "cursor": "abc"}
    assert type(loaded) is type(data.index) and len(loaded) == len(data.index)
    assert loaded.dimensions == DIMS
    assert np.array_equal(np.sort(loaded.keys()), np.sort(data.index.keys()))
    if isinstance(data.index, AdaptiveIndex):
        assert isinstance(loaded, AdaptiveIndex) and loaded.kind == data.index.kind == "hnsw"
        assert loaded.exact_limit == 50
    allowed = data.keys[::3]
    for query in data.queries[:10]:
        for kwargs in ({}, {"allowed": allowed}):
            want_keys, want_scores = data.index.search(query, 10, **kwargs)
            got_keys, got_scores = loaded.search(query, 10, **kwargs)
            assert np.array_equal(got_keys, want_keys)
            np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)
    # Saving again replaces the pair and leaves no temporary files behind.
    data.index.save(path, {"watermark": 124})
    assert load_index(path)[1] == {"watermark": 124}
    assert sorted(p.name for p in path.parent.iterdir()) == ["feature.idx", "feature.idx.meta.json"]


def test_loaded_index_stays_writable(kind: str, tmp_path: Path) -> None:
    index = make(kind, 16)
    vectors = clustered(80, 16, seed=5)
    index.add(np.arange(80), vectors)
    index.save(tmp_path / "i", {})
    loaded, _ = load_index(tmp_path / "i")
    loaded.add([500], vectors[:1] * -1)
    loaded.remove([0])
    assert len(loaded) == 80 and loaded.contains(500) and not loaded.contains(0)
    assert loaded.search(-vectors[0], 1)[0].tolist() == [500]


def small_saved(kind: str, folder: Path) -> Path:
    index = make(kind, 16)
    index.add(np.arange(100), clustered(100, 16, seed=9))
    path = folder / "small.idx"
    index.save(path, {"watermark": 1})
    return path


def rewrite_header(path: Path, **changes: object) -> None:
    header = json.loads(meta_path(path).read_text())
    header.update(changes)
    meta_path(path).write_text(json.dumps(header))


def seal(path: Path) -> None:
    """Make the header's checksum match the data file, so only the loader can object."""
    data = path.read_bytes()
    rewrite_header(path, data_bytes=len(data), data_crc32=zlib.crc32(data))


def flip_bytes(path: Path, start: int, count: int) -> None:
    """Invert `count` bytes in place, keeping the file's size."""
    data = bytearray(path.read_bytes())
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "truncated data": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "flipped bytes": lambda p: flip_bytes(p, 200, 64),
    "missing data": lambda p: p.unlink(),
    "missing header": lambda p: meta_path(p).unlink(),
    "garbage header": lambda p: meta_path(p).write_text("{not json"),
    "header of another kind": lambda p: rewrite_header(p, kind="lance"),
    "count disagrees": lambda p: rewrite_header(p, count=99),
    "dimensions disagree": lambda p: rewrite_header(p, dimensions=17),
    "truncated but sealed": lambda p: (
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        seal(p),
    ),
    "garbage but sealed": lambda p: (p.write_bytes(b"garbage!" * 64), seal(p)),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_damaged_save_fails_to_load(kind: str, damage: str, tmp_path: Path) -> None:
    path = small_saved(kind, tmp_path)
    CORRUPTIONS[damage](path)
    with pytest.raises(VectorIndexError):
        load_index(path)


def test_torn_save_fails_to_load(kind: str, tmp_path: Path) -> None:
    # A crash between the two renames leaves new data beside the old header.
    path = small_saved(kind, tmp_path)
    old_header = meta_path(path).read_text()
    loaded, _ = load_index(path)
    loaded.add([1000], np.ones(16))
    loaded.save(path, {"watermark": 2})
    meta_path(path).write_text(old_header)
    with pytest.raises(VectorIndexError):
        load_index(path)


def test_bad_inputs_raise(new_index: Factory, tmp_path: Path) -> None:
    index = new_index(8)
    index.add([1], np.ones(8))
    with pytest.raises(VectorIndexError, match="dimensions"):
        index.add([2], np.ones(9))
    with pytest.raises(VectorIndexError, match="dimensions"):
        index.add([2, 3], np.ones((2, 7)))
    with pytest.raises(VectorIndexError, match="dimensions"):
        index.search(np.ones(7), 3)
    with pytest.raises(VectorIndexError):
        index.add([2, 3], np.ones((3, 8)))
    with pytest.raises(VectorIndexError, match="finite"):
        index.add([2], np.full(8, np.nan))
    with pytest.raises(VectorIndexError, match="non-negative"):
        index.add([-2], np.ones(8))
    with pytest.raises(VectorIndexError, match="reserved"):
        index.add(np.array([2**64 - 1], dtype=np.uint64), np.ones(8))
    with pytest.raises(VectorIndexError):
        index.add([2.5], np.ones(8))
    with pytest.raises(VectorIndexError, match="JSON"):
        index.save(tmp_path / "x", {"bad": object()})
    assert not list(tmp_path.iterdir())
    assert len(index) == 1 and index.keys().tolist() == [1]


# Behaviour particular to one implementation.


def test_adaptive_moves_to_hnsw_past_its_limit_and_keeps_every_key() -> None:
    index = AdaptiveIndex(16, exact_limit=50)
    vectors = clustered(120, 16, seed=21)
    index.add(np.arange(50), vectors[:50])
    # Re-adding known keys at the limit is no growth, so it stays exact.
    index.add(np.arange(40, 50), vectors[40:50])
    assert index.kind == "exact" and len(index) == 50
    index.add([50], vectors[50:51])
    assert index.kind == "hnsw" and len(index) == 51
    index.add(np.arange(51, 120), vectors[51:])
    assert sorted(index.keys().tolist()) == list(range(120))
    for key in (0, 49, 50, 119):
        keys, scores = index.search(vectors[key], 1)
        assert keys.tolist() == [key] and scores[0] == pytest.approx(1.0, abs=1e-2)
    # Shrinking back under the limit does not flap back to exact.
    index.remove(np.arange(100))
    assert index.kind == "hnsw" and len(index) == 20


def test_adaptive_sends_a_large_first_batch_straight_to_hnsw() -> None:
    index = AdaptiveIndex(16, exact_limit=50)
    index.add(np.arange(200), clustered(200, 16, seed=4))
    assert index.kind == "hnsw" and len(index) == 200


def test_hnsw_oversampling_ends_in_an_exhaustive_pass() -> None:
    # A large allowed set that barely overlaps the index: the graph walk finds few of those
    # keys, so only the final exhaustive pass can return the true answer.
    index = HnswIndex(16, exact_filter_limit=0, exact_filter_per_k=1)
    vectors = clustered(1500, 16, seed=8)
    keys = np.arange(1500, dtype=np.uint64)
    index.add(keys, vectors)
    query = vectors[0]
    far = np.argsort(unit(vectors) @ unit(query))[:12].astype(np.uint64)
    allowed = np.concatenate([far, np.arange(10**6, 10**6 + 1000, dtype=np.uint64)])
    found, scores = index.search(query, 5, allowed=allowed)
    want, want_scores = brute_force(keys[far], vectors[far], query, 5)
    assert set(found.tolist()) == set(want.tolist())
    np.testing.assert_allclose(scores, want_scores, atol=1e-2)


def test_hnsw_repeated_upserts_do_not_grow() -> None:
    index = HnswIndex(16)
    keys = np.arange(300)
    for seed in range(4):
        vectors = clustered(300, 16, seed=seed)
        index.add(keys, vectors)
    assert len(index) == 300
    assert index.search(vectors[7], 1)[0].tolist() == [7]


def test_hnsw_storage_type_follows_the_cpu() -> None:
    expected = "bf16" if has_simd("bf16", 384) or not has_simd("f16", 384) else "f16"
    assert resolve_dtype("bf16", 384) == expected
    assert HnswIndex(384).dtype == expected
    assert HnswIndex(8, dtype="f32").dtype == "f32"
    with pytest.raises(VectorIndexError):
        HnswIndex(8, dtype="i8")


def test_hnsw_export_returns_unit_vectors() -> None:
    index = HnswIndex(8)
    index.add([4, 5], np.arange(16, dtype=np.float32).reshape(2, 8) + 1)
    keys, vectors = index.export()
    assert sorted(keys.tolist()) == [4, 5]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_adaptive_saved_while_exact_loads_exact_and_keeps_its_limit(tmp_path: Path) -> None:
    index = AdaptiveIndex(16, exact_limit=50)
    vectors = clustered(60, 16, seed=6)
    index.add(np.arange(40), vectors[:40])
    index.save(tmp_path / "a", {"watermark": 7})
    loaded, meta = load_index(tmp_path / "a")
    assert meta == {"watermark": 7}
    assert isinstance(loaded, AdaptiveIndex) and loaded.kind == "exact"
    assert loaded.exact_limit == 50
    loaded.add(np.arange(40, 60), vectors[40:])
    assert loaded.kind == "hnsw" and len(loaded) == 60
