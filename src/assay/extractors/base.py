"""What an extractor declares: inputs, outputs (feature URIs) and a params model.

Extraction code itself arrives with the extraction engine; this module only describes
extractors so that namespaces and collections can be checked against the catalogue.
"""

from __future__ import annotations

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
