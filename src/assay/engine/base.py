"""What the engine runs: job bodies by kind. The engine knows no domain; wiring passes them in."""

from __future__ import annotations

from typing import Protocol

from assay.models import Job


class JobBody(Protocol):
    """The code behind one kind of job.

    `run` must be idempotent: a job whose worker dies is run again by another worker once
    its lease runs out. `give_up` is called once the job has failed every attempt.
    """

    async def run(self, job: Job) -> None: ...

    async def give_up(self, job: Job, error: str) -> None: ...
