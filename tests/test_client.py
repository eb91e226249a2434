"""`assay.client` against a live server over real HTTP: models, pages, errors, retries,
uploads (small, multipart, resumed), batches, search, webhooks, and the async twin."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.client import (
    AlreadyExists,
    AssayConnectionError,
    AssayError,
    AsyncClient,
    BadRequest,
    Batch,
    Client,
    Conflict,
    Namespace,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    UploadFailed,
    ValidationError,
)
from assay.config import Settings
from assay.extractors.base import ExtractorError, ObjectInput
from assay.extractors.builtin.passthrough import PassthroughExtractor
from tests.conftest import ADMIN_KEY, LiveServer, free_port, png_bytes

MIB = 1024 * 1024
FAST = RetryPolicy(max_attempts=4, backoff_s=0.01, max_backoff_s=0.05)
Hook = Callable[[httpx.Request, httpx.BaseTransport], httpx.Response | None]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module; each test works in a namespace of its own."""
    data = tmp_path_factory.mktemp("client") / "data"
    settings = Settings(data_dir=data, admin_key=ADMIN_KEY, allow_private_urls=True)
    with LiveServer(settings) as live:
        yield live


class Tap(httpx.BaseTransport):
    """Real HTTP underneath; records every request, and `hook` may answer one instead."""

    def __init__(self, hook: Hook | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.hook = hook
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.hook is not None:
            answer = self.hook(request, self.inner)
            if answer is not None:
                return answer
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def puts(self) -> list[str]:
        return [str(r.url) for r in self.seen if r.method == "PUT"]


def envelope(status: int, type_: str, message: str) -> dict[str, Any]:
    return {"success": False, "status": status, "error": {"type": type_, "message": message}}


def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def workspace(
    server: LiveServer, transport: httpx.BaseTransport | None = None, **bucket: Any
) -> tuple[Client, str]:
    """A client in a fresh passthrough namespace, and a bucket (text, json, image, binary)."""
    admin = Client(server.url, ADMIN_KEY, retry=FAST, transport=transport)
    ns = name()
    admin.namespaces.create(ns, ["passthrough_extractor"])
    client = admin.with_namespace(ns)
    props = bucket or {"body": "text", "doc": "json", "picture": "image", "raw": "binary"}
    client.buckets.create("b", properties=props)
    return client, "b"


def test_models_keep_fields_a_newer_server_adds() -> None:
    ns = Namespace.model_validate(
        {"namespace_id": "ns_1", "namespace_name": "x", "tier": "gold", "feature_extractors": []}
    )
    assert ns.tier == "gold" and ns.model_dump()["tier"] == "gold"  # type: ignore[attr-defined]
    batch = Batch.model_validate({"batch_id": "btch_1", "status": "COMPLETED"})
    assert batch.done and batch.progress.total == 0


def test_create_get_and_env_defaults(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_URL", server.url)
    monkeypatch.setenv("ASSAY_API_KEY", ADMIN_KEY)
    ns = name()
    monkeypatch.setenv("ASSAY_NAMESPACE", ns)
    with Client() as client:
        assert client.url == server.url and client.namespace == ns
        created = client.namespaces.create(ns, ["passthrough_extractor@v1"], description="d")
        assert created.namespace_name == ns and created.namespace_id.startswith("ns_")
        assert [e.feature_extractor_name for e in created.feature_extractors] == [
            "passthrough_extractor"
        ]
        assert client.namespaces.get(created.namespace_id).description == "d"
        bucket = client.buckets.create("b", properties={"body": {"type": "text", "required": True}})
        assert bucket.file_properties == {"body": "text"}
        obj = client.objects.create(
            "b",
            [{"property": "body", "type": "text", "content": "hello"}],
            key_prefix="/docs",
            metadata={"color": "red"},
        )
        got = client.objects.get("b", obj.object_id)
        assert got.metadata == {"color": "red"} and got.key_prefix == "/docs"
        assert got.blobs[0].sha256 == hashlib.sha256(b"hello").hexdigest()
        assert client.buckets.get("b").object_count == 1
        client.objects.delete("b", obj.object_id)
        with pytest.raises(NotFound):
            client.objects.get("b", obj.object_id)


def test_lists_walk_every_page(server: LiveServer) -> None:
    tap = Tap()
    client, bucket = workspace(server, tap)
    made = [
        client.objects.create(
            bucket, [{"property": "body", "type": "text", "content": f"n{i}"}], metadata={"n": i}
        ).object_id
        for i in range(7)
    ]
    tap.seen.clear()
    listed = [o.object_id for o in client.objects.list(bucket, page_size=3)]
    assert sorted(listed) == sorted(made) and len(listed) == 7
    pages = [r for r in tap.seen if r.method == "GET"]
    assert len(pages) == 3 and "cursor" in str(pages[1].url)

    flt = {"AND": [{"field": "metadata.n", "operator": "in", "value": [1, 2, 3]}]}
    filtered = list(client.objects.list(bucket, filters=flt, page_size=2))
    assert sorted(o.metadata["n"] for o in filtered) == [1, 2, 3]
    assert client.namespace in [n.namespace_name for n in client.namespaces.list(page_size=1)]


def test_errors_are_typed_with_the_envelope(server: LiveServer) -> None:
    client, bucket = workspace(server)
    with pytest.raises(NotFound) as nf:
        client.buckets.get("nope")
    assert nf.value.status == 404 and nf.value.type == "NotFoundError" and "nope" in str(nf.value)

    with pytest.raises(ValidationError) as bad:
        client.objects.create(bucket, [{"property": "zzz", "type": "text", "content": "x"}])
    assert bad.value.status == 422
    assert bad.value.validation_errors[0]["loc"] == ["blobs", 0, "property"]

    with pytest.raises(AlreadyExists) as taken:
        client.buckets.create(bucket, properties={"x": "text"})
    assert isinstance(taken.value, Conflict) and taken.value.type == "AlreadyExistsError"

    obj = client.objects.create(bucket, [{"property": "body", "type": "text", "content": "x"}])
    batch = client.batches.create(bucket, [obj.object_id])
    with pytest.raises(Conflict, match="DRAFT"):
        client.batches.wait(bucket, batch.batch_id)  # a draft would never finish
    client.batches.submit(bucket, batch.batch_id)
    with pytest.raises(Conflict) as twice:
        client.batches.submit(bucket, batch.batch_id)
    assert not isinstance(twice.value, AlreadyExists) and twice.value.type == "ConflictError"

    with pytest.raises(BadRequest, match="X-Namespace"):
        list(Client(server.url, ADMIN_KEY).buckets.list())
    with pytest.raises(Unauthorized) as denied:
        list(Client(server.url, "sk_live_wrong").namespaces.list())
    assert denied.value.status == 401

    closed = Client(f"http://127.0.0.1:{free_port()}", ADMIN_KEY, retry=FAST)
    with pytest.raises(AssayConnectionError) as lost:
        closed.namespaces.get("x")
    assert isinstance(lost.value, AssayError) and lost.value.status == 0


def test_a_create_retried_after_a_503_makes_one_object(server: LiveServer) -> None:
    """The first try reaches the server, its answer is lost behind a 503: the retry carries
    the same Idempotency-Key and gets the first answer back, not a second object."""
    first: list[httpx.Response] = []

    def lose_first_answer(req: httpx.Request, inner: httpx.BaseTransport) -> httpx.Response | None:
        if req.method == "POST" and req.url.path.endswith("/objects") and not first:
            answer = inner.handle_request(req)
            answer.read()
            first.append(answer)
            body = envelope(503, "ServiceUnavailable", "try again")
            return httpx.Response(503, json=body, headers={"Retry-After": "0"})
        return None

    tap = Tap(lose_first_answer)
    client, bucket = workspace(server, tap)
    obj = client.objects.create(bucket, [{"property": "body", "type": "text", "content": "once"}])
    posts = [r for r in tap.seen if r.method == "POST" and r.url.path.endswith("/objects")]
    assert len(posts) == 2
    keys = {r.headers["Idempotency-Key"] for r in posts}
    assert len(keys) == 1 and keys != {""}
    assert obj.object_id == first[0].json()["object_id"]
    assert client.buckets.get(bucket).object_count == 1

    again = client.objects.create(bucket, [{"property": "body", "type": "text", "content": "x"}])
    last = [r for r in tap.seen if r.method == "POST" and r.url.path.endswith("/objects")][-1]
    assert again.object_id != obj.object_id and last.headers["Idempotency-Key"] not in keys


def test_a_create_told_in_progress_waits_its_retry_after_and_gets_the_answer(
    server: LiveServer,
) -> None:
    """A request with the same key is running (or ran in a process that died, until its claim
    runs out): the 409 carries Retry-After, and the client asks again then."""
    busy = {"left": 1}

    def in_progress(req: httpx.Request, _inner: httpx.BaseTransport) -> httpx.Response | None:
        if req.method == "POST" and req.url.path.endswith("/objects") and busy["left"]:
            busy["left"] -= 1
            message = "a request with this Idempotency-Key is already in progress"
            body = envelope(409, "ConflictError", message)
            return httpx.Response(409, json=body, headers={"Retry-After": "0.2"})
        return None

    tap = Tap(in_progress)
    client, bucket = workspace(server, tap)
    started = time.monotonic()
    obj = client.objects.create(bucket, [{"property": "body", "type": "text", "content": "w"}])
    assert time.monotonic() - started >= 0.2
    posts = [r for r in tap.seen if r.method == "POST" and r.url.path.endswith("/objects")]
    assert len(posts) == 2 and len({r.headers["Idempotency-Key"] for r in posts}) == 1
    assert client.objects.get(bucket, obj.object_id).object_id == obj.object_id


def test_429_waits_for_retry_after_then_gives_up_typed(server: LiveServer) -> None:
    limited = {"left": 1}

    def throttle(req: httpx.Request, _inner: httpx.BaseTransport) -> httpx.Response | None:
        if req.method == "GET" and limited["left"] != 0:
            limited["left"] -= 1
            body = envelope(429, "TooManyRequestsError", "slow down")
            return httpx.Response(429, json=body, headers={"Retry-After": "0.3"})
        return None

    tap = Tap(throttle)
    client, _ = workspace(server, tap)
    tap.seen.clear()
    started = time.monotonic()
    assert client.buckets.get("b").bucket_name == "b"
    assert time.monotonic() - started >= 0.3 and len(tap.seen) == 2

    limited["left"] = -1  # always
    with pytest.raises(RateLimited) as exc:
        client.buckets.get("b")
    assert exc.value.retry_after == pytest.approx(0.3) and exc.value.status == 429


def test_upload_small_file_then_the_same_bytes_are_a_duplicate(
    server: LiveServer, tmp_path: Path
) -> None:
    client, bucket = workspace(server)
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes("UPLOAD"))
    seen: list[tuple[int, int]] = []
    done = client.uploads.upload_file(
        bucket,
        photo,
        metadata={"source": "test"},
        key_prefix="/pics",
        progress=lambda sent, total: seen.append((sent, total)),
    )
    assert done.object_id and not done.duplicate
    assert done.file_hash == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert seen[-1] == (photo.stat().st_size, photo.stat().st_size)
    obj = client.objects.get(bucket, done.object_id)
    assert obj.blobs[0].property == "picture" and obj.blobs[0].content_type == "image/png"
    assert obj.metadata == {"source": "test"} and obj.key == "/pics/photo.png"
    again = client.uploads.upload_file(bucket, photo)
    assert again.duplicate and again.object_id == done.object_id


def _fail_put(number: int, times: int) -> tuple[Hook, list[str]]:
    """Cut off the `number`th distinct upload URL midway, `times` times."""
    urls: list[str] = []
    left = {"n": times}

    def hook(req: httpx.Request, _inner: httpx.BaseTransport) -> httpx.Response | None:
        if req.method != "PUT":
            return None
        url = str(req.url)
        if url not in urls:
            urls.append(url)
        if urls.index(url) == number - 1 and left["n"] > 0:
            left["n"] -= 1
            stream: Any = req.stream
            next(iter(stream))  # one chunk goes out, then the connection drops
            raise httpx.RemoteProtocolError("connection lost")
        return None

    return hook, urls


def test_multipart_upload_resends_only_the_failed_part(server: LiveServer, tmp_path: Path) -> None:
    hook, urls = _fail_put(2, times=1)
    tap = Tap(hook)
    client, bucket = workspace(server, tap)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MIB))
    seen: list[int] = []
    done = client.uploads.upload_file(
        bucket,
        big,
        multipart_threshold=10 * MIB,
        part_size=5 * MIB,
        progress=lambda sent, total: seen.append(sent),
    )
    assert tap.puts() == [urls[0], urls[1], urls[1], urls[2]]
    assert not any("authorization" in r.headers for r in tap.seen if r.method == "PUT")
    assert seen[-1] == 11 * MIB and max(seen) == 11 * MIB  # the lost chunk was taken back
    blob = client.objects.get(bucket, done.object_id or "").blobs[0]
    assert blob.property == "raw" and blob.size_bytes == 11 * MIB
    assert blob.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_failed_upload_resumes_with_the_missing_parts_only(
    server: LiveServer, tmp_path: Path
) -> None:
    hook, urls = _fail_put(2, times=100)
    client, bucket = workspace(server, Tap(hook))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * MIB))
    with pytest.raises(UploadFailed) as failed:
        client.uploads.upload_file(bucket, big, multipart=True, part_size=5 * MIB)
    state = failed.value.state
    assert state.sent_parts == {1} and len(state.upload.parts or []) == 3
    assert client.buckets.get(bucket).object_count == 0  # nothing confirmed

    healthy = Tap()
    resumed = Client(server.url, ADMIN_KEY, client.namespace, transport=healthy)
    done = resumed.uploads.upload_file(bucket, big, resume=state)
    parts = [p.presigned_url for p in state.upload.parts or []]
    assert urls == parts[:2] and healthy.puts() == parts[1:]
    blob = resumed.objects.get(bucket, done.object_id or "").blobs[0]
    assert blob.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()


@pytest.fixture
def picky(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passthrough extraction fails objects whose metadata says `bad`, like bad media would."""
    real = PassthroughExtractor.extract

    def extract(self: PassthroughExtractor, obj: ObjectInput, params: dict[str, Any]) -> Any:
        if obj.metadata.get("bad"):
            raise ExtractorError("CorruptMedia", f"object {obj.object_id} is unreadable")
        return real(self, obj, params)

    monkeypatch.setattr(PassthroughExtractor, "extract", extract)


def test_batch_submit_wait_failures_and_retry(server: LiveServer, picky: None) -> None:
    client, bucket = workspace(server)
    good = [
        client.objects.create(bucket, [{"property": "body", "type": "text", "content": f"g{i}"}])
        for i in range(3)
    ]
    bad = client.objects.create(
        bucket, [{"property": "body", "type": "text", "content": "b"}], metadata={"bad": True}
    )
    batch = client.batches.create(bucket, [o.object_id for o in [*good, bad]])
    assert batch.status == "DRAFT" and len(batch.object_ids) == 4
    task = client.batches.submit(bucket, batch.batch_id)
    assert task.task_id and task.status == "QUEUED"
    seen: list[Batch] = []
    done = client.batches.wait(
        bucket, batch.batch_id, progress=seen.append, poll_s=0.05, timeout_s=30
    )
    assert done.status == "COMPLETED" and done.progress.succeeded == 3 and done.progress.failed == 1
    states = [(b.status, b.progress.model_dump_json()) for b in seen]
    assert seen[-1].status == "COMPLETED" and len(set(states)) == len(states)  # changes only
    (failure,) = client.batches.failures(bucket, batch.batch_id)
    assert failure.object_id == bad.object_id and failure.error_type == "CorruptMedia"
    assert batch.batch_id in [b.batch_id for b in client.batches.list(bucket)]
    assert client.tasks.get(task.task_id).task_id == task.task_id

    client.batches.retry(bucket, batch.batch_id)
    again = client.batches.wait(bucket, batch.batch_id, poll_s=0.05, timeout_s=30)
    assert again.progress.failed == 1 and again.progress.succeeded == 3

    docs = list(client.collections.documents("passthrough_extractor", page_size=2))
    assert sorted(d.text for d in docs) == ["g0", "g1", "g2"]


def test_search_saved_and_inline(server: LiveServer) -> None:
    client, bucket = workspace(server)
    texts = ["lava flows from the volcano", "a recipe for bread", "volcano ash clouds"]
    ids = [
        client.objects.create(bucket, [{"property": "body", "type": "text", "content": t}])
        for t in texts
    ]
    batch = client.batches.create(bucket, [o.object_id for o in ids])
    client.batches.submit(bucket, batch.batch_id)
    client.batches.wait(bucket, batch.batch_id, poll_s=0.05, timeout_s=30)
    (collection,) = client.collections.list()

    found = client.retrievers.search("volcano", limit=5)  # passthrough: BM25 over the text
    assert {r.text for r in found.results} == {texts[0], texts[2]}
    assert found.results[0].source.object_id in {ids[0].object_id, ids[2].object_id}

    stages = [{"stage_name": "words", "config": {"stage_id": "text_search", "parameters": {}}}]
    inline = client.retrievers.execute(
        query="bread", collections=[collection.collection_name], stages=stages
    )
    assert [r.text for r in inline.results] == [texts[1]]
    saved = client.retrievers.create("words", [collection.collection_id], stages)
    assert saved.retriever_name == "words"
    by_name = client.retrievers.execute("words", query="ash", limit=1)
    assert [r.text for r in by_name.results] == [texts[2]]
    with pytest.raises(NotFound):
        client.retrievers.search("x", collections=["nope"])


def test_webhooks(server: LiveServer) -> None:
    client, _ = workspace(server)
    hook = client.webhooks.create("http://127.0.0.1:9/hook", ["batch.completed"])
    assert hook.secret and hook.event_types == ["batch.completed"]
    assert [w.webhook_id for w in client.webhooks.list()] == [hook.webhook_id]
    assert client.webhooks.get(hook.webhook_id).secret is None  # shown only once
    client.webhooks.delete(hook.webhook_id)
    assert list(client.webhooks.list()) == []


async def test_async_client_does_the_same(server: LiveServer, tmp_path: Path) -> None:
    ns = name()
    async with AsyncClient(server.url, ADMIN_KEY, retry=FAST) as admin:
        await admin.namespaces.create(ns, ["passthrough_extractor"])
        client = admin.with_namespace(ns)
        await client.buckets.create("b", properties={"body": "text", "picture": "image"})
        made = [
            (
                await client.objects.create(
                    "b", [{"property": "body", "type": "text", "content": f"volcano {i}"}]
                )
            ).object_id
            for i in range(3)
        ]
        listed = [o.object_id async for o in client.objects.list("b", page_size=2)]
        assert sorted(listed) == sorted(made)
        photo = tmp_path / "p.png"
        photo.write_bytes(png_bytes("ASYNC"))
        up = await client.uploads.upload_file("b", photo)
        assert up.object_id and (await client.objects.get("b", up.object_id)).blobs[0].type == (
            "image"
        )
        with pytest.raises(NotFound):
            await client.buckets.get("nope")
        batch = await client.batches.create("b", made)
        await client.batches.submit("b", batch.batch_id)
        done = await client.batches.wait("b", batch.batch_id, poll_s=0.05, timeout_s=30)
        assert done.status == "COMPLETED" and done.progress.succeeded == 3
        found = await client.retrievers.search("volcano", limit=2)
        assert len(found.results) == 2
