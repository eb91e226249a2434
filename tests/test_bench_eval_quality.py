"""bench/eval_quality.py at a tiny scale, so the quality benchmark keeps running."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "eval_quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_eval_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_set_is_labelled_and_deterministic(bench: ModuleType) -> None:
    texts = bench.make_texts(200)
    assert texts == bench.make_texts(200) and len({t for t, _, _ in texts}) == 200
    assert bench.counts(1.0) == {"texts": 200, "words": 30, "shapes": 30, "clips": 20, "videos": 5}
    assert bench.counts(0.01) == {"texts": 2, "words": 1, "shapes": 1, "clips": 1, "videos": 1}
    a, b = bench.build(0.02), bench.build(0.02)
    assert [(q.task, q.query, q.target, q.window_ms) for q in a.queries] == [
        (q.task, q.query, q.target, q.window_ms) for q in b.queries
    ]
    still = [it.content for it in a.items if it.kind in ("text", "image")]
    assert still == [it.content for it in b.items if it.kind in ("text", "image")]
    labels = {it.label for it in a.items}
    assert all(q.target in labels for q in a.queries)
    if shutil.which("espeak-ng"):
        assert {q.task for q in a.queries} >= {
            "text→audio (paraphrase)",
            "text→video segment (speech)",
        }


def test_a_tiny_run_end_to_end(bench: ModuleType, tmp_path: Path) -> None:
    result = bench.run(0.01, tmp_path)
    assert result["batch"]["status"] == "COMPLETED" and not result["failures"]
    tasks = {row["task"] for row in result["rows"]}
    assert {"text→text (paraphrase)", "text→image (drawn word)"} <= tasks
    for row in result["rows"]:
        for method in bench.METHODS:
            assert 0 <= row[f"{method}@1"] <= row[f"{method}@5"] <= 1
    lines = (tmp_path / "queries.jsonl").read_text().splitlines()
    assert len(lines) == result["queries"] * len(bench.METHODS)
    first = json.loads(lines[0])
    assert {"task", "query", "target", "method", "rank", "top"} <= set(first)
    # the same-words query of a text finds it by both methods, even at this size
    same = [json.loads(x) for x in lines if json.loads(x)["task"] == "text→text (same words)"]
    assert same and all(x["rank"] == 1 for x in same)
