"""What an extractor declares (inputs, outputs with feature URIs, a params model) and the
interface every extractor implements: objects in, document drafts out.
"""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from assay.documents.drafts import DocumentDraft

if TYPE_CHECKING:
    import numpy as np

FEATURE_SCHEMES = ("assay", "mixpeek")
OutputType = Literal["vector", "text", "labels", "blob"]
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_FEATURE_URI = re.compile(
    rf"(?P<scheme>[A-Za-z]+)://(?P<name>{_NAME})@(?P<version>{_NAME})/(?P<output>{_NAME})"
)


class FeatureURI(NamedTuple):
    """The parts of a feature URI `assay://{name}@{version}/{output}`."""

    name: str
    version: str
    output: str

    def __str__(self) -> str:
        return f"assay://{self.name}@{self.version}/{self.output}"


def parse_feature_uri(uri: str) -> FeatureURI:
    """The parts of `assay://` or `mixpeek://` `name@version/output`; ValueError if malformed."""
    m = _FEATURE_URI.fullmatch(uri) if isinstance(uri, str) else None
    if m is None or m["scheme"].lower() not in FEATURE_SCHEMES:
        schemes = " or ".join(f"{s}://" for s in FEATURE_SCHEMES)
        raise ValueError(
            f"malformed feature URI {uri!r}: expected {schemes}{{extractor}}@{{version}}/{{output}}"
        )
    return FeatureURI(m["name"], m["version"], m["output"])


def canonical_feature_uri(uri: str) -> str:
    """The `assay://` form of a feature URI (`mixpeek://` is the same feature); ValueError if
    malformed."""
    return str(parse_feature_uri(uri))


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

    def blob_types_of(self, input_name: str) -> frozenset[str]:
        """The blob types that feed one of its inputs: `text` also reads JSON blobs (as their
        canonical text) unless JSON is an input of its own."""
        if input_name == "text" and "json" not in self.input_types:
            return frozenset({"text", "json"})
        return frozenset({input_name})

    def mapped_properties(self, mappings: dict[str, Any] | None) -> dict[str, frozenset[str]]:
        """Blob type → the only properties that may feed it, from a collection's
        `input_mappings` (`{"text": "body"}` or `{"image": ["front", "back"]}`); blob types of
        inputs it does not name are absent: all their blobs feed the extractor."""
        allowed: dict[str, frozenset[str]] = {}
        for input_name, value in (mappings or {}).items():
            props = frozenset([value] if isinstance(value, str) else value)
            for blob_type in self.blob_types_of(input_name):
                allowed[blob_type] = allowed.get(blob_type, frozenset()) | props
        return allowed

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
    """One blob of the object being extracted. Its bytes are loaded only for types the
    extractor reads (see `Extractor.reads`): small ones as `data`, large ones as a local file
    at `path`, so a long video is streamed from disk and never sits in memory whole."""

    blob_id: str
    property: str
    type: str
    content_type: str
    metadata: dict[str, Any]
    data: bytes | None = None
    path: Path | None = None
    # Neither yet: its key in the blob store, for an engine that reads it where the extraction
    # runs (`ExtractionExecutor.local_files` False); the executor loads it before the call.
    storage_key: str | None = None

    # `builtins.`: a field of this class is named "property"
    @builtins.property
    def loaded(self) -> bool:
        """Whether its bytes came with it (in memory or in a file)."""
        return self.data is not None or self.path is not None

    @builtins.property
    def source(self) -> bytes | Path:
        """Its bytes, or the file holding them: what streaming decoders take."""
        if self.data is not None:
            return self.data
        return self.path if self.path is not None else b""

    def read(self) -> bytes:
        """Its bytes in memory (read from its file if it has one)."""
        if self.data is not None:
            return self.data
        return self.path.read_bytes() if self.path is not None else b""


@dataclass(frozen=True)
class ObjectInput:
    object_id: str
    metadata: dict[str, Any]
    properties: dict[str, Any]
    blobs: tuple[BlobInput, ...]


class ExtractorError(Exception):
    """This object cannot be extracted (bad media, ...): the object fails, the batch goes on."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class RetriableExtractorError(ExtractorError):
    """A passing failure (a model still loading, a full disk): the work is tried again."""


@dataclass(frozen=True)
class QueryInput:
    """What a search asks with: text, or the bytes of an image."""

    text: str | None = None
    image: bytes | None = None


# What a refused query got wrong: the feature searched, the collection's extractor params,
# the search's inputs (an image is needed), or the query image itself.
QueryPart = Literal["feature", "params", "inputs", "image"]


class QueryRefused(ValueError):
    """A query that cannot become a vector of the feature searched; `part` says why."""

    def __init__(self, part: QueryPart, message: str) -> None:
        super().__init__(message)
        self.part = part
        self.message = message


# What `extract_many` answers per object: its documents, or why that object alone failed.
Extracted = list[DocumentDraft] | ExtractorError


class Extractor(ABC):
    """Turns an object's blobs into documents.

    Implementations load their models lazily and once per process, keep heavy imports inside
    methods, and may be called from worker threads. `reads` names the blob types whose bytes
    `extract` needs; other blobs arrive without them. An extractor with vector outputs also
    embeds search queries in their spaces (`embed_query`), with the same models.
    """

    spec: ExtractorSpec
    reads: frozenset[str] = frozenset()

    @abstractmethod
    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        """Documents for every blob of `obj` this extractor handles."""

    def embed_query(
        self, feature_uri: str, query: QueryInput, params: dict[str, Any]
    ) -> np.ndarray:
        """A search query as a unit float32 vector in the space of `feature_uri`, one of this
        extractor's vector outputs, made as its documents' vectors are (`params` are the
        collection's). Called on the search path: models stay loaded and results cached where
        that pays. Raises QueryRefused for a query the feature cannot take."""
        raise QueryRefused("feature", f"{feature_uri} is not a vector feature")

    def extract_many(
        self, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        """Documents for several objects, in order; a bad object fails alone (its
        ExtractorError in its place). Extractors whose models gain from larger batches
        override this to run them once over all the objects."""
        results: list[Extracted] = []
        for obj in objects:
            try:
                results.append(self.extract(obj, params))
            except ExtractorError as exc:
                results.append(exc)
        return results


class BatchedExtractor(Extractor):
    """An extractor whose real work is `extract_many`; `extract` is the batch of one."""

    def extract(self, obj: ObjectInput, params: dict[str, Any]) -> list[DocumentDraft]:
        (result,) = self.extract_many([obj], params)
        if isinstance(result, ExtractorError):
            raise result
        return result

    @abstractmethod
    def extract_many(
        self, objects: Sequence[ObjectInput], params: dict[str, Any]
    ) -> list[Extracted]:
        """Documents for several objects, in order; a bad object fails alone."""
