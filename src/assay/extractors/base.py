"""What an extractor declares: inputs, outputs (feature URIs) and a params model.

Extraction code itself arrives with the extraction engine; this module only describes
extractors so that namespaces and collections can be checked against the catalogue.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FEATURE_SCHEMES = ("assay", "mixpeek")
OutputType = Literal["vector", "text", "labels", "blob"]


class ExtractorParams(BaseModel):
    """Base of every extractor's params; unknown params are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class OutputSpec:
    name: str
    type: OutputType
    dimensions: int | None = None
    description: str = ""


@dataclass(frozen=True)
class ExtractorSpec:
    """An extractor's public contract, as listed by `GET /v1/feature-extractors`."""

    name: str
    version: str
    description: str
    input_types: tuple[str, ...]
    outputs: tuple[OutputSpec, ...]
    params_model: type[ExtractorParams] = ExtractorParams
    aliases: tuple[str, ...] = field(default=())

    def feature_uri(self, output: str) -> str:
        return f"assay://{self.name}@{self.version}/{output}"

    def describe(self) -> dict[str, Any]:
        return {
            "feature_extractor_name": self.name,
            "version": self.version,
            "description": self.description,
            "input_types": list(self.input_types),
            "outputs": [
                {
                    "name": o.name,
                    "feature_uri": self.feature_uri(o.name),
                    "type": o.type,
                    "dimensions": o.dimensions,
                    "description": o.description,
                }
                for o in self.outputs
            ],
            "params_schema": self.params_model.model_json_schema(),
        }


@dataclass(frozen=True)
class BlobInput:
    """One blob of the object being extracted; `data` is loaded only for types the
    extractor reads (see `Extractor.reads`)."""

    blob_id: str
    property: str
    type: str
    content_type: str
    metadata: dict[str, Any]
    data: bytes | None = None


@dataclass(frozen=True)
class ObjectInput:
    object_id: str
    metadata: dict[str, Any]
    properties: dict[str, Any]
    blobs: tuple[BlobInput, ...]


@dataclass(frozen=True)
class DocumentDraft:
    """A document before it is stored: lineage to its blob (and segment), and content."""

    blob_id: str
    property: str
    content: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    segment: dict[str, int] | None = None

    @property
    def segment_key(self) -> str:
        s = self.segment or {}
        return ":".join(f"{k}={s[k]}" for k in sorted(s))


class ExtractorError(Exception):
    """This object cannot be extracted (bad media, ...): the object fails, the batch goes on."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class RetriableExtractorError(ExtractorError):
    """A passing failure (a model still loading, a full disk): the work is tried again."""


class Extractor(ABC):
    """Turns an object's blobs into documents.

    Implementations load their models lazily and once per process, keep heavy imports inside
    methods, and may be called from worker threads. `reads` names the blob types whose bytes
    `extract` needs; other blobs arrive without `data`.
    """

    spec: ExtractorSpec
    reads: frozenset[str] = frozenset()

    @abstractmethod
    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        """Documents for every blob of `obj` this extractor handles."""
