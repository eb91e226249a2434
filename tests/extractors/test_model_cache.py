"""The process's one model cache: one load per model, failures not kept, loads of different
models independent (a loader may ask for another model)."""

from __future__ import annotations

import threading
import time

import pytest

from assay.extractors.model_cache import MODELS, ModelCache
from assay.extractors.registry import ExtractorRegistry


def test_concurrent_asks_load_once_and_a_loader_may_ask_for_another_model() -> None:
    cache = ModelCache()
    loads: list[str] = []

    def load_base() -> str:
        loads.append("base")
        time.sleep(0.05)
        return "base-model"

    def load_derived() -> str:
        loads.append("derived")
        return cache.get("base", load_base) + "+onnx"  # nested: no deadlock

    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.append(cache.get("derived", load_derived)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert found == ["base-model+onnx"] * 8
    assert loads == ["derived", "base"] and cache.loaded() == ["base", "derived"]


def test_a_failed_load_is_not_kept() -> None:
    cache = ModelCache()
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("folder missing")
        return "model"

    with pytest.raises(RuntimeError):
        cache.get("m", flaky)
    assert cache.get("m", flaky) == "model" and len(attempts) == 2


def test_the_registry_hands_out_the_process_cache() -> None:
    assert ExtractorRegistry().models is MODELS
    assert MODELS.without("minilm") == {
        k: v for k, v in MODELS._models.items() if not k.startswith("minilm")
    }
