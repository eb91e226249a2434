"""Collection use-cases: default collections per extractor, user collections, documents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from assay.buckets.repository import BucketRepository
from assay.collections.repository import CollectionRepository, document_field
from assay.collections.schemas import (
    CollectionCreate,
    CollectionOut,
    DocumentOut,
    DocumentSource,
)
from assay.errors import AlreadyExists, NotFound, ValidationFailed
from assay.extractors.base import ExtractorSpec
from assay.extractors.registry import ExtractorRegistry, InvalidParams, UnknownExtractor
from assay.kit.ids import has_prefix, new_id
from assay.kit.paging import SortKey, build_filter, count_all, paginate
from assay.kit.schemas import FilterGroup
from assay.models import Bucket, Collection, Document, Object
from assay.namespaces.schemas import ExtractorRef
from assay.objects.storage import derived_key

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Thumbnail:
    storage_key: str
    content_type: str
    sha256: str


def check_extractors(registry: ExtractorRegistry, refs: list[ExtractorRef]) -> list[dict[str, Any]]:
    """Extractor references checked against the catalogue, params completed with defaults."""
    checked = []
    for i, ref in enumerate(refs):
        try:
            spec = registry.get(ref.feature_extractor_name, ref.version)
            params = registry.validate_params(spec, ref.params)
        except UnknownExtractor as exc:
            raise ValidationFailed(
                f"unknown feature extractor {ref.feature_extractor_name}@{ref.version}; "
                f"available: {', '.join(exc.available)}",
                [{"loc": ["feature_extractors", i], "msg": str(exc), "type": "unknown_extractor"}],
                available=exc.available,
            ) from exc
        except InvalidParams as exc:
            errors = [
                {**e, "loc": ["feature_extractors", i, "params", *e["loc"]]} for e in exc.errors
            ]
            raise ValidationFailed("invalid feature extractor params", errors) from exc
        checked.append(
            {
                "feature_extractor_name": spec.name,
                "version": spec.version,
                "params": params,
                "feature_extractor_id": f"{spec.name}_{spec.version}",
            }
        )
    return checked


def create_defaults(session: Session, namespace_id: str, extractors: list[dict[str, Any]]) -> None:
    """One collection per namespace extractor, named after it, fed by every bucket."""
    repo = CollectionRepository(session, namespace_id)
    for ref in extractors:
        repo.add(
            Collection(
                collection_id=new_id("col"),
                namespace_id=namespace_id,
                collection_name=ref["feature_extractor_name"],
                extractor_name=ref["feature_extractor_name"],
                extractor_version=ref["version"],
                params=ref.get("params") or {},
                is_default=True,
            )
        )


def create(
    session: Session,
    registry: ExtractorRegistry,
    namespace_id: str,
    body: CollectionCreate,
) -> CollectionOut:
    if has_prefix(body.collection_name, "col"):
        raise ValidationFailed.at(["collection_name"], "a name may not look like a collection id")
    repo = CollectionRepository(session, namespace_id)
    if repo.get_by_ident(body.collection_name) is not None:
        raise AlreadyExists(f"collection '{body.collection_name}' already exists")
    fx = body.feature_extractor
    ref = ExtractorRef(
        feature_extractor_name=fx.feature_extractor_name, version=fx.version, params=fx.params
    )
    (checked,) = check_extractors(registry, [ref])
    buckets = BucketRepository(session, namespace_id)
    sources: list[Bucket] = []
    for i, ident in enumerate(body.source.bucket_ids):
        bucket = buckets.get_by_ident(ident)
        if bucket is None:
            raise ValidationFailed.at(["source", "bucket_ids", i], f"bucket '{ident}' not found")
        sources.append(bucket)
    bucket_ids = [b.bucket_id for b in sources]
    spec = registry.get(checked["feature_extractor_name"], checked["version"])
    check_input_mappings(spec, fx.input_mappings, sources)
    collection = repo.add(
        Collection(
            collection_id=new_id("col"),
            namespace_id=namespace_id,
            collection_name=body.collection_name,
            description=body.description,
            extractor_name=checked["feature_extractor_name"],
            extractor_version=checked["version"],
            params=checked["params"],
            input_mappings=fx.input_mappings or {},
            source_bucket_ids=bucket_ids,
        )
    )
    return to_out(registry, collection, 0)


def check_input_mappings(
    spec: ExtractorSpec, mappings: dict[str, Any] | None, sources: list[Bucket]
) -> None:
    """Each key an input of the extractor, each value a property name (or a list of them) that
    a source bucket's schema declares with a blob type that input reads; else 422."""
    where = ["feature_extractor", "input_mappings"]
    inputs = ", ".join(spec.input_types)
    for name, value in (mappings or {}).items():
        if name not in spec.input_types:
            msg = f"unknown input '{name}' for {spec.name}@{spec.version} (its inputs: {inputs})"
            raise ValidationFailed(
                f"{'.'.join(where)}.{name}: {msg}",
                [{"loc": [*where, name], "msg": msg, "type": "unknown_input"}],
                allowed_inputs=list(spec.input_types),
            )
        props = [value] if isinstance(value, str) else value
        if (
            not isinstance(props, list)
            or not props
            or not all(isinstance(p, str) and p for p in props)
        ):
            raise ValidationFailed.at(
                [*where, name], "must be a property name or a non-empty list of property names"
            )
        readable = spec.blob_types_of(name)
        for prop in props:
            types = {
                b.bucket_name: (b.bucket_schema.get("properties") or {}).get(prop, {}).get("type")
                for b in sources
            }
            declared = {bucket: t for bucket, t in types.items() if t is not None}
            if not declared:
                known = sorted(
                    {p for b in sources for p in (b.bucket_schema.get("properties") or {})}
                )
                msg = (
                    f"property '{prop}' is in no source bucket's schema "
                    f"(properties: {', '.join(known) or 'none'})"
                )
                raise ValidationFailed.at([*where, name], msg, "unknown_property")
            wrong = {bucket: t for bucket, t in declared.items() if t not in readable}
            if wrong:
                bucket, kind = next(iter(wrong.items()))
                msg = (
                    f"property '{prop}' holds '{kind}' in bucket '{bucket}'; input '{name}' "
                    f"reads {', '.join(sorted(readable))}"
                )
                raise ValidationFailed.at([*where, name], msg, "type_mismatch")


def get_collection(session: Session, namespace_id: str, ident: str) -> Collection:
    collection = CollectionRepository(session, namespace_id).get_by_ident(ident)
    if collection is None:
        raise NotFound(f"collection '{ident}' not found")
    return collection


def get(
    session: Session, registry: ExtractorRegistry, namespace_id: str, ident: str
) -> CollectionOut:
    collection = get_collection(session, namespace_id, ident)
    count = CollectionRepository(session, namespace_id).document_counts([collection.collection_id])
    return to_out(registry, collection, count.get(collection.collection_id, 0))


def list_page(
    session: Session,
    registry: ExtractorRegistry,
    namespace_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[CollectionOut], str | None, int]:
    repo = CollectionRepository(session, namespace_id)
    key = SortKey(Collection.collection_id, Collection.collection_id, descending=False)
    rows, nxt = paginate(session, repo.scoped(), key, limit=limit, cursor=cursor)
    counts = repo.document_counts([c.collection_id for c in rows])
    outs = [to_out(registry, c, counts.get(c.collection_id, 0)) for c in rows]
    return outs, nxt, count_all(session, repo.scoped())


def delete(session: Session, namespace_id: str, ident: str) -> str:
    collection = get_collection(session, namespace_id, ident)
    CollectionRepository(session, namespace_id).delete(collection)
    return collection.collection_id


def document(
    session: Session, namespace_id: str, ident: str, document_id: str, include_vectors: bool
) -> DocumentOut:
    collection = get_collection(session, namespace_id, ident)
    doc = CollectionRepository(session, namespace_id).document(
        collection.collection_id, document_id
    )
    if doc is None:
        raise NotFound(f"document '{document_id}' not found")
    return _with_vectors(session, namespace_id, [doc], include_vectors)[0]


def documents_page(
    session: Session,
    namespace_id: str,
    ident: str,
    *,
    limit: int,
    cursor: str | None,
    include_vectors: bool,
    filters: FilterGroup | None = None,
) -> tuple[list[DocumentOut], str | None]:
    collection = get_collection(session, namespace_id, ident)
    stmt = CollectionRepository(session, namespace_id).documents(collection.collection_id)
    stmt = stmt.where(build_filter(filters, document_field))
    key = SortKey(Document.document_id, Document.document_id, descending=False)
    rows, nxt = paginate(session, stmt, key, limit=limit, cursor=cursor)
    return _with_vectors(session, namespace_id, rows, include_vectors), nxt


def object_documents(
    session: Session, namespace_id: str, object_id: str, include_vectors: bool
) -> list[DocumentOut]:
    """What an object became, in every collection (404 for another tenant's object)."""
    obj = session.get(Object, object_id)
    if obj is None or obj.namespace_id != namespace_id:
        raise NotFound(f"object '{object_id}' not found")
    docs = CollectionRepository(session, namespace_id).documents_of_object(object_id)
    return _with_vectors(session, namespace_id, docs, include_vectors)


def _with_vectors(
    session: Session, namespace_id: str, docs: list[Document], include_vectors: bool
) -> list[DocumentOut]:
    if not include_vectors:
        return [document_out(d) for d in docs]
    repo = CollectionRepository(session, namespace_id)
    vectors = repo.vectors_of([d.document_id for d in docs])
    return [document_out(d, vectors.get(d.document_id, {})) for d in docs]


def thumbnail(session: Session, namespace_id: str, ident: str, document_id: str) -> Thumbnail:
    """Where a video segment document's keyframe thumbnail lies (404 when it has none)."""
    collection = get_collection(session, namespace_id, ident)
    doc = CollectionRepository(session, namespace_id).document(
        collection.collection_id, document_id
    )
    if doc is None:
        raise NotFound(f"document '{document_id}' not found")
    ref = (doc.content or {}).get("thumbnail")
    if not isinstance(ref, dict):
        raise NotFound(f"document '{document_id}' has no thumbnail")
    sha256 = ref.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise NotFound(f"document '{document_id}' has no thumbnail")
    return Thumbnail(
        # Built from the caller's namespace, never read from the row: no other tenant's bytes.
        storage_key=derived_key(namespace_id, sha256),
        content_type=str(ref.get("content_type") or "image/jpeg"),
        sha256=sha256,
    )


def _public_content(doc: Document) -> dict[str, Any]:
    """A document's content, its thumbnail reference with the URL that serves it."""
    content = doc.content or {}
    ref = content.get("thumbnail")
    if not isinstance(ref, dict):
        return content
    url = f"/v1/collections/{doc.collection_id}/documents/{doc.document_id}/thumbnail"
    return {**content, "thumbnail": {**ref, "url": url}}


def document_out(doc: Document, vectors: dict[str, list[float]] | None = None) -> DocumentOut:
    return DocumentOut(
        document_id=doc.document_id,
        collection_id=doc.collection_id,
        source=DocumentSource(
            object_id=doc.object_id,
            blob_id=doc.blob_id,
            property=doc.property,
            segment=doc.segment,
        ),
        content=_public_content(doc),
        features=vectors,
        metadata=doc.metadata_,
        extractor=f"{doc.extractor}@{doc.extractor_version}",
        created_at=doc.created_at,
    )


def to_out(registry: ExtractorRegistry, c: Collection, document_count: int) -> CollectionOut:
    spec = registry.get(c.extractor_name, c.extractor_version)
    return CollectionOut(
        collection_id=c.collection_id,
        collection_name=c.collection_name,
        description=c.description,
        source={"type": "bucket", "bucket_ids": c.source_bucket_ids},
        feature_extractor={
            "feature_extractor_id": f"{c.extractor_name}_{c.extractor_version}",
            "feature_extractor_name": c.extractor_name,
            "version": c.extractor_version,
            "params": c.params,
            "input_mappings": c.input_mappings,
        },
        feature_uris=[spec.feature_uri(o.name) for o in spec.outputs if o.type == "vector"],
        is_default=c.is_default,
        document_count=document_count,
        created_at=c.created_at,
    )
