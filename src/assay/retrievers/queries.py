"""A search's query as a vector in the space of the feature it searches.

Text-space features (`text_embedding` of every extractor) take text, or an image through the
same labels-and-OCR path images were indexed with; `visual_embedding` takes an image; a
CLIP feature takes either, through the collection's own CLIP weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.errors import ValidationFailed
from assay.extractors.base import ExtractorError, parse_feature_uri
from assay.extractors.models import ModelLoadError
from assay.kit.limits import MediaLimits


@dataclass(frozen=True)
class Query:
    """Text, the bytes of an image, or a vector computed elsewhere."""

    text: str | None = None
    image: bytes | None = None
    vector: tuple[float, ...] | None = None


class QueryEmbedder:
    """Turns queries into unit vectors; the models are the extractors' own, loaded once."""

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()

    def embed(self, feature_uri: str, query: Query, params: dict[str, Any]) -> np.ndarray:
        output = parse_feature_uri(feature_uri).output
        if query.vector is not None:  # precomputed: the caller vouches for its space
            return _unit(query.vector)
        if output == "visual_embedding":
            return self._visual(query, feature_uri)
        if output.startswith("clip"):
            return self._clip(query, params)
        if output.endswith("embedding"):
            return self._text_space(query)
        raise ValidationFailed.at(
            ["stages", "searches", "feature_uri"], f"{feature_uri} is not a vector feature"
        )

    def _text_space(self, query: Query) -> np.ndarray:
        from assay.extractors.builtin.image import describe
        from assay.extractors.models import embed_query

        if query.text is not None:
            return _unit(embed_query(query.text))
        # The query image described as image_extractor describes stored images (its defaults).
        (described,) = describe([self._image(query)], top_k=5, ocr=True)
        return _unit(described.text_vector)

    def _visual(self, query: Query, feature_uri: str) -> np.ndarray:
        from assay.extractors import vision

        if query.image is None:
            raise ValidationFailed.at(
                ["inputs"],
                f"{feature_uri} is searched with an image: give query_url or query_image",
            )
        return _unit(vision.classify([self._image(query)])[0].embedding)

    def _clip(self, query: Query, params: dict[str, Any]) -> np.ndarray:
        from assay.extractors import clip

        path = params.get("clip_model_path")
        if not path:
            raise ValidationFailed.at(["stages"], "this collection has no clip_model_path")
        try:
            if query.text is not None:
                return _unit(clip.embed_clip_text(path, [query.text])[0])
            return _unit(clip.embed_clip_images(path, [self._image(query)])[0])
        except ModelLoadError as exc:  # the collection's own param points at no usable model
            raise ValidationFailed.at(["stages", "searches", "feature_uri"], str(exc)) from exc

    def _image(self, query: Query) -> Any:
        """The query image decoded as stored images are (bounded by the same limits); 422 when
        it is no image or is over them."""
        from assay.extractors.builtin.image import decode_image

        try:
            return decode_image(query.image or b"", self.limits, "the query image")
        except ExtractorError as exc:
            corrupt = exc.error_type == "CorruptImage"
            msg = "the query image cannot be decoded" if corrupt else exc.message
            raise ValidationFailed.at(["inputs", "query_image"], msg) from exc


def _unit(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
