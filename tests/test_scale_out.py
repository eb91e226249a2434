"""Several processes, one database: two `assay serve` and two `assay worker` on one PostgreSQL
and one S3 store. Batches go in through both APIs, one worker is SIGKILLed in the middle of a
job, and still every batch completes with exactly one document set per object, every webhook
event arrives once, and either API finds what any worker wrote within a second."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_KEY, S3_BUCKET, free_port
from tests.databases import PostgresServer
from tests.webhook_receiver import SECRET, Receiver, receiver

__all__ = ["receiver"]  # the fixture

pytestmark = pytest.mark.slow
CLI = "from assay.cli import app; app()"
NS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": "fleet"}
BATCHES = 4
PER_BATCH = 100


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.new_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop(name)


class Fleet:
    """The processes of one deployment, sharing a database, a blob store and a signing key."""

    def __init__(self, tmp: Path, database_url: str, s3_endpoint: str) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "ASSAY_DATABASE_URL": database_url,
            "ASSAY_BLOB_STORE": f"s3://{S3_BUCKET}/fleet-{tmp.name}",
            "ASSAY_S3_ENDPOINT_URL": s3_endpoint,
            "ASSAY_S3_REGION": "us-east-1",
            "ASSAY_S3_ACCESS_KEY_ID": "testing",
            "ASSAY_S3_SECRET_ACCESS_KEY": "testing",
            "ASSAY_SIGNING_KEY": "a-shared-signing-key-of-32-chars-or-more",
            "ASSAY_ADMIN_KEY": ADMIN_KEY,
            "ASSAY_JOB_LEASE_S": "2",
            "ASSAY_ALLOW_PRIVATE_URLS": "1",  # the webhook receiver is on loopback
            "ASSAY_WEBHOOK_TIMEOUT_S": "2",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def serve(self, name: str) -> str:
        port = free_port()
        args = ["serve", "--port", str(port), "--workers", "0", "--data-dir", str(self.tmp / name)]
        self.procs.append(subprocess.Popen([sys.executable, "-c", CLI, *args], env=self.env))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} did not start")

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        args = ["worker", "--data-dir", str(self.tmp / name)]
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=self.env)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def _setup(api: httpx.Client, receiver: str) -> None:
    extractor = [{"feature_extractor_name": "passthrough_extractor", "version": "v1"}]
    body = {"namespace_name": "fleet", "feature_extractors": extractor}
    api.post("/v1/namespaces", json=body).raise_for_status()
    schema = {"properties": {"body": {"type": "text", "required": True}}}
    api.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema}).raise_for_status()
    hook = {"url": receiver, "event_types": ["*"], "secret": SECRET}
    assert api.post("/v1/webhooks", json=hook).status_code == 201


def _register(api: httpx.Client, batch: int) -> list[str]:
    objects = [
        {"blobs": [{"property": "body", "type": "text", "content": f"batch{batch} item{i}"}]}
        for i in range(PER_BATCH)
    ]
    r = api.post("/v1/buckets/b/objects/batch", json={"objects": objects})
    assert r.status_code == 200, r.text
    return [o["object_id"] for o in r.json()["succeeded"]]


class _KillWhenRunning(threading.Thread):
    """SIGKILLs `victim` as soon as a running job's lease is its (one connection, polled)."""

    def __init__(self, database_url: str, victim: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.database_url, self.victim, self.killed = database_url, victim, False

    def run(self) -> None:
        engine = create_engine(self.database_url)
        owners = text("SELECT lease_owner FROM jobs WHERE status = 'running'")
        deadline = time.monotonic() + 60
        try:
            with engine.connect() as conn:
                while time.monotonic() < deadline:
                    running = {str(r[0]) for r in conn.execute(owners)}
                    conn.rollback()  # a fresh snapshot each time
                    if any(o.startswith(f"{self.victim.pid}-") for o in running):
                        self.victim.send_signal(signal.SIGKILL)
                        self.killed = True
                        return
                    time.sleep(0.002)
        finally:
            engine.dispose()


def _search(api: httpx.Client, words: str) -> list[dict[str, Any]]:
    body = {
        "collection_identifiers": [],
        "stages": [{"stage_name": "bm25", "config": {"stage_id": "text_search",
                    "parameters": {"query": "{{INPUT.q}}", "top_k": 5}}}],
        "inputs": {"q": words},
    }  # fmt: skip
    r = api.post("/v1/retrievers/execute", json=body)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_two_apis_two_workers_one_killed_mid_job(
    tmp_path: Path, database: str, s3_endpoint: str, receiver: str
) -> None:
    fleet = Fleet(tmp_path, database, s3_endpoint)
    try:
        apis = [fleet.serve("api1"), fleet.serve("api2")]
        clients = [httpx.Client(base_url=u, headers=NS, timeout=20) for u in apis]
        _setup(clients[0], receiver)
        victim = fleet.worker("worker1")
        fleet.worker("worker2")
        # SIGKILL worker 1 the moment it holds a job: watched from before the first submit, as
        # the jobs take tens of milliseconds and may all be done before the loop below ends
        killer = _KillWhenRunning(database, victim)
        killer.start()
        batches: dict[str, list[str]] = {}
        for i in range(BATCHES):
            api = clients[i % 2]  # through both APIs
            ids = _register(api, i)
            batch_id = api.post("/v1/buckets/b/batches", json={"object_ids": ids}).json()[
                "batch_id"
            ]
            assert api.post(f"/v1/buckets/b/batches/{batch_id}/submit").status_code == 200
            batches[batch_id] = ids

        killer.join(60)
        assert killer.killed, "worker 1 never ran a job"
        victim.wait()

        deadline = time.monotonic() + 120
        for n, batch_id in enumerate(batches):
            api = clients[n % 2]
            while (b := api.get(f"/v1/buckets/b/batches/{batch_id}").json())["status"] != (
                "COMPLETED"
            ):
                assert b["status"] in ("QUEUED", "PROCESSING"), b
                assert time.monotonic() < deadline, b
                time.sleep(0.1)
            assert b["progress"]["succeeded"] == PER_BATCH and b["progress"]["failed"] == 0

        # either API sees what the workers wrote
        for api in clients:
            hits = _search(api, "batch3 item7")
            assert hits and "batch3 item7" in json.dumps(hits[0])

        # a new batch: its documents are searchable through the other API within a second
        ids = _register(clients[0], 99)
        batch_id = (
            clients[0].post("/v1/buckets/b/batches", json={"object_ids": ids}).json()["batch_id"]
        )
        clients[0].post(f"/v1/buckets/b/batches/{batch_id}/submit").raise_for_status()
        while clients[0].get(f"/v1/buckets/b/batches/{batch_id}").json()["status"] != ("COMPLETED"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        seen_at = time.monotonic()
        while not _search(clients[1], "batch99 item3"):
            assert time.monotonic() - seen_at < 1.0, "api2 did not see the documents in 1 s"
            time.sleep(0.02)
        batches[batch_id] = ids

        engine = create_engine(database)
        with engine.connect() as conn:
            per_object = {
                r[0]: r[1]
                for r in conn.execute(
                    text("SELECT object_id, count(*) FROM documents GROUP BY object_id")
                )
            }
            events = {
                r[0]: r[1] for r in conn.execute(text("SELECT event_id, event_type FROM events"))
            }
        engine.dispose()
        everything = [o for ids in batches.values() for o in ids]
        assert len(per_object) == len(everything) and set(per_object.values()) == {1}
        # every event delivered once, signed
        deadline = time.monotonic() + 60
        while set(events) - {e["event_id"] for e, _ in Receiver.received}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        counts = Counter(e["event_id"] for e, _ in Receiver.received)
        assert set(counts) == set(events) and set(counts.values()) == {1}
        assert all(ok for _, ok in Receiver.received)
        for c in clients:
            c.close()
    finally:
        fleet.stop()
