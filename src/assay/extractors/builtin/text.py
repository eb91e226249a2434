"""text_extractor v1: text and JSON blobs chunked, each chunk embedded with MiniLM (384-d)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assay.extractors.base import (
    BatchedExtractor,
    BlobInput,
    DocumentDraft,
    Extracted,
    ExtractorError,
    ObjectInput,
)
from assay.extractors.builtin.catalogue import TEXT, TextParams
from assay.extractors.builtin.chunking import Chunk, chunk
from assay.extractors.models import embed_texts

TEXT_EMBEDDING_URI = TEXT.feature_uri("text_embedding")
# Vectors ride in the content under this key until DocumentDraft carries features itself.
FEATURES_KEY = "_features"


class TextExtractor(BatchedExtractor):
    spec = TEXT
    reads = frozenset({"text", "json"})

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
                    content={"text": c.text, FEATURES_KEY: {TEXT_EMBEDDING_URI: vector}},
                    metadata={**obj.metadata, **blob.metadata, **obj.properties},
                    segment={"start_char": c.start, "end_char": c.end},
                )
            )
        return [failed.get(i, d) for i, d in enumerate(drafts)]

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
