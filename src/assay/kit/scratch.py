"""A scratch folder made only when something needs it, removed with everything in it on exit."""

from __future__ import annotations

import tempfile
from pathlib import Path


class Scratch:
    """Extraction copies remote blobs here; most batches never need it, so it is made lazily."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def path(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix=self._prefix)
        return Path(self._folder.name)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *_: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()
