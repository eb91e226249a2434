"""The extractor catalogue: a registry instance that services receive, not a global."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from assay.extractors.base import Extractor, ExtractorSpec
from assay.extractors.builtin.catalogue import BUILTIN_SPECS
from assay.extractors.builtin.image import ImageExtractor
from assay.extractors.builtin.multimodal import MultimodalExtractor
from assay.extractors.builtin.passthrough import PassthroughExtractor
from assay.extractors.builtin.text import TextExtractor
from assay.extractors.model_cache import MODELS, ModelCache
from assay.kit.limits import MediaLimits


class UnknownExtractor(LookupError):
    """No extractor with that name and version; `available` lists `name@version` choices."""

    def __init__(self, name: str, version: str, available: list[str]) -> None:
        super().__init__(f"unknown feature extractor {name}@{version}")
        self.available = available


class InvalidParams(ValueError):
    """Params that the extractor's params model refuses."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid extractor params")
        self.errors = errors


class ExtractorUnavailable(LookupError):
    """The catalogue declares the extractor but this build has no implementation of it."""


class ExtractorRegistry:
    """Extractors by (name, version): their declarations, and implementations where present."""

    def __init__(
        self,
        specs: Iterable[ExtractorSpec] = BUILTIN_SPECS,
        implementations: Iterable[Extractor] | None = None,
        limits: MediaLimits | None = None,
    ) -> None:
        """`limits` bound what the built-in extractors decode (ignored with `implementations`)."""
        self._specs = {(s.name, s.version): s for s in specs}
        limits = limits or MediaLimits()
        impls = implementations
        if impls is None:
            impls = [
                PassthroughExtractor(),
                TextExtractor(limits),
                ImageExtractor(limits),
                MultimodalExtractor(limits),
            ]
        self._impls = {(e.spec.name, e.spec.version): e for e in impls}
        # The process's one model cache: every built-in extractor loads through it.
        self.models: ModelCache = MODELS

    def implementation(self, name: str, version: str) -> Extractor:
        """The code behind an extractor; instances are shared (models load once per process)."""
        impl = self._impls.get((name, version))
        if impl is None:
            raise ExtractorUnavailable(f"{name}@{version} is declared but not available yet")
        return impl

    def all(self) -> list[ExtractorSpec]:
        return sorted(self._specs.values(), key=lambda s: (s.name, s.version))

    def available(self) -> list[str]:
        return [f"{s.name}@{s.version}" for s in self.all()]

    def get(self, name: str, version: str) -> ExtractorSpec:
        spec = self._specs.get((name, version))
        if spec is None:
            raise UnknownExtractor(name, version, self.available())
        return spec

    def validate_params(self, spec: ExtractorSpec, params: dict[str, Any] | None) -> dict[str, Any]:
        """Params checked and completed with defaults."""
        try:
            return spec.params_model.model_validate(params or {}).model_dump()
        except ValidationError as exc:
            raise InvalidParams(
                [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            ) from exc
