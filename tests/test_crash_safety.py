"""SIGKILL `assay serve` mid-batch, restart it: the batch completes, nothing is duplicated, and
every webhook event arrives (at least once, signed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, free_port
from tests.webhook_receiver import SECRET, Receiver, receiver

__all__ = ["receiver"]  # the fixture

pytestmark = [pytest.mark.slow, pytest.mark.database]
SERVE = "from assay.cli import app; app()"
NS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "crash"}
OBJECTS = 600


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ASSAY_ADMIN_KEY": ADMIN_KEY,
        "ASSAY_JOB_LEASE_S": "1.5",
        "ASSAY_ALLOW_PRIVATE_URLS": "1",  # the webhook receiver is on loopback
        "ASSAY_WEBHOOK_TIMEOUT_S": "2",
    }
    args = ["serve", "--port", str(port), "--data-dir", str(data_dir), "--workers", "1"]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, *args], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


def _setup(c: httpx.Client) -> list[str]:
    extractor = [{"feature_extractor_name": "passthrough_extractor", "version": "v1"}]
    c.post(
        "/v1/namespaces", json={"namespace_name": "crash", "feature_extractors": extractor}
    ).raise_for_status()
    schema = {"properties": {"body": {"type": "text", "required": True}}}
    c.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema}).raise_for_status()
    ids: list[str] = []
    for start in range(0, OBJECTS, 100):
        objects = [
            {"blobs": [{"property": "body", "type": "text", "content": f"doc {i}"}]}
            for i in range(start, start + 100)
        ]
        r = c.post("/v1/buckets/b/objects/batch", json={"objects": objects})
        ids += [o["object_id"] for o in r.json()["succeeded"]]
    return ids


def test_sigkill_mid_processing_then_restart_completes_exactly_once(
    tmp_path: Path, receiver: str
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port)
    killed_mid_batch = False
    try:
        with httpx.Client(base_url=base, headers=NS, timeout=10) as c:
            ids = _setup(c)
            hook = {"url": receiver, "event_types": ["*"], "secret": SECRET}
            assert c.post("/v1/webhooks", json=hook).status_code == 201
            batch_id = c.post("/v1/buckets/b/batches", json={"object_ids": ids}).json()["batch_id"]
            assert c.post(f"/v1/buckets/b/batches/{batch_id}/submit").status_code == 200
            while True:
                batch = c.get(f"/v1/buckets/b/batches/{batch_id}").json()
                if batch["status"] == "PROCESSING" and batch["progress"]["succeeded"] > 0:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed_mid_batch = batch["progress"]["succeeded"] < OBJECTS
                    break
                assert batch["status"] in ("QUEUED", "PROCESSING"), batch
                time.sleep(0.005)
        assert killed_mid_batch, "the batch finished before the kill; nothing was proven"

        proc = _start(data_dir, port)
        with httpx.Client(base_url=base, headers=NS, timeout=10) as c:
            deadline = time.monotonic() + 60
            while (batch := c.get(f"/v1/buckets/b/batches/{batch_id}").json())[
                "status"
            ] != "COMPLETED":
                assert time.monotonic() < deadline, batch
                time.sleep(0.1)
        assert batch["progress"]["succeeded"] == OBJECTS and batch["progress"]["failed"] == 0
        # A delivery in flight at the kill is sent again once its lease (2 x timeout + 30 s) ends.
        deadline = time.monotonic() + 90
        while not _batch_events(data_dir, batch_id) <= _delivered(batch_id):
            assert time.monotonic() < deadline, Receiver.received
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()

    per_object = _query(data_dir, "SELECT object_id, COUNT(*) FROM documents GROUP BY object_id")
    events = [
        r[0]
        for r in _query(data_dir, "SELECT event_type FROM events WHERE subject_id = :b", b=batch_id)
    ]
    assert len(per_object) == OBJECTS and {n for _, n in per_object} == {1}
    assert events.count("batch.queued") == 1 and events.count("batch.completed") == 1
    assert _batch_events(data_dir, batch_id) == _delivered(batch_id)  # every one arrived
    assert all(ok for _, ok in Receiver.received)


def _query(data_dir: Path, sql: str, **params: str) -> list[Any]:
    """Rows of the server's database: PostgreSQL when the run is on it, else its SQLite file."""
    from sqlalchemy import create_engine, text

    url = os.environ.get("ASSAY_DATABASE_URL") or f"sqlite:///{data_dir / 'assay.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def _batch_events(data_dir: Path, batch_id: str) -> set[str]:
    query = "SELECT event_id FROM events WHERE subject_id = :b"
    return {r[0] for r in _query(data_dir, query, b=batch_id)}


def _delivered(batch_id: str) -> set[str]:
    return {e["event_id"] for e, _ in Receiver.received if e["subject"]["id"] == batch_id}
