"""Where the extraction inside a batch job runs: on this process's threads, or on a Ray cluster.

The jobs table stays the durable record either way (claims, leases, attempts: `engine/local.py`);
an extraction engine only decides where one job's extractor calls run. `BatchExtraction` asks
its engine for an executor at the start of every job and hands each extractor's objects to it
instead of calling `extract_many` itself; the results come back to the job, which writes them
through the documents layer exactly as before (same lineage keys, so a rerun never duplicates).

`make_engine` imports the Ray engine only when `engine = "ray"`: Ray is an optional extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from assay.config import Settings
from assay.extractors.base import Extracted, Extractor, ObjectInput


class EngineUnavailable(RuntimeError):
    """The engine cannot run extraction now (its cluster does not answer). The job goes back to
    the queue without its attempt counted, and is claimed again after `retry_s`."""

    def __init__(self, message: str, retry_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_s = retry_s


class ExtractionExecutor(Protocol):
    """Runs one extractor over one job's objects.

    `local_files`: whether blobs kept in the blob store must be files on this machine before the
    call (the job makes them, as `BlobInput.path`). When False they arrive with only their
    `BlobInput.storage_key`, and the executor reads them from the blob store where it runs.

    `extract_many` answers as `Extractor.extract_many` does: one result per object, in order, a
    bad object failing alone. It raises `ModelLoadError` when the extractor's model cannot load
    (the job fails those objects at once), `EngineUnavailable` when its cluster went away, and
    anything else when the work was cut short (the job is retried under its attempts).
    """

    local_files: bool

    def extract_many(
        self, impl: Extractor, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]: ...


class ExtractionEngine(Protocol):
    """Hands out executors; owned by the process (`AppContext.engine`).

    `executor` raises `EngineUnavailable` while the engine cannot take work (the job waits in
    the queue). `status` is "ok" or "error: <why>", for `/readyz`; it must answer quickly.
    `close` releases what the engine started (a local Ray instance).
    """

    async def executor(self) -> ExtractionExecutor: ...

    def status(self) -> str: ...

    def close(self) -> None: ...


class LocalExecutor:
    """The extractor called right here, on the job's model thread."""

    local_files = True

    def extract_many(
        self, impl: Extractor, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        return impl.extract_many(objects, params)


class LocalEngine:
    """Extraction in this process: always available."""

    def __init__(self) -> None:
        self._executor = LocalExecutor()

    async def executor(self) -> ExtractionExecutor:
        return self._executor

    def status(self) -> str:
        return "ok"

    def close(self) -> None:
        pass


def make_engine(settings: Settings) -> ExtractionEngine:
    """The engine `settings.engine` names; nothing connects until the first job asks."""
    if settings.engine == "ray":
        from assay.engine.ray_engine import RayEngine  # imports ray: only when it is the engine

        return RayEngine(settings)
    return LocalEngine()
