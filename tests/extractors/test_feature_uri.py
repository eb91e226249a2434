"""Feature URIs: `mixpeek://` is an alias of `assay://`; input mappings select blob properties."""

from __future__ import annotations

import pytest

from assay.extractors.base import FeatureURI, canonical_feature_uri, parse_feature_uri
from assay.extractors.builtin.catalogue import MULTIMODAL, PASSTHROUGH, TEXT


@pytest.mark.parametrize(
    "uri",
    [
        "assay://multimodal_extractor@v1/text_embedding",
        "mixpeek://multimodal_extractor@v1/text_embedding",
        "MIXPEEK://multimodal_extractor@v1/text_embedding",
    ],
)
def test_both_schemes_name_the_same_feature(uri: str) -> None:
    assert canonical_feature_uri(uri) == "assay://multimodal_extractor@v1/text_embedding"
    assert parse_feature_uri(uri) == FeatureURI("multimodal_extractor", "v1", "text_embedding")


def test_catalogue_uris_are_canonical() -> None:
    for output in MULTIMODAL.outputs:
        uri = MULTIMODAL.feature_uri(output.name)
        assert canonical_feature_uri(uri) == uri
        assert canonical_feature_uri(uri.replace("assay://", "mixpeek://")) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "text_embedding",
        "http://text_extractor@v1/text_embedding",
        "assay://text_extractor/text_embedding",
        "assay://text_extractor@v1",
        "assay://text_extractor@v1/",
        "assay://text_extractor@v1/text_embedding/extra",
        "assay://@v1/text_embedding",
        " assay://text_extractor@v1/text_embedding",
        "mixpeek:/text_extractor@v1/text_embedding",
    ],
)
def test_malformed_uris_raise_value_error(uri: str) -> None:
    with pytest.raises(ValueError, match="malformed feature URI"):
        canonical_feature_uri(uri)


def test_mapped_properties_by_blob_type() -> None:
    assert MULTIMODAL.mapped_properties(None) == {}
    assert MULTIMODAL.mapped_properties({"text": "body", "image": ["front", "back"]}) == {
        "text": frozenset({"body"}),
        "json": frozenset({"body"}),  # the text input reads JSON blobs too
        "image": frozenset({"front", "back"}),
    }
    assert TEXT.blob_types_of("text") == {"text", "json"}
    assert PASSTHROUGH.blob_types_of("text") == {"text"}  # JSON is an input of its own there
