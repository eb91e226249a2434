"""What an extractor hands over: documents before they are stored, their vectors and the bytes
made for them typed as fields, never hidden under keys of their content."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

# One vector of a feature: a list of floats or a 1-d numpy array (stored as float32).
Vector: TypeAlias = list[float] | np.ndarray


@dataclass(frozen=True)
class DerivedBlob:
    """Bytes an extractor made for storage (a video keyframe's JPEG thumbnail).

    Extractors cannot write blobs: the batch job stores the bytes, and the document's content
    holds a reference to them under the blob's name (`content["thumbnail"]`).
    """

    data: bytes
    content_type: str
    width: int | None = None
    height: int | None = None

    def reference(self, sha256: str) -> dict[str, Any]:
        """What a document's content holds of it once stored under `sha256`."""
        ref: dict[str, Any] = {
            "sha256": sha256,
            "content_type": self.content_type,
            "size_bytes": len(self.data),
        }
        if self.width is not None:
            ref["width"] = self.width
        if self.height is not None:
            ref["height"] = self.height
        return ref


@dataclass(frozen=True)
class DocumentDraft:
    """A document before it is stored: lineage to its blob (and segment), its content, its
    vectors by feature URI, and the blobs made for it by the name they take in its content."""

    blob_id: str
    property: str
    content: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    segment: dict[str, int] | None = None
    features: dict[str, Vector] = field(default_factory=dict)
    derived_blobs: dict[str, DerivedBlob] = field(default_factory=dict)

    # `builtins.`: a field of this class is named "property"
    @builtins.property
    def segment_key(self) -> str:
        s = self.segment or {}
        return ":".join(f"{k}={s[k]}" for k in sorted(s))
