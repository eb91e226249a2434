"""bench/extract.py at tiny sizes, so the benchmark keeps running as the code moves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "extract.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_extract", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_inputs_are_deterministic(bench: ModuleType) -> None:
    texts = bench.make_texts(50)
    assert texts == bench.make_texts(50)
    assert len(set(texts)) == 50
    assert all(1 <= t.count(".") <= 3 for t in texts)
    images = bench.make_images(2)
    assert images == bench.make_images(2)
    assert all(png.startswith(b"\x89PNG") for png in images)


def test_texts(bench: ModuleType) -> None:
    row = bench.bench_texts(20, rounds=1)
    assert row["raw_s"] > 0 and row["extractor_s"] > 0 and row["seconds"] > 0
    assert row["ratio"] > 0 and row["extractor_ratio"] > 0
    assert row["verdict"] in ("PASS", "MISS")
    # raw onnxruntime ran in the round too, and the round's own ratio is reported
    assert row["raw_onnx_s"] > 0 and row["onnx_ratio_paired_median"] > 0
    assert row["round_ratios"][0]["e2e_raw_onnx"] > 0


def test_images(bench: ModuleType) -> None:
    row = bench.bench_images(2, rounds=1)
    assert row["raw_s"] > 0 and row["ratio"] > 0 and row["extractor_ratio"] > 0


def test_video(bench: ModuleType, tmp_path: Path) -> None:
    row = bench.bench_video(15, 12, tmp_path)
    assert row["documents"] == 2  # 0-10 s and 10-15 s
    assert row["with_speech"] >= 1
    assert row["realtime"] > 0
    assert row["peak_rss_mb"] >= row["loaded_rss_mb"] > 0
