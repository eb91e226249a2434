"""text_extractor v1: text and JSON blobs chunked, each chunk embedded with MiniLM (384-d).

Its queries are MiniLM vectors of their text; an image query goes through image_extractor's
labels-and-OCR path into the same space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from assay.documents.drafts import DocumentDraft
from assay.extractors.base import (
    BatchedExtractor,
    BlobInput,
    Extracted,
    ExtractorError,
    ObjectInput,
    QueryInput,
)
from assay.extractors.builtin.catalogue import TEXT, TextParams
from assay.extractors.builtin.chunking import Chunk, chunk
from assay.extractors.builtin.image import text_space_query
from assay.extractors.models import embed_texts
from assay.kit.limits import MediaLimits

TEXT_EMBEDDING_URI = TEXT.feature_uri("text_embedding")


class TextExtractor(BatchedExtractor):
    spec = TEXT
    reads = frozenset({"text", "json"})

    def __init__(self, limits: MediaLimits | None = None) -> None:
        """`limits` bound the query images it decodes (documents come from text only)."""
        self.limits = limits or MediaLimits()

    def extract_many(
        self, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        p = text_params(params)
        drafts: list[list[DocumentDraft]] = [[] for _ in objects]
        failed: dict[int, ExtractorError] = {}
        pieces: list[tuple[int, BlobInput, Chunk]] = []
        for i, obj in enumerate(objects):
            try:
                pieces += [(i, blob, c) for blob in self._blobs(obj) for c in _chunks(blob, p)]
            except ExtractorError as exc:
                failed[i] = exc
        # One encode over every chunk of every object, so the model runs full batches.
        vectors = embed_texts([c.text for *_, c in pieces])
        for (i, blob, c), vector in zip(pieces, vectors, strict=True):
            obj = objects[i]
            drafts[i].append(
                DocumentDraft(
                    blob_id=blob.blob_id,
                    property=blob.property,
                    content={"text": c.text},
                    metadata={**obj.metadata, **blob.metadata, **obj.properties},
                    segment={"start_char": c.start, "end_char": c.end},
                    features={TEXT_EMBEDDING_URI: vector},
                )
            )
        return [failed.get(i, d) for i, d in enumerate(drafts)]

    def embed_query(
        self, feature_uri: str, query: QueryInput, params: dict[str, Any]
    ) -> np.ndarray:
        if feature_uri == TEXT_EMBEDDING_URI:
            return text_space_query(query, self.limits)
        return super().embed_query(feature_uri, query, params)

    def _blobs(self, obj: ObjectInput) -> list[BlobInput]:
        return [b for b in obj.blobs if b.type in self.reads and b.loaded]


def _chunks(blob: BlobInput, p: TextParams) -> list[Chunk]:
    return chunk(blob_text(blob), p.split_by, p.chunk_size, p.chunk_overlap)


def text_params(params: dict[str, Any] | None) -> TextParams:
    """The text fields of `params`; other extractors' fields (multimodal's) are ignored."""
    fields = TextParams.model_fields
    return TextParams.model_validate({k: v for k, v in (params or {}).items() if k in fields})


def blob_text(blob: BlobInput) -> str:
    """A blob's text: UTF-8 as is, JSON in its canonical form (sorted keys, no escaping)."""
    try:
        text = blob.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExtractorError("InvalidContent", f"blob {blob.blob_id} is not UTF-8: {exc}") from exc
    if blob.type != "json":
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True)
    except ValueError as exc:
        raise ExtractorError("InvalidContent", f"blob {blob.blob_id} is not JSON: {exc}") from exc
