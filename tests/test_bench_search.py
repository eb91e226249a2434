"""bench/search.py at a tiny size, so the search benchmark keeps running as the code moves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "search.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_search", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_data_is_deterministic_unit_and_the_truth_exact(bench: ModuleType) -> None:
    spec = bench.DataSpec(dim=32, clusters=20, chunk=700)
    vectors = bench.make_vectors(2_000, spec)
    assert vectors.shape == (2_000, 32) and vectors.dtype == np.float32
    assert np.array_equal(vectors, bench.make_vectors(2_000, spec))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    queries = bench.make_queries(15, spec)
    assert not np.isin(queries, vectors).all(axis=1).any()  # fresh samples, not corpus rows
    truth = bench.exact_top_k(vectors, queries, 5)
    sims = queries @ vectors.T
    expected = np.argsort(-sims, axis=1)[:, :5]
    assert np.array_equal(np.sort(truth, axis=1), np.sort(expected, axis=1))
    assert bench.recall_at_k(expected.tolist(), truth) == 1.0
    assert bench.recall_at_k([[*row[:4].tolist(), -1] for row in expected], truth) == 0.8
    sentences = bench.make_sentences(30)
    assert sentences == bench.make_sentences(30) and len(set(sentences)) == 30


def test_every_system_at_2000_vectors(bench: ModuleType, tmp_path: Path) -> None:
    # Below the exact limit Assay would search exactly; 500 makes it build the HNSW graph.
    cfg = bench.Config(queries=20, rounds=1, concurrency=2, exact_below=500, workdir=tmp_path)
    result = bench.run_size(2_000, cfg)
    rows = {(r.system.split(" (ef")[0], r.mode): r for r in result.rows}
    raw = rows["raw usearch", "1 thread"]
    vector = rows["Assay vector query (HTTP)", "1 client"]
    text = rows["Assay text query (HTTP, MiniLM)", "1 client"]
    lance = rows["LanceDB IVF_HNSW_SQ", "1 thread"]
    for row in (raw, vector, lance):
        assert row.recall is not None and row.recall > 0.8, row
    assert all(r.errors == 0 for r in result.rows)
    assert len(vector.latencies) == len(text.latencies) == 20
    assert rows["Assay vector query (HTTP)", "2 clients"].qps > 0
    assert result.assay.build.kind == "hnsw" and result.assay.build.seconds > 0
    assert raw.build_s is not None and lance.build_s is not None
    assert result.checks and result.checks[0][0].startswith("Assay recall")
    bench.report(result)
    assert list(tmp_path.iterdir()) == []  # the work folder is cleaned up


def test_shared_graph_maps_assay_keys_back_to_rows(bench: ModuleType, tmp_path: Path) -> None:
    cfg = bench.Config(
        queries=20,
        rounds=1,
        concurrency=2,
        exact_below=500,
        workdir=tmp_path,
        share_graph=True,
        skip_lancedb=True,
        skip_text=True,
    )
    result = bench.run_size(1_500, cfg)
    raw = next(r for r in result.rows if r.system == "raw usearch" and r.mode == "1 thread")
    vector = next(r for r in result.rows if r.system.startswith("Assay vector"))
    assert raw.recall is not None and vector.recall is not None
    assert raw.recall > 0.8 and abs(raw.recall - vector.recall) <= 0.05
    assert raw.build_s == result.assay.build.usearch_add_s
    # The raw loop ran slice by slice alongside the server's one-client pass: every query once.
    assert len(raw.latencies) == len(vector.latencies) == 20
    modes = [r.mode for r in result.rows if r.system == "raw usearch"]
    assert modes[0] == "1 thread" and modes[-1] == "batch, all cores"
