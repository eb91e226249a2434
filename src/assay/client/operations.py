"""Every client call written once, as an operation: paths, bodies and answers, no I/O.

`Client` and `AsyncClient` run the same operations (see `transport.py`); the functions here
return a generator, so nothing happens until a runner drives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from assay.client.errors import Conflict, NotFound, WaitTimeout
from assay.client.models import (
    Batch,
    BatchFailure,
    Bucket,
    Collection,
    Document,
    FeatureExtractor,
    Namespace,
    Object,
    Retriever,
    SearchResponse,
    Task,
    Webhook,
)
from assay.client.transport import Call, Op, Sleep, create, get, new_key, query

M = TypeVar("M", bound=BaseModel)

MAX_BATCH_OBJECTS = 10_000  # per batch request; more are added in further requests
MAX_SEARCHES = 10  # feature_search takes at most this many searches


def q(segment: str) -> str:
    """A path segment, escaped (ids and names are user input)."""
    return quote(str(segment), safe="")


def _model(model: type[M], data: Any) -> M:
    return model.model_validate(data)


def one(call: Call, model: type[M]) -> Op[M]:
    """One request whose answer is one `model`."""
    return _model(model, (yield call))


def nothing(call: Call) -> Op[None]:
    """One request whose answer is not needed."""
    yield call


def delete(path: str, *, scoped: bool = True) -> Op[None]:
    """A DELETE (safe to resend: deleting twice leaves the same state)."""
    return nothing(Call("DELETE", path, safe=True, scoped=scoped))


def drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its unset (None) fields."""
    return {k: v for k, v in body.items() if v is not None}


# -- lists ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager(Generic[M]):
    """A keyset-paged list: GET `?limit=&cursor=`, or POST `.../list` when `body` is set."""

    path: str
    model: type[M]
    page_size: int = 100
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    scoped: bool = True

    def page(self, cursor: str | None) -> Op[tuple[list[M], str | None]]:
        """One page and the cursor of the next (None on the last)."""
        if self.body is not None:
            body = drop_none({**self.body, "limit": self.page_size, "cursor": cursor})
            data = yield query(f"{self.path}/list", body)
        else:
            params = drop_none({**self.params, "limit": self.page_size, "cursor": cursor})
            data = yield get(self.path, params, scoped=self.scoped)
        items = [self.model.model_validate(r) for r in data.get("results") or []]
        nxt = (data.get("pagination") or {}).get("next_cursor")
        return items, (str(nxt) if nxt and items else None)


def every(pager: Pager[M]) -> Op[list[M]]:
    """All pages of a list, gathered (for operations that need the whole list)."""
    out: list[M] = []
    cursor: str | None = None
    while True:
        items, cursor = yield from pager.page(cursor)
        out += items
        if cursor is None:
            return out


# -- namespaces and buckets --------------------------------------------------------------------


def extractor_refs(extractors: Iterable[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`"text_extractor"` or `"text_extractor@v1"` or a full mapping, as the API spells them."""
    out = []
    for item in extractors:
        if isinstance(item, str):
            name, _, version = item.partition("@")
            out.append({"feature_extractor_name": name, "version": version or "v1"})
        else:
            out.append(dict(item))
    return out


def create_namespace(
    name: str,
    feature_extractors: Iterable[str | Mapping[str, Any]] = (),
    description: str | None = None,
) -> Op[Namespace]:
    """A namespace with its feature extractors."""
    body = drop_none(
        {
            "namespace_name": name,
            "description": description,
            "feature_extractors": extractor_refs(feature_extractors),
        }
    )
    return one(create("/v1/namespaces", body, scoped=False), Namespace)


def get_namespace(namespace: str) -> Op[Namespace]:
    """A namespace by id or name."""
    return one(get(f"/v1/namespaces/{q(namespace)}", scoped=False), Namespace)


def namespace_pager(page_size: int) -> Pager[Namespace]:
    """Every namespace the key may see."""
    return Pager("/v1/namespaces", Namespace, page_size, scoped=False)


def delete_namespace(namespace: str) -> Op[None]:
    """Delete a namespace and everything in it."""
    return delete(f"/v1/namespaces/{q(namespace)}", scoped=False)


def bucket_schema(
    schema: Mapping[str, Any] | None, properties: Mapping[str, str | Mapping[str, Any]] | None
) -> dict[str, Any]:
    """A bucket schema from a full one, or from `{"name": "type" | {type, required...}}`."""
    if schema is not None:
        return dict(schema)
    props = {
        name: {"type": spec} if isinstance(spec, str) else dict(spec)
        for name, spec in (properties or {}).items()
    }
    return {"properties": props}


def create_bucket(
    name: str,
    schema: Mapping[str, Any] | None = None,
    properties: Mapping[str, str | Mapping[str, Any]] | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Bucket]:
    """A bucket with its schema."""
    body = drop_none(
        {
            "bucket_name": name,
            "description": description,
            "bucket_schema": bucket_schema(schema, properties),
            "metadata": dict(metadata) if metadata is not None else None,
        }
    )
    return one(create("/v1/buckets", body), Bucket)


def get_bucket(bucket: str) -> Op[Bucket]:
    """A bucket by id or name."""
    return one(get(f"/v1/buckets/{q(bucket)}"), Bucket)


def bucket_pager(page_size: int) -> Pager[Bucket]:
    """The buckets of the namespace."""
    return Pager("/v1/buckets", Bucket, page_size)


def delete_bucket(bucket: str) -> Op[None]:
    """Delete a bucket and its objects."""
    return delete(f"/v1/buckets/{q(bucket)}")


# -- objects ------------------------------------------------------------------------------------


def objects_path(bucket: str) -> str:
    """The objects route of a bucket."""
    return f"/v1/buckets/{q(bucket)}/objects"


def create_object(
    bucket: str,
    blobs: Sequence[Mapping[str, Any]],
    key_prefix: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Object]:
    """Register an object from its blobs."""
    body = drop_none(
        {
            "key_prefix": key_prefix,
            "metadata": dict(metadata) if metadata is not None else None,
            "blobs": [dict(b) for b in blobs],
        }
    )
    return one(create(objects_path(bucket), body), Object)


def get_object(bucket: str, object_id: str) -> Op[Object]:
    """One object with its blobs."""
    return one(get(f"{objects_path(bucket)}/{q(object_id)}"), Object)


def delete_object(bucket: str, object_id: str) -> Op[None]:
    """Delete an object and its documents."""
    return delete(f"{objects_path(bucket)}/{q(object_id)}")


def object_pager(
    bucket: str, filters: Mapping[str, Any] | None, sort: Mapping[str, Any] | None, page_size: int
) -> Pager[Object]:
    """Objects of a bucket; filtered or sorted through `POST .../list`."""
    if filters is None and sort is None:
        return Pager(objects_path(bucket), Object, page_size)
    body = drop_none({"filters": filters, "sort": sort})
    return Pager(objects_path(bucket), Object, page_size, body=body)


# -- batches ------------------------------------------------------------------------------------


def batches_path(bucket: str) -> str:
    """The batches route of a bucket."""
    return f"/v1/buckets/{q(bucket)}/batches"


def create_batch(bucket: str, object_ids: Sequence[str]) -> Op[Batch]:
    """A DRAFT batch of these objects (any number: past 10,000 they are added in steps)."""
    ids = list(object_ids)
    first, rest = ids[:MAX_BATCH_OBJECTS], ids[MAX_BATCH_OBJECTS:]
    batch = _model(Batch, (yield create(batches_path(bucket), {"object_ids": first})))
    while rest:
        chunk, rest = rest[:MAX_BATCH_OBJECTS], rest[MAX_BATCH_OBJECTS:]
        added = yield from add_batch_objects(bucket, batch.batch_id, chunk)
        batch = added
    return batch


def add_batch_objects(bucket: str, batch_id: str, object_ids: Sequence[str]) -> Op[Batch]:
    """Add objects to a DRAFT batch."""
    path = f"{batches_path(bucket)}/{q(batch_id)}/objects"
    return one(create(path, {"object_ids": list(object_ids)}), Batch)


def get_batch(bucket: str, batch_id: str) -> Op[Batch]:
    """A batch with its status and progress counters."""
    return one(get(f"{batches_path(bucket)}/{q(batch_id)}"), Batch)


def batch_pager(bucket: str, page_size: int) -> Pager[Batch]:
    """Batches of a bucket, newest first."""
    return Pager(batches_path(bucket), Batch, page_size)


def submit_batch(bucket: str, batch_id: str) -> Op[Task]:
    """QUEUED: its objects are extracted in the background; the task follows it."""
    return one(create(f"{batches_path(bucket)}/{q(batch_id)}/submit"), Task)


def retry_batch(bucket: str, batch_id: str) -> Op[Task]:
    """Reprocess only the batch's failed objects."""
    return one(create(f"{batches_path(bucket)}/{q(batch_id)}/retry"), Task)


def cancel_batch(bucket: str, batch_id: str) -> Op[Batch]:
    """Cancel a QUEUED or PROCESSING batch."""
    return one(create(f"{batches_path(bucket)}/{q(batch_id)}/cancel"), Batch)


def get_task(task_id: str) -> Op[Task]:
    """An asynchronous operation and its status."""
    return one(get(f"/v1/tasks/{q(task_id)}"), Task)


def batch_failures(bucket: str, batch_id: str) -> Op[list[BatchFailure]]:
    """The failed objects of a batch, with error type and message."""
    data = yield get(f"{batches_path(bucket)}/{q(batch_id)}/failures")
    return [BatchFailure.model_validate(r) for r in data.get("results") or []]


def wait_batch(
    bucket: str,
    batch_id: str,
    progress: Callable[[Batch], None] | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> Op[Batch]:
    """Poll until COMPLETED, FAILED or CANCELED, calling `progress` whenever it changed."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: Any = None
    while True:
        batch = _model(Batch, (yield get(f"{batches_path(bucket)}/{q(batch_id)}")))
        state = (batch.status, batch.progress.model_dump())
        if state != seen:
            seen = state
            if progress is not None:
                progress(batch)
        if batch.done:
            return batch
        if batch.status == "DRAFT":
            raise Conflict(f"batch {batch_id} is DRAFT: submit it before waiting", status=409)
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise WaitTimeout(f"batch {batch_id} is still {batch.status}", batch)
        yield Sleep(poll_s if deadline is None else min(poll_s, deadline - now))


# -- collections and search ---------------------------------------------------------------------


def create_collection(
    name: str,
    bucket_ids: Sequence[str],
    feature_extractor: str | Mapping[str, Any],
    description: str | None = None,
) -> Op[Collection]:
    """A collection of documents extracted from buckets."""
    (extractor,) = extractor_refs([feature_extractor])
    body = drop_none(
        {
            "collection_name": name,
            "description": description,
            "source": {"type": "bucket", "bucket_ids": list(bucket_ids)},
            "feature_extractor": extractor,
        }
    )
    return one(create("/v1/collections", body), Collection)


def get_collection(collection: str) -> Op[Collection]:
    """A collection by id or name."""
    return one(get(f"/v1/collections/{q(collection)}"), Collection)


def collection_pager(page_size: int) -> Pager[Collection]:
    """The collections of the namespace."""
    return Pager("/v1/collections", Collection, page_size)


def delete_collection(collection: str) -> Op[None]:
    """Delete a collection and its documents."""
    return delete(f"/v1/collections/{q(collection)}")


def document_pager(collection: str, include_vectors: bool, page_size: int) -> Pager[Document]:
    """Documents of a collection, in creation order."""
    params = {"include_vectors": "true"} if include_vectors else {}
    return Pager(f"/v1/collections/{q(collection)}/documents", Document, page_size, params)


def get_document(collection: str, document_id: str, include_vectors: bool) -> Op[Document]:
    """One document with its lineage."""
    params = {"include_vectors": "true"} if include_vectors else None
    path = f"/v1/collections/{q(collection)}/documents/{q(document_id)}"
    return one(get(path, params), Document)


def create_retriever(
    name: str,
    collections: Sequence[str],
    stages: Sequence[Mapping[str, Any]],
    input_schema: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Op[Retriever]:
    """Save a retriever: collections and stages."""
    body = drop_none(
        {
            "retriever_name": name,
            "description": description,
            "collection_identifiers": list(collections),
            "stages": [dict(s) for s in stages],
            "input_schema": dict(input_schema) if input_schema is not None else None,
        }
    )
    return one(create("/v1/retrievers", body), Retriever)


def get_retriever(retriever: str) -> Op[Retriever]:
    """A saved retriever by id or name."""
    return one(get(f"/v1/retrievers/{q(retriever)}"), Retriever)


def retriever_pager(page_size: int) -> Pager[Retriever]:
    """Saved retrievers of the namespace."""
    return Pager("/v1/retrievers", Retriever, page_size)


def delete_retriever(retriever: str) -> Op[None]:
    """Delete a saved retriever."""
    return delete(f"/v1/retrievers/{q(retriever)}")


def feature_extractors() -> Op[list[FeatureExtractor]]:
    """The extractor catalogue with outputs and feature URIs."""
    data = yield get("/v1/feature-extractors", scoped=False)
    return [FeatureExtractor.model_validate(r) for r in data or []]


def execute(
    retriever: str | None,
    inputs: Mapping[str, Any],
    collections: Sequence[str] | None,
    stages: Sequence[Mapping[str, Any]] | None,
    limit: int | None,
    cursor: str | None,
) -> Op[SearchResponse]:
    """A saved retriever by id or name, or an inline definition (`collections` and `stages`)."""
    body: dict[str, Any] = drop_none({"inputs": dict(inputs), "limit": limit, "cursor": cursor})
    if retriever is not None:
        call = query(f"/v1/retrievers/{q(retriever)}/execute", body)
    else:
        if not stages:
            raise ValueError("an inline search needs stages (or give a saved retriever's name)")
        body |= {"collection_identifiers": list(collections or []), "stages": list(stages)}
        call = query("/v1/retrievers/execute", body)
    return one(call, SearchResponse)


def _text_uris(col: Collection, catalogue: Sequence[FeatureExtractor]) -> list[str]:
    """The collection's vector features that live in the text space (`text_embedding`)."""
    ref = col.feature_extractor
    spec = next(
        (
            e
            for e in catalogue
            if e.feature_extractor_name == ref.get("feature_extractor_name")
            and e.version == ref.get("version", e.version)
        ),
        None,
    )
    mine = set(col.feature_uris)
    if spec is not None:
        return [
            o.feature_uri
            for o in spec.outputs
            if o.type == "vector" and o.name == "text_embedding" and o.feature_uri in mine
        ]
    return [u for u in col.feature_uris if u.endswith("/text_embedding")]


def pick_collections(wanted: Sequence[str], available: Sequence[Collection]) -> list[Collection]:
    """The collections named (by id or name); all of them when none is named."""
    if not wanted:
        return list(available)
    by_key = {c.collection_id: c for c in available} | {c.collection_name: c for c in available}
    unknown = [w for w in wanted if w not in by_key]
    if unknown:
        raise NotFound(f"collection(s) not found: {', '.join(unknown)}", status=404)
    return list({by_key[w].collection_id: by_key[w] for w in wanted}.values())


def text_search(
    text: str, collections: Sequence[str] = (), limit: int = 10, top_k: int = 50
) -> Op[SearchResponse]:
    """Search the namespace's collections (or the named ones) for `text`, inline.

    Collections with a text-space vector (`text_embedding`) are searched by meaning, one
    search per feature URI fused by the best score; if none has one, BM25 over their text.
    """
    available = yield from every(Pager("/v1/collections", Collection))
    chosen = pick_collections(collections, available)
    if not chosen:
        raise NotFound("the namespace has no collections to search", status=404)
    catalogue = yield from feature_extractors()
    uris: dict[str, list[str]] = {}
    for col in chosen:
        for uri in _text_uris(col, catalogue):
            uris.setdefault(uri, []).append(col.collection_id)
    top_k = max(top_k, limit)
    search: dict[str, Any]
    if uris:
        searches = [
            {"feature_uri": uri, "query": "{{INPUT.query}}", "top_k": top_k}
            for uri in list(uris)[:MAX_SEARCHES]
        ]
        params: dict[str, Any] = {"searches": searches, "final_top_k": top_k}
        if len(searches) > 1:
            params["fusion"] = "max"
        search = {"stage_id": "feature_search", "parameters": params}
        ids = list(dict.fromkeys(c for cols in uris.values() for c in cols))
    else:
        search = {"stage_id": "text_search", "parameters": {"query": "{{INPUT.query}}"}}
        search["parameters"]["top_k"] = top_k
        ids = [c.collection_id for c in chosen]
    stages = [
        {"stage_name": "search", "config": search},
        {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": limit}}},
    ]
    return (yield from execute(None, {"query": text}, ids, stages, limit, None))


# -- webhooks -----------------------------------------------------------------------------------


def create_webhook(
    url: str,
    event_types: Sequence[str] = ("*",),
    description: str | None = None,
    secret: str | None = None,
) -> Op[Webhook]:
    """Subscribe a URL to events (the answer holds the secret)."""
    body = drop_none(
        {
            "url": url,
            "event_types": list(event_types),
            "description": description,
            "secret": secret,
        }
    )
    # The server keeps no Idempotency-Key record for webhooks (their answer holds the secret),
    # so a create whose answer was lost is not resent.
    call = Call("POST", "/v1/webhooks", json=body, idempotency_key=new_key(), safe=False)
    return one(call, Webhook)


def get_webhook(webhook_id: str) -> Op[Webhook]:
    """A webhook by id."""
    return one(get(f"/v1/webhooks/{q(webhook_id)}"), Webhook)


def webhook_pager(page_size: int) -> Pager[Webhook]:
    """Webhooks of the namespace."""
    return Pager("/v1/webhooks", Webhook, page_size)


def delete_webhook(webhook_id: str) -> Op[None]:
    """Unsubscribe a webhook."""
    return delete(f"/v1/webhooks/{q(webhook_id)}")
