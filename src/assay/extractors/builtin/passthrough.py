"""passthrough_extractor v1: text and JSON content and metadata copied into documents."""

from __future__ import annotations

import json
from typing import Any

from assay.documents.drafts import DocumentDraft
from assay.extractors.base import Extractor, ExtractorError, ObjectInput
from assay.extractors.builtin.catalogue import PASSTHROUGH


class PassthroughExtractor(Extractor):
    spec = PASSTHROUGH
    reads = frozenset({"text", "json"})

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        drafts = []
        for blob in obj.blobs:
            if blob.type not in self.spec.input_types:
                continue
            content: dict[str, Any] = {}
            if blob.loaded:
                content["text"] = _text_of(blob.type, blob.read(), blob.blob_id)
            metadata = {**obj.metadata, **blob.metadata, **obj.properties}
            drafts.append(DocumentDraft(blob.blob_id, blob.property, content, metadata))
        return drafts


def _text_of(blob_type: str, data: bytes, blob_id: str) -> str:
    try:
        text = data.decode("utf-8")
        if blob_type == "json":
            text = json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True)
        return text
    except (UnicodeDecodeError, ValueError) as exc:
        raise ExtractorError("InvalidContent", f"blob {blob_id} is not valid {blob_type}") from exc
