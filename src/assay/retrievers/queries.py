"""A search's query as a vector in the space of the feature it searches.

The extractor that produced the feature embeds the query (`Extractor.embed_query`), found in
the registry by the feature URI's extractor name and version: each extractor knows its own
vector spaces and keeps its models loaded. A precomputed vector is taken as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.errors import ValidationFailed
from assay.extractors.base import QueryInput, QueryPart, QueryRefused, parse_feature_uri
from assay.extractors.registry import ExtractorRegistry, ExtractorUnavailable
from assay.kit.limits import MediaLimits

# Where in a search request each kind of refusal points.
_LOCS: dict[QueryPart, list[str]] = {
    "feature": ["stages", "searches", "feature_uri"],
    "params": ["stages"],
    "inputs": ["inputs"],
    "image": ["inputs", "query_image"],
}


@dataclass(frozen=True)
class Query:
    """Text, the bytes of an image, or a vector computed elsewhere."""

    text: str | None = None
    image: bytes | None = None
    vector: tuple[float, ...] | None = None


class QueryEmbedder:
    """Turns queries into unit vectors through the extractors that made the features."""

    def __init__(
        self, limits: MediaLimits | None = None, registry: ExtractorRegistry | None = None
    ) -> None:
        """`registry` should be the process's own (its extractors hold the loaded models);
        without one, a registry bounded by `limits` is made."""
        self.limits = limits or MediaLimits()
        self.registry = registry or ExtractorRegistry(limits=self.limits)

    def embed(self, feature_uri: str, query: Query, params: dict[str, Any]) -> np.ndarray:
        if query.vector is not None:  # precomputed: the caller vouches for its space
            return _unit(query.vector)
        uri = parse_feature_uri(feature_uri)
        try:
            extractor = self.registry.implementation(uri.name, uri.version)
        except ExtractorUnavailable as exc:
            raise ValidationFailed.at(
                _LOCS["feature"], f"{feature_uri} is not a vector feature"
            ) from exc
        try:
            return extractor.embed_query(
                feature_uri, QueryInput(text=query.text, image=query.image), params
            )
        except QueryRefused as exc:
            raise ValidationFailed.at(_LOCS[exc.part], exc.message) from exc


def _unit(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
