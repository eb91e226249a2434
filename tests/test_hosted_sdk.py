"""The hosted product's own generated Python SDK (PyPI `mixpeek`), unchanged, against Assay over
real HTTP: every call of the quick-start's flow returns a populated model, never None."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from assay.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, Origin, b64, png_bytes

mixpeek = pytest.importorskip("mixpeek")
from mixpeek.api.bucket_batches_api import BucketBatchesApi  # noqa: E402
from mixpeek.api.bucket_objects_api import BucketObjectsApi  # noqa: E402
from mixpeek.api.bucket_uploads_api import BucketUploadsApi  # noqa: E402
from mixpeek.api.buckets_api import BucketsApi  # noqa: E402
from mixpeek.api.collection_documents_api import CollectionDocumentsApi  # noqa: E402
from mixpeek.api.collections_api import CollectionsApi  # noqa: E402
from mixpeek.api.namespaces_api import NamespacesApi  # noqa: E402
from mixpeek.api.retrievers_api import RetrieversApi  # noqa: E402
from mixpeek.api.tasks_api import TasksApi  # noqa: E402
from mixpeek.api.webhooks_api import WebhooksApi  # noqa: E402

M: Any = mixpeek  # the generated models, looked up by name


@pytest.fixture
def sdk(settings: Settings, origin: Origin) -> Iterator[tuple[Any, LiveServer, Origin]]:
    settings.allow_private_urls = True  # URL blobs come from the loopback origin below
    with LiveServer(settings) as server:
        config = M.Configuration(host=server.url, access_token=ADMIN_KEY)
        with M.ApiClient(config) as api:
            yield api, server, origin


def test_the_hosted_sdk_runs_the_quickstart_flow_unchanged(
    sdk: tuple[Any, LiveServer, Origin],
) -> None:
    api, _, origin = sdk
    namespace = NamespacesApi(api).create_namespace(
        M.CreateNamespaceRequest(
            namespace_name="production",
            feature_extractors=[
                M.BaseFeatureExtractorModelInput(
                    feature_extractor_name="text_extractor", version="v1"
                )
            ],
        )
    )
    assert namespace is not None and namespace.namespace_name == "production"
    api.set_default_header("X-Namespace", namespace.namespace_id)

    bucket = BucketsApi(api).create_bucket(
        M.BucketCreateRequest(
            bucket_name="product-catalog",
            bucket_schema=M.BucketSchemaInput.from_dict(
                {
                    "properties": {
                        "product_text": {"type": "text", "required": True},
                        "hero_image": {"type": "image"},
                    }
                }
            ),
        )
    )
    assert bucket is not None and bucket.bucket_name == "product-catalog"
    assert BucketsApi(api).list_buckets().total_count == 1
    assert BucketsApi(api).get_bucket(bucket.bucket_id).bucket_id == bucket.bucket_id
    assert NamespacesApi(api).list_namespaces().total_count == 1
    assert NamespacesApi(api).get_namespace(namespace.namespace_id) is not None

    objects = BucketObjectsApi(api)
    image_url = origin.serve("/photo.png", png_bytes("SDK"), "image/png")
    text_url = origin.serve("/words.txt", b"wireless headphones from a URL", "text/plain")
    text_forms: list[Any] = [
        "wireless headphones, plain",
        {"text": "wireless headphones, as text"},
        {"url": text_url},
        "data:text/plain;base64," + b64(b"wireless headphones, data URI"),
        {"base64": b64(b"wireless headphones, base64"), "mime_type": "text/plain"},
    ]
    image_forms: list[Any] = [
        image_url,
        {"url": image_url},
        "data:image/png;base64," + b64(png_bytes("URI")),
        {"base64": b64(png_bytes("B64")), "mime_type": "image/png", "filename": "p.png"},
    ]
    created = []
    for i, text in enumerate(text_forms):
        text_blob = {"property": "product_text", "type": "text", "data": text}
        blobs = [M.CreateBlobRequest.from_dict(text_blob)]
        if i < len(image_forms):
            blobs.append(
                M.CreateBlobRequest.from_dict(
                    {"property": "hero_image", "type": "image", "data": image_forms[i]}
                )
            )
        obj = objects.create_object_buckets(
            bucket.bucket_id, M.CreateObjectRequest(key_prefix="/products", blobs=blobs)
        )
        assert obj is not None and obj.object_id and obj.bucket_id == bucket.bucket_id
        created.append(obj.object_id)
    listed = objects.list_objects_buckets(bucket.bucket_id)
    assert listed is not None and len(listed.results) == len(created)
    one = objects.get_object_buckets(bucket.bucket_id, created[0])
    assert one is not None and one.object_id == created[0]

    uploads = BucketUploadsApi(api)
    upload = uploads.create_upload_buckets(
        bucket.bucket_id,
        M.CreateUploadRequest(filename="notes.txt", content_type="text/plain"),
    )
    assert upload is not None and upload.upload_id and upload.presigned_url
    import httpx

    put = httpx.put(upload.presigned_url, content=b"uploaded wireless headphones notes")
    assert put.status_code == 200, put.text
    confirmed = uploads.confirm_upload_buckets(bucket.bucket_id, upload.upload_id)
    assert confirmed is not None and confirmed.status == "COMPLETED"

    batches = BucketBatchesApi(api)
    batch = batches.create_batch_buckets_batches(
        bucket.bucket_id, M.CreateBatchRequest(object_ids=created)
    )
    assert batch is not None and batch.batch_id
    task = batches.submit_batch_buckets_batches(bucket.bucket_id, batch.batch_id)
    assert task is not None and task.task_id
    deadline = time.monotonic() + 180
    while True:
        state = batches.get_batch_buckets_batches(bucket.bucket_id, batch.batch_id)
        assert state is not None
        status = getattr(state.status, "value", state.status)
        if status in ("COMPLETED", "FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert status == "COMPLETED", state
    assert TasksApi(api).get_task(task.task_id) is not None
    assert batches.list_batches_buckets(bucket.bucket_id).total_count == 1

    collections = CollectionsApi(api).list_collections()
    assert collections is not None and collections.results
    collection_id = collections.results[0].collection_id
    documents = CollectionDocumentsApi(api).list_documents(collection_id)
    assert documents is not None and documents.results

    retrievers = RetrieversApi(api)
    retriever = retrievers.create_retriever(
        M.CreateRetrieverRequest.from_dict(
            {
                "retriever_name": "everything",
                "collection_identifiers": [collection_id],
                "stages": [
                    {
                        "stage_name": "semantic",
                        "config": {
                            "stage_id": "feature_search",
                            "parameters": {
                                "searches": [
                                    {
                                        "feature_uri": "mixpeek://text_extractor@v1/text_embedding",
                                        "query": "{{INPUT.query}}",
                                        "top_k": 10,
                                    }
                                ],
                                "final_top_k": 5,
                            },
                        },
                    }
                ],
            }
        )
    )
    assert retriever is not None and retriever.collection_identifiers == [collection_id]
    assert retrievers.list_retrievers() is not None
    found = retrievers.execute_retriever(
        "everything", M.ExecuteRetrieverRequest(inputs={"query": "headphones"})
    )
    assert found is not None and found.documents

    hooks = WebhooksApi(api)
    hook = hooks.create_webhook_organizations(
        M.WebhookInput.from_dict(
            {
                "webhook_name": "objects",
                "event_types": ["object.created"],
                "channels": [{"channel": "webhook", "configs": {"url": "http://127.0.0.1:9/h"}}],
            }
        )
    )
    assert hook is not None and hook.webhook_id
    assert hooks.list_webhooks_organizations() is not None


def test_the_rest_of_the_hosted_sdk_surface_returns_models(
    sdk: tuple[Any, LiveServer, Origin],
) -> None:
    """Gets, lists, patches and deletes of every resource Assay has, as the SDK calls them."""
    import httpx

    api, _, _ = sdk
    namespaces = NamespacesApi(api)
    ns = namespaces.create_namespace(
        M.CreateNamespaceRequest(
            namespace_name="surface",
            feature_extractors=[
                M.BaseFeatureExtractorModelInput(
                    feature_extractor_name="passthrough_extractor", version="v1"
                )
            ],
        )
    )
    api.set_default_header("X-Namespace", ns.namespace_id)
    assert (
        namespaces.patch_namespace(
            "surface", M.PatchNamespaceRequest(description="the whole surface")
        )
        is not None
    )
    buckets = BucketsApi(api)
    schema = M.BucketSchemaInput.from_dict({"properties": {"body": {"type": "text"}}})
    assert buckets.create_bucket(M.BucketCreateRequest(bucket_name="notes", bucket_schema=schema))
    assert buckets.patch_bucket("notes", M.BucketPatchRequest(description="d")) is not None

    objects = BucketObjectsApi(api)
    made = objects.create_objects_batch_buckets(
        "notes",
        M.CreateObjectsBatchRequest.from_dict(
            {
                "objects": [
                    {"blobs": [{"property": "body", "type": "text", "data": f"note {i}"}]}
                    for i in range(3)
                ]
            }
        ),
    )
    assert made is not None
    ids = [o.object_id for o in objects.list_objects_buckets("notes").results]
    assert len(ids) == 3

    uploads = BucketUploadsApi(api)
    several = uploads.create_uploads_batch_buckets(
        "notes",
        M.BatchUploadRequest.from_dict(
            {"uploads": [{"filename": "a.txt", "content_type": "text/plain"}]}
        ),
    )
    assert several is not None
    upload = uploads.create_upload_buckets(
        "notes", M.CreateUploadRequest(filename="b.txt", content_type="text/plain")
    )
    assert httpx.put(upload.presigned_url, content=b"uploaded").status_code == 200
    got = uploads.get_upload_buckets("notes", upload.upload_id)  # typed as a plain dict
    assert _field(got, "upload_id") == upload.upload_id
    assert uploads.list_uploads_buckets("notes") is not None

    batches = BucketBatchesApi(api)
    batch = batches.create_batch_buckets_batches("notes", M.CreateBatchRequest(object_ids=ids[:2]))
    added = batches.add_objects_to_batch_buckets_batches(
        "notes", batch.batch_id, M.AddObjectsToBatchRequest(object_ids=ids[2:])
    )
    assert added is not None
    batches.submit_batch_buckets_batches("notes", batch.batch_id)
    deadline = time.monotonic() + 60
    while getattr((b := batches.get_batch_buckets_batches("notes", batch.batch_id)).status,
                  "value", None) not in ("COMPLETED", "FAILED"):  # fmt: skip
        assert time.monotonic() < deadline, b
        time.sleep(0.2)

    collections = CollectionsApi(api)
    collection = collections.get_collection("passthrough_extractor")
    assert collection is not None and collection.collection_id
    documents = CollectionDocumentsApi(api)
    listed = documents.list_documents(collection.collection_id)
    assert listed is not None and len(listed.results) == 3
    doc_id = (
        listed.results[0]["document_id"]
        if isinstance(listed.results[0], dict)
        else (listed.results[0].document_id)
    )
    assert documents.get_document(collection.collection_id, doc_id) is not None

    hooks = WebhooksApi(api)
    channel = {"channel": "webhook", "configs": {"url": "http://127.0.0.1:9/h"}}
    hook = hooks.create_webhook_organizations(
        M.WebhookInput.from_dict(
            {"webhook_name": "h", "event_types": ["object.created"], "channels": [channel]}
        )
    )
    assert hooks.get_webhook_organizations(hook.webhook_id).webhook_id == hook.webhook_id
    updated = hooks.update_webhook_organizations(
        hook.webhook_id,
        M.WebhookInput.from_dict(
            {"webhook_name": "h2", "event_types": ["object.deleted"], "channels": [channel]}
        ),
    )
    assert updated is not None
    hooks.delete_webhook_organizations(hook.webhook_id)

    objects.delete_object_buckets("notes", ids[0])
    assert len(objects.list_objects_buckets("notes").results) == 2
    buckets.delete_bucket("notes")
    namespaces.delete_namespace("surface")


def _field(value: Any, name: str) -> Any:
    """A field of an SDK answer, whether the SDK types it as a model or a plain dict."""
    return value[name] if isinstance(value, dict) else getattr(value, name)
