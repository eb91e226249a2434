"""Retriever stages, one module each; importing this package registers them all."""

from assay.retrievers.stages import (  # noqa: F401 - registration by import
    attribute_filter,
    feature_search,
    group_by,
    limit,
    rerank,
    sort_attribute,
    text_search,
)
