"""text_extractor v1: text and JSON blobs chunked, each chunk embedded with MiniLM (384-d)."""

from __future__ import annotations

import json
from typing import Any

from assay.extractors.base import (
    BlobInput,
    DocumentDraft,
    Extractor,
    ExtractorError,
    ObjectInput,
)
from assay.extractors.builtin.catalogue import TEXT, TextParams
from assay.extractors.builtin.chunking import Chunk, chunk
from assay.extractors.models import embed_texts

TEXT_EMBEDDING_URI = TEXT.feature_uri("text_embedding")
# Vectors ride in the content under this key until DocumentDraft carries features itself.
FEATURES_KEY = "_features"


class TextExtractor(Extractor):
    spec = TEXT
    reads = frozenset({"text", "json"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        p = text_params(params)
        pieces: list[tuple[BlobInput, Chunk]] = []
        for blob in obj.blobs:
            if blob.type not in self.reads or blob.data is None:
                continue
            text = blob_text(blob)
            pieces.extend((blob, c) for c in chunk(text, p.split_by, p.chunk_size, p.chunk_overlap))
        # One encode call per object so every chunk shares the model's batches.
        vectors = embed_texts([c.text for _, c in pieces])
        return [
            DocumentDraft(
                blob_id=blob.blob_id,
                property=blob.property,
                content={"text": c.text, FEATURES_KEY: {TEXT_EMBEDDING_URI: vector}},
                metadata={**obj.metadata, **blob.metadata, **obj.properties},
                segment={"start_char": c.start, "end_char": c.end},
            )
            for (blob, c), vector in zip(pieces, vectors, strict=True)
        ]


def text_params(params: dict[str, Any] | None) -> TextParams:
    """The text fields of `params`; other extractors' fields (multimodal's) are ignored."""
    fields = TextParams.model_fields
    return TextParams.model_validate({k: v for k, v in (params or {}).items() if k in fields})


def blob_text(blob: BlobInput) -> str:
    """A blob's text: UTF-8 as is, JSON in its canonical form (sorted keys, no escaping)."""
    try:
        text = (blob.data or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExtractorError("InvalidContent", f"blob {blob.blob_id} is not UTF-8: {exc}") from exc
    if blob.type != "json":
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True)
    except ValueError as exc:
        raise ExtractorError("InvalidContent", f"blob {blob.blob_id} is not JSON: {exc}") from exc


def embed_query(text: str) -> list[float]:
    """A search query in the same 384-d space as text_extractor chunks."""
    return embed_texts([text])[0]
