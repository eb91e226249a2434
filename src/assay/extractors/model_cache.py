"""The process's models, each loaded once, on first use, under a lock of its own.

Models are process resources (hundreds of MB each, and torch or onnxruntime thread teams), so
there is one cache per process; the extractor registry hands it out (`registry.models`) and
every loader goes through it. A load that fails raises and leaves nothing cached, so the next
use tries again (a model folder put back is picked up without a restart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from assay.kit.memory import freeze_heap

T = TypeVar("T")


class ModelCache:
    """Loaded models by name (e.g. `minilm`, `clip:/path/to/model`)."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: str, load: Callable[[], T]) -> T:
        """The model called `name`, made by `load()` the first time it is asked for. Two
        threads asking at once load it once; loads of different models do not wait on each
        other (a model's loader may ask for another, as the ONNX MiniLM asks for MiniLM)."""
        if name in self._models:
            return self._models[name]
        with self._lock(name):
            if name not in self._models:
                self._models[name] = load()
                freeze_heap()  # a model's objects live as long as the process
            return self._models[name]

    def loaded(self) -> list[str]:
        """Names of the models held now."""
        return sorted(self._models)

    def without(self, prefix: str) -> dict[str, Any]:
        """The held models but those whose names start with `prefix` (tests that need a fresh
        load put this in place of `_models` for their duration)."""
        return {k: v for k, v in self._models.items() if not k.startswith(prefix)}

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


MODELS = ModelCache()
