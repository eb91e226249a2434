from __future__ import annotations

import datetime as dt
from typing import Any

from assay.batches.schemas import Progress
from assay.kit.schemas import Schema


class TaskOut(Schema):
    task_id: str
    task_type: str
    status: str
    progress: Progress | None = None
    error: str | None = None
    result: dict[str, Any] = {}
    estimated_wait_minutes: int | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
