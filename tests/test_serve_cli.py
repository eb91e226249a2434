"""`assay serve` as a real process: embedded defaults, the first admin key printed once."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

SERVE = "from assay.cli import app; app()"


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(data_dir.parent)},
    )


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("assay serve did not become healthy")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def test_serve_starts_on_embedded_defaults_and_prints_the_admin_key_once(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data_dir, port)
    try:
        _wait_healthy(url, proc)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["checks"] == {"database": "ok", "blob_store": "ok", "vector_index": "ok"}
    finally:
        first = _stop(proc)
    match = re.search(r"Generated the first admin key \(shown only once\): (sk_live_\w+)", first)
    assert match, first
    key = match.group(1)

    with sqlite3.connect(data_dir / "assay.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert (data_dir / "blobs").is_dir()

    proc = _serve(data_dir, port)
    try:
        _wait_healthy(url, proc)
        r = httpx.get(f"{url}/v1/namespaces", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["results"] == []
    finally:
        second = _stop(proc)
    assert "Generated the first admin key" not in second
