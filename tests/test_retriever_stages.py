"""The stage registry: built from one explicit list of stage classes, ids and aliases alike."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from assay.retrievers.pipeline import Hit, RunContext
from assay.retrievers.stages import STAGE_CLASSES, STAGES, build_registry


def test_every_listed_stage_answers_to_its_id_and_aliases() -> None:
    for cls in STAGE_CLASSES:
        impl = STAGES[cls.stage_id]
        assert type(impl) is cls
        assert all(STAGES[alias] is impl for alias in cls.aliases)
    assert STAGES["take"].stage_id == "limit"
    assert len(STAGES) == sum(1 + len(cls.aliases) for cls in STAGE_CLASSES)


def test_a_name_used_twice_is_refused() -> None:
    class NoParams(BaseModel):
        pass

    class Clash:
        stage_id = "clash"
        aliases = ("take",)  # already the limit stage's alias
        params_model = NoParams

        def run(self, ctx: RunContext, hits: list[Hit] | None, params: Any) -> list[Hit]:
            return list(hits or [])

    with pytest.raises(ValueError, match="take"):
        build_registry((*STAGE_CLASSES, Clash))


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        STAGES["limit"] = STAGES["sort"]  # type: ignore[index]
