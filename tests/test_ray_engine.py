"""Extraction on a real Ray cluster (`engine = "ray"`): decoding tasks and model actors run a
batch of every modality on the real models; actors killed mid-job leave every object with one
document set; an unreachable cluster makes jobs wait (or run locally) while the API answers;
and `ray start --head` plus `assay worker --engine ray` run a batch submitted over HTTP."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import ray
from sqlalchemy import func, select

from assay.config import Settings
from assay.engine.ray_actors import ActorInfo
from assay.engine.ray_engine import NAMESPACE, actor_name
from assay.extractors.builtin.multimodal import TEXT_EMBEDDING_URI, VISUAL_EMBEDDING_URI
from assay.extractors.models import embed_texts
from assay.models import Document, Event, Job
from assay.objects.storage import BlobKeeper
from tests.conftest import ADMIN_KEY, S3_BUCKET, b64, free_port, open_client, png_bytes
from tests.extractors.test_multimodal import make_video
from tests.media_fixtures import SPEECH
from tests.test_extraction_batches import NS, _documents, _namespace, _object

pytestmark = pytest.mark.ray
CLI = "from assay.cli import app; app()"
MULTIMODAL = actor_name("multimodal_extractor", "v1", 0)
# Ray on loopback, no usage reports, and token authentication with a token of this run's own
# (none is written under the home folder).
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray instance for the module's in-process tests; the engines use it (and its
    actor pools, so models load once)."""
    with pytest.MonkeyPatch.context() as mp:
        # Not RAY_AUTH_MODE: `ray` read it when imported; a new local instance turns it on.
        for name, value in RAY_ENV.items():
            if name != "RAY_AUTH_MODE":
                mp.setenv(name, value)
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Every blob in the blob store, so that none can reach the cluster inline.
    return Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        engine="ray",
        workers=1,
        small_blob_max_bytes=0,
    )


async def _run_batch(c: httpx.AsyncClient, ids: list[str], timeout_s: float = 120) -> Any:
    """Submit a batch of `ids` to the app's own workers and wait for its end."""
    r = await c.post("/v1/buckets/m/batches", headers=NS, json={"object_ids": ids})
    batch_id = r.json()["batch_id"]
    assert (await c.post(f"/v1/buckets/m/batches/{batch_id}/submit", headers=NS)).is_success
    return await _finished(c, batch_id, timeout_s)


async def _finished(c: httpx.AsyncClient, batch_id: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = (await c.get(f"/v1/buckets/m/batches/{batch_id}", headers=NS)).json()
        if batch["status"] in ("COMPLETED", "FAILED"):
            return batch
        assert time.monotonic() < deadline, batch
        await asyncio.sleep(0.1)


def _actor_info(name: str) -> ActorInfo:
    info: ActorInfo = ray.get(ray.get_actor(name, namespace=NAMESPACE).info.remote())
    return info


# --------------------------------------------------------------------------- ray start + CLI


class _Processes:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=self.env)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):  # SIGTERM: `ray start --block` stops its processes
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


@pytest.mark.slow
@pytest.mark.s3
# A Ray cluster spreads one deployment over machines, which share a database only through
# PostgreSQL (as tests/test_scale_out.py): the scale-out shape, run once.
@pytest.mark.postgres_only
def test_ray_start_head_and_assay_worker_run_a_batch_over_http(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """The worker starts before the cluster (its job waits), runs the batch once `ray start
    --head` is up, waits again while the head is stopped, and joins the new head."""
    ray_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        **RAY_ENV,
        "ASSAY_ADMIN_KEY": ADMIN_KEY,
        "ASSAY_BLOB_STORE": f"s3://{S3_BUCKET}/ray-{tmp_path.name[-12:]}",
        "ASSAY_S3_ENDPOINT_URL": s3_endpoint,
        "ASSAY_S3_REGION": "us-east-1",
        "ASSAY_S3_ACCESS_KEY_ID": "testing",
        "ASSAY_S3_SECRET_ACCESS_KEY": "testing",
        "ASSAY_SIGNING_KEY": "a-shared-signing-key-of-32-chars-or-more",
        "ASSAY_SMALL_BLOB_MAX_BYTES": "0",  # every blob through S3
        "ASSAY_ENGINE": "ray",
        "ASSAY_RAY_ADDRESS": f"127.0.0.1:{ray_port}",
        # A head told to stop stops now, instead of draining its node for up to 30 s.
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    procs = _Processes(env)
    api = f"http://127.0.0.1:{api_port}"
    temps: list[Path] = []

    def start_head() -> subprocess.Popen[bytes]:
        temps.append(Path(f"/tmp/ray-{secrets.token_hex(4)}"))  # short: Ray's socket paths
        head = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block"]
        head += ["--node-ip-address", "127.0.0.1", "--port", str(ray_port)]
        head += ["--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"]
        return procs.start([*head, "--temp-dir", str(temps[-1])])

    try:
        args = ["serve", "--port", str(api_port), "--workers", "0"]
        procs.start([sys.executable, "-c", CLI, *args, "--data-dir", str(tmp_path / "api")])
        deadline = time.monotonic() + 60
        while (r := _get(f"{api}/readyz")) is None:
            assert time.monotonic() < deadline, "assay serve did not start"
            time.sleep(0.1)
        # No cluster yet: the API serves, and says why extraction waits.
        assert r.status_code == 200 and r.json()["status"] == "degraded", r.text
        assert r.json()["checks"]["ray"].startswith("error: cannot reach the Ray cluster at 127")
        args = ["worker", "--engine", "ray", "--ray-address", f"127.0.0.1:{ray_port}"]
        procs.start([sys.executable, "-c", CLI, *args, "--data-dir", str(tmp_path / "worker")])

        headers = {**NS, "Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=api, headers=headers, timeout=10) as c:
            ref = {"feature_extractor_name": "multimodal_extractor", "version": "v1"}
            ref["params"] = {"ocr": False}
            body = {"namespace_name": "media", "feature_extractors": [ref]}
            assert c.post("/v1/namespaces", json=body).is_success
            schema = {"properties": {"img": {"type": "image"}, "body": {"type": "text"}}}
            body = {"bucket_name": "m", "bucket_schema": schema}
            assert c.post("/v1/buckets", json=body).is_success

            def submit(words: list[str]) -> tuple[str, list[str]]:
                ids = []
                for i, word in enumerate(words):
                    blobs = [
                        {"property": "img", "type": "image", "content": b64(png_bytes(word))},
                        {"property": "body", "type": "text", "content": f"Foxes {word} {i}"},
                    ]
                    r = c.post("/v1/buckets/m/objects", json={"blobs": blobs})
                    assert r.status_code == 200, r.text
                    ids.append(r.json()["object_id"])
                batch_id = c.post("/v1/buckets/m/batches", json={"object_ids": ids}).json()
                assert c.post(f"/v1/buckets/m/batches/{batch_id['batch_id']}/submit").is_success
                return batch_id["batch_id"], ids

            def completed(batch_id: str, ids: list[str], words: list[str]) -> None:
                deadline = time.monotonic() + 150
                while (b := c.get(f"/v1/buckets/m/batches/{batch_id}").json())["status"] not in (
                    "COMPLETED",
                    "FAILED",
                ):
                    assert time.monotonic() < deadline, b
                    time.sleep(0.25)
                assert b["status"] == "COMPLETED" and b["progress"]["succeeded"] == len(ids), b
                for object_id, word in zip(ids, words, strict=True):
                    docs = c.get(f"/v1/objects/{object_id}/documents").json()
                    texts = [d["content"]["text"] for d in docs]
                    assert len(docs) == 2 and any(word in t for t in texts), texts
                    assert any(d["content"].get("labels") for d in docs)

            first, first_ids = submit(["NORTH", "SOUTH"])
            time.sleep(3)  # the worker claims the job, finds no cluster, puts it back
            assert c.get(f"/v1/buckets/m/batches/{first}").json()["status"] == "QUEUED"
            head = start_head()
            completed(first, first_ids, ["NORTH", "SOUTH"])
            assert c.get("/readyz").json() == {
                "status": "ok",
                "checks": {
                    "database": "ok",
                    "blob_store": "ok",
                    "vector_index": "ok",
                    "ray": "ok",
                },
            }

            # The head goes away: the API says so, new work waits; a new head takes it.
            head.terminate()
            head.wait(timeout=60)
            assert c.get("/readyz").json()["status"] == "degraded"
            second, second_ids = submit(["EAST"])
            time.sleep(3)
            assert c.get(f"/v1/buckets/m/batches/{second}").json()["status"] == "QUEUED"
            start_head()
            completed(second, second_ids, ["EAST"])
    finally:
        procs.stop()
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


# --------------------------------------------------------------------------- in-process cluster


@pytest.mark.usefixtures("ray_cluster")
async def test_a_batch_of_every_modality_runs_on_ray_actors(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_local_copies(*_: Any) -> Any:
        raise AssertionError("the Ray engine made a local copy of a blob in the worker")

    monkeypatch.setattr(BlobKeeper, "local_file", no_local_copies)
    await _namespace(client, ocr=False, time_split_interval=10)
    sentence = "Foxes of the northern forest hunt at dawn."
    text = await _object(client, "body", "text", sentence)
    image = await _object(client, "img", "image", png_bytes("HELLO", (160, 120)))
    audio = await _object(client, "aud", "audio", SPEECH.read_bytes())
    video = await _object(client, "vid", "video", make_video())
    batch = await _run_batch(client, [text, image, audio, video])
    assert batch["status"] == "COMPLETED", batch
    assert batch["progress"]["succeeded"] == 4 and batch["progress"]["failed"] == 0, batch

    (doc,) = await _documents(client, text, vectors=True)
    assert doc["content"]["text"] == sentence
    (local,) = embed_texts([sentence])  # the same model, in this process
    assert float(np.dot(doc["features"][TEXT_EMBEDDING_URI], local)) > 0.9999
    (doc,) = await _documents(client, image, vectors=True)
    assert len(doc["content"]["labels"]) == 5 and len(doc["features"][VISUAL_EMBEDDING_URI]) == 1280
    spoken = " ".join(d["content"]["transcript"] for d in await _documents(client, audio))
    assert "fox" in spoken.lower()
    segments = sorted(
        await _documents(client, video), key=lambda d: d["source"]["segment"]["start_ms"]
    )
    assert [d["source"]["segment"]["start_ms"] for d in segments] == [0, 10_000, 20_000]
    assert all(d["content"]["thumbnail"]["content_type"] == "image/jpeg" for d in segments)
    assert "fox" in segments[1]["content"]["transcript"].lower()  # the speech starts at 12 s

    # The models ran in the pool's actor, another process.
    info = _actor_info(MULTIMODAL)
    assert info.pid != os.getpid() and info.calls >= 1 and not info.busy
    assert {"minilm", "efficientnet-lite0", "whisper-tiny.en"} <= set(info.models)


async def _busy_actor(name: str, but_not: int = 0, timeout_s: float = 90) -> ActorInfo:
    """The actor `name` once it is running an extraction (and is not the process `but_not`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info = await asyncio.to_thread(_actor_info, name)
            if info.busy and info.pid != but_not:
                return info
        except (ValueError, ray.exceptions.RayActorError):
            pass  # not made yet, or the dead one still holds the name
        assert time.monotonic() < deadline, f"{name} never got busy"
        await asyncio.sleep(0.02)


@pytest.mark.usefixtures("ray_cluster")
async def test_actors_killed_mid_job_leave_one_document_set_per_object(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _namespace(client, ocr=False)
    ids = [
        await _object(client, "img", "image", png_bytes(f"IMG {i}", (128, 96))) for i in range(12)
    ]
    ids += [await _object(client, "body", "text", f"sentence number {i}") for i in range(4)]
    r = await client.post("/v1/buckets/m/batches", headers=NS, json={"object_ids": ids})
    batch_id = r.json()["batch_id"]
    assert (await client.post(f"/v1/buckets/m/batches/{batch_id}/submit", headers=NS)).is_success

    first = await _busy_actor(MULTIMODAL)  # attempt 1: the actor is killed through Ray
    ray.kill(ray.get_actor(MULTIMODAL, namespace=NAMESPACE))
    second = await _busy_actor(MULTIMODAL, but_not=first.pid)  # attempt 2: its process dies
    os.kill(second.pid, signal.SIGKILL)
    batch = await _finished(client, batch_id)

    assert batch["status"] == "COMPLETED", batch
    assert batch["progress"]["succeeded"] == len(ids) and batch["progress"]["failed"] == 0
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]

    def counts(s: Any) -> tuple[Any, ...]:
        jobs = s.execute(select(Job.status, Job.attempts)).all()
        per_object = s.execute(
            select(Document.object_id, func.count()).group_by(Document.object_id)
        ).all()
        completed = s.scalar(
            select(func.count()).where(
                Event.event_type == "batch.completed", Event.subject_id == batch_id
            )
        )
        return jobs, dict(per_object), completed

    jobs, per_object, completed = await ctx.db.read(counts)
    assert [tuple(j) for j in jobs] == [("done", 3)]  # retried twice through the jobs table
    assert per_object == {object_id: 1 for object_id in ids}
    assert completed == 1
    third = _actor_info(MULTIMODAL)
    assert third.pid not in (first.pid, second.pid)


# --------------------------------------------------------------------------- unreachable


@pytest.fixture
def unreachable(tmp_path: Path) -> Settings:
    """Settings pointing at a port where no Ray cluster listens."""
    return Settings(
        data_dir=tmp_path / "data",
        admin_key=ADMIN_KEY,
        engine="ray",
        ray_address=f"127.0.0.1:{free_port()}",
        workers=1,
    )


async def test_an_unreachable_cluster_makes_jobs_wait_while_the_api_answers(
    unreachable: Settings,
) -> None:
    async with open_client(unreachable) as c:
        await _namespace(c, "passthrough_extractor")
        ids = [await _object(c, "body", "text", f"waiting {i}") for i in range(3)]
        r = await c.post("/v1/buckets/m/batches", headers=NS, json={"object_ids": ids})
        batch_id = r.json()["batch_id"]
        assert (await c.post(f"/v1/buckets/m/batches/{batch_id}/submit", headers=NS)).is_success
        ctx = c._transport.app.state.ctx  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not (job := await ctx.db.read(lambda s: s.scalars(select(Job)).one())).last_error:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # Back in the queue, its attempt not counted, the batch not started.
        assert (job.status, job.attempts) == ("queued", 0), job
        assert job.last_error.startswith("waiting: cannot reach the Ray cluster at 127.0.0.1")
        batch = (await c.get(f"/v1/buckets/m/batches/{batch_id}", headers=NS)).json()
        assert batch["status"] == "QUEUED"
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "ConnectionRefusedError" in ready.json()["checks"]["ray"]
        assert (await c.get("/v1/buckets/m/objects", headers=NS)).status_code == 200


async def test_an_unreachable_cluster_falls_back_to_local_when_allowed(
    unreachable: Settings,
) -> None:
    async with open_client(unreachable.model_copy(update={"ray_fallback_local": True})) as c:
        await _namespace(c, "passthrough_extractor")
        ids = [await _object(c, "body", "text", f"local {i}") for i in range(3)]
        batch = await _run_batch(c, ids, timeout_s=30)
        assert batch["status"] == "COMPLETED" and batch["progress"]["succeeded"] == 3, batch
        assert (await _documents(c, ids[0]))[0]["content"]["text"] == "local 0"
        assert (await c.get("/readyz")).json()["status"] == "degraded"
