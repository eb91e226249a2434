"""The collector tuned for a long-running process: `tune_for_serving` then `freeze_heap`."""

from __future__ import annotations

import subprocess
import sys
import tempfile

from assay.kit import memory

# Each check runs in a child interpreter: freezing is process-wide and would outlive the test.
_PROBE = """
import gc, tempfile, asyncio
from pathlib import Path
from assay.config import Settings
from assay.kit import memory
from assay.main import create_app

async def start(app):
    async with app.router.lifespan_context(app):
        print(gc.get_freeze_count(), gc.get_threshold()[0])

if {tuned}:
    memory.tune_for_serving()
key = "sk_live_probe_0123456789abcdef"
settings = Settings(data_dir=Path(tempfile.mkdtemp()), admin_key=key, workers=0)
asyncio.run(start(create_app(settings)))
"""


def _printed(code: str) -> list[str]:
    """What `code` prints, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return done.stdout.split()


def _probe(tuned: bool) -> tuple[int, int]:
    out = _printed(_PROBE.format(tuned=tuned))
    return int(out[-2]), int(out[-1])


def test_a_serving_process_freezes_what_start_up_built() -> None:
    frozen, young = _probe(tuned=True)
    assert frozen > 50_000  # the app, SQLAlchemy's metadata, pydantic's schemas
    assert young == memory._YOUNG_THRESHOLD


def test_an_app_in_a_test_run_leaves_the_collector_alone() -> None:
    assert _probe(tuned=False) == (0, 700)


def test_a_model_load_freezes_the_loaded_model_in_a_serving_process() -> None:
    probe = """
import gc
from assay.kit import memory
from assay.extractors.model_cache import ModelCache
memory.tune_for_serving()
cache = ModelCache()
before = gc.get_freeze_count()
model = cache.get("m", lambda: [[i] for i in range(10_000)])
print(gc.get_freeze_count() - before)
"""
    assert int(_printed(probe)[-1]) >= 10_000
