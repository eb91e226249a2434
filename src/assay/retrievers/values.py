"""A document's field by the dotted names filters use (`metadata.color`, `source.object_id`)."""

from __future__ import annotations

from typing import Any

from assay.retrievers.pipeline import Hit


def field_value(doc: Any, hit: Hit, name: str) -> Any:
    """The value of `name` for this hit's document (a row of `SearchRepository.documents_by_key`
    or a `Document`); None when it has none."""
    if name == "score":
        return hit.score
    if doc is None:
        return None
    head, _, rest = name.partition(".")
    roots: dict[str, Any] = {
        "metadata": doc.metadata_,
        "content": doc.content,
        "segment": doc.segment or {},
    }
    if head in roots and rest:
        return _walk(roots[head], rest.split("."))
    plain = {
        "document_id": doc.document_id,
        "collection_id": doc.collection_id,
        "object_id": doc.object_id,
        "source.object_id": doc.object_id,
        "blob_id": doc.blob_id,
        "source.blob_id": doc.blob_id,
        "property": doc.property,
        "source.property": doc.property,
        "created_at": doc.created_at.isoformat(),
    }
    return plain.get(name)


def _walk(value: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
