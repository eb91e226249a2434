"""The one path by which documents and their vectors are written, replaced or removed.

Drafts become rows in two steps. `prepare` is pure (extraction threads run it, off the event
loop): it checks every vector against the feature it claims, packs it, stores derived blobs
and builds the rows. `DocumentWriter` then works in the caller's transaction with a few
set-based or multi-row statements, whatever the number of documents: the vectors it removes
are logged `-` before they go (database cascades included), the ones it writes `+` after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from assay.documents.drafts import DocumentDraft, Vector
from assay.documents.log import log_vectors
from assay.documents.text import index_texts, search_text
from assay.documents.vectors import unpack_vector
from assay.extractors.base import ExtractorSpec
from assay.kit.bulk import insert_rows
from assay.kit.db import table_of, utcnow
from assay.kit.ids import int_key, new_id
from assay.models import Document, DocumentVector, Object

_DOCUMENTS = table_of(Document)
_VECTORS = table_of(DocumentVector)


class InvalidDraft(ValueError):
    """A draft that cannot be stored (a vector of the wrong size, a feature its extractor does
    not declare): its object fails with `error_type`, the others are written."""

    error_type = "InvalidVector"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where drafts go: a collection, through the extractor that made them."""

    collection_id: str
    extractor: ExtractorSpec


@dataclass
class Prepared:
    """One object's documents for one target as table rows, checked and ready to insert."""

    object_id: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    vectors: list[dict[str, Any]] = field(default_factory=list)
    # Sizes of the vectors of features whose size the extractor leaves to its model (CLIP).
    dimensions: dict[str, int] = field(default_factory=dict)


def prepare(
    target: Target,
    namespace_id: str,
    object_id: str,
    drafts: Sequence[DocumentDraft],
    store: Callable[[bytes], str] | None = None,
) -> Prepared:
    """The rows of one object's drafts: every vector checked and packed first (InvalidDraft
    when one does not fit its feature), then derived blobs stored with `store` (bytes → their
    SHA-256), so an object that fails leaves nothing stored."""
    sizes = _vector_sizes(target.extractor)
    out = Prepared(object_id)
    packed = [_pack_features(d, sizes, out.dimensions) for d in drafts]
    now = utcnow()
    name, version = target.extractor.name, target.extractor.version
    for d, vectors in zip(drafts, packed, strict=True):
        document_id = new_id("doc")
        key = int_key(document_id)
        content = _content(d, store)
        out.documents.append(
            {
                "document_id": document_id,
                "doc_key": key,
                "namespace_id": namespace_id,
                "collection_id": target.collection_id,
                "object_id": object_id,
                "blob_id": d.blob_id,
                "property": d.property,
                "segment_key": d.segment_key,
                "segment": d.segment,
                "extractor": name,
                "extractor_version": version,
                "content": content,
                "search_text": search_text(content),
                "metadata": d.metadata,
                "created_at": now,
            }
        )
        out.vectors.extend(
            {
                "document_id": document_id,
                "feature_uri": uri,
                "doc_key": key,
                "namespace_id": namespace_id,
                "collection_id": target.collection_id,
                "vector": data,
            }
            for uri, data in vectors.items()
        )
    return out


@lru_cache(maxsize=64)
def _vector_sizes(spec: ExtractorSpec) -> dict[str, int | None]:
    """Feature URI → declared size of each vector output (None: the model decides)."""
    return {spec.feature_uri(o.name): o.dimensions for o in spec.outputs if o.type == "vector"}


def _pack_features(
    draft: DocumentDraft, sizes: Mapping[str, int | None], seen: dict[str, int]
) -> dict[str, bytes]:
    """A draft's vectors as float32 bytes by feature URI, each checked against its feature;
    sizes of undeclared features are remembered in `seen` (one size per feature)."""
    packed = {}
    for uri, values in draft.features.items():
        if uri not in sizes:
            declared = ", ".join(sizes) or "none"
            raise InvalidDraft(
                f"blob {draft.blob_id}: {uri} is not a vector output of this extractor "
                f"(its vector outputs: {declared})"
            )
        array = _array(uri, draft.blob_id, values)
        want = sizes[uri] or seen.setdefault(uri, array.shape[0])
        if array.shape[0] != want:
            raise InvalidDraft(
                f"blob {draft.blob_id}: {uri} takes {want}-d vectors, not {array.shape[0]}-d"
            )
        packed[uri] = array.tobytes()
    return packed


def _array(uri: str, blob_id: str, values: Vector) -> np.ndarray:
    try:
        array = np.asarray(values, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise InvalidDraft(f"blob {blob_id}: {uri} is not a vector of numbers") from exc
    if array.ndim != 1 or array.size == 0:
        raise InvalidDraft(f"blob {blob_id}: {uri} is not a non-empty flat vector")
    if not np.isfinite(array).all():
        raise InvalidDraft(f"blob {blob_id}: {uri} holds NaN or infinite values")
    return array


def _content(draft: DocumentDraft, store: Callable[[bytes], str] | None) -> dict[str, Any]:
    """A draft's content, with a reference to each derived blob once stored."""
    if not draft.derived_blobs:
        return draft.content
    if store is None:
        raise ValueError("drafts with derived blobs need a blob store to prepare them")
    refs = {name: b.reference(store(b.data)) for name, b in draft.derived_blobs.items()}
    return {**draft.content, **refs}


class DocumentWriter:
    """Writes, replaces and removes one namespace's documents, their vectors and the vector
    log, in the caller's transaction (it never commits)."""

    def __init__(self, session: Session, namespace_id: str) -> None:
        self.session = session
        self.namespace_id = namespace_id
        self._sizes: dict[tuple[str, str], int | None] = {}

    def check(self, prepared: Iterable[tuple[Target, Prepared]]) -> None:
        """InvalidDraft unless each vector whose size the extractor leaves to its model (a
        CLIP model's) has the size its feature already holds in the collection; the sizes of
        an object that passes become the rule for the next ones."""
        pairs = list(prepared)
        for target, p in pairs:
            for uri, n in p.dimensions.items():
                have = self._stored_size(target.collection_id, uri)
                if have is not None and have != n:
                    raise InvalidDraft(
                        f"{uri} holds {have}-d vectors in this collection; these are {n}-d "
                        "(was its model changed?)"
                    )
        for target, p in pairs:
            for uri, n in p.dimensions.items():
                if self._sizes.get((target.collection_id, uri)) is None:
                    self._sizes[(target.collection_id, uri)] = n

    def replace(self, target: Target, prepared: Sequence[Prepared]) -> int:
        """These objects' documents in the target collection by its extractor: the old ones
        go, the prepared ones come (an object with none prepared keeps none). Idempotent, as
        documents are keyed by lineage. Returns how many documents were written."""
        object_ids = [p.object_id for p in prepared]
        if not object_ids:
            return 0
        lineage = (
            _DOCUMENTS.c.namespace_id == self.namespace_id,
            _DOCUMENTS.c.collection_id == target.collection_id,
            _DOCUMENTS.c.object_id.in_(object_ids),
            _DOCUMENTS.c.extractor == target.extractor.name,
            _DOCUMENTS.c.extractor_version == target.extractor.version,
        )
        self._remove(*lineage)
        documents = [row for p in prepared for row in p.documents]
        vectors = [row for p in prepared for row in p.vectors]
        if documents:
            insert_rows(self.session, _DOCUMENTS, documents)
            index_texts(self.session, documents)
        if vectors:
            insert_rows(self.session, _VECTORS, vectors)
            log_vectors(self.session, "+", _VECTORS.c.document_id.in_(_ids_where(*lineage)))
        return len(documents)

    def has_vectors(self, object_ids: Sequence[str]) -> bool:
        """Whether any document of these objects has a vector."""
        if not object_ids:
            return False
        stmt = select(
            exists().where(
                _VECTORS.c.document_id == _DOCUMENTS.c.document_id,
                _DOCUMENTS.c.namespace_id == self.namespace_id,
                _DOCUMENTS.c.object_id.in_(object_ids),
            )
        )
        return bool(self.session.scalar(stmt))

    def remove_collection(self, collection_id: str) -> None:
        """Every document of a collection, before the collection goes."""
        log_vectors(
            self.session,
            "-",
            (_VECTORS.c.collection_id == collection_id)
            & (_VECTORS.c.namespace_id == self.namespace_id),
        )
        self.session.execute(
            delete(_DOCUMENTS).where(
                _DOCUMENTS.c.namespace_id == self.namespace_id,
                _DOCUMENTS.c.collection_id == collection_id,
            )
        )

    def remove_objects(self, object_ids: Sequence[str]) -> None:
        """Every document of these objects, before they go."""
        if object_ids:
            self._remove(
                _DOCUMENTS.c.namespace_id == self.namespace_id,
                _DOCUMENTS.c.object_id.in_(object_ids),
            )

    def remove_bucket(self, bucket_id: str) -> None:
        """Every document of a bucket's objects, before the bucket goes."""
        objects = select(Object.object_id).where(
            Object.namespace_id == self.namespace_id, Object.bucket_id == bucket_id
        )
        # Scoped by the objects' namespace: naming the documents' too would have SQLite walk
        # every document of the namespace instead of those of the bucket's objects.
        self._remove(_DOCUMENTS.c.object_id.in_(objects))

    def remove_namespace(self) -> None:
        """Every document of the namespace, before it goes."""
        self._remove(_DOCUMENTS.c.namespace_id == self.namespace_id)

    def _remove(self, *where: ColumnElement[bool]) -> None:
        """Documents matching `where`, their vectors logged `-` first (the database's cascade
        removes the vector rows with their documents)."""
        log_vectors(self.session, "-", _VECTORS.c.document_id.in_(_ids_where(*where)))
        self.session.execute(delete(_DOCUMENTS).where(*where))

    def _stored_size(self, collection_id: str, feature_uri: str) -> int | None:
        key = (collection_id, feature_uri)
        if key not in self._sizes:
            # One stored vector, read through its column type (bytes on every backend).
            stmt = (
                select(_VECTORS.c.vector)
                .where(
                    _VECTORS.c.collection_id == collection_id,
                    _VECTORS.c.feature_uri == feature_uri,
                )
                .limit(1)
            )
            data = self.session.scalar(stmt)
            self._sizes[key] = None if data is None else len(unpack_vector(data))
        return self._sizes[key]


def _ids_where(*where: ColumnElement[bool]) -> Any:
    """The ids of documents matching `where`, as a subquery."""
    return select(_DOCUMENTS.c.document_id).where(*where)
