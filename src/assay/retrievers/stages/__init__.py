"""Retriever stages, one module each. The registry is built here, from this list, and nowhere
else: adding a stage means adding its class to `STAGE_CLASSES`."""

from __future__ import annotations

from types import MappingProxyType

from assay.retrievers.pipeline import Stage, StageRegistry
from assay.retrievers.stages.attribute_filter import AttributeFilter
from assay.retrievers.stages.feature_search import FeatureSearch
from assay.retrievers.stages.group_by import GroupBy
from assay.retrievers.stages.limit import Limit
from assay.retrievers.stages.rerank import Rerank
from assay.retrievers.stages.sort_attribute import SortAttribute
from assay.retrievers.stages.text_search import TextSearch

STAGE_CLASSES: tuple[type[Stage], ...] = (
    AttributeFilter,
    FeatureSearch,
    GroupBy,
    Limit,
    Rerank,
    SortAttribute,
    TextSearch,
)


def build_registry(classes: tuple[type[Stage], ...] = STAGE_CLASSES) -> StageRegistry:
    """Each stage under its id and its aliases (read-only); a name used twice is an error."""
    registry: dict[str, Stage] = {}
    for cls in classes:
        impl = cls()
        for name in (impl.stage_id, *impl.aliases):
            if name in registry:
                raise ValueError(f"stage name '{name}' is used by two stages")
            registry[name] = impl
    return MappingProxyType(registry)


STAGES: StageRegistry = build_registry()
