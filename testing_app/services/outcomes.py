"""What a job's runner reports, and what a worker answers when it must not run a job.

Kept apart from services/execution.py (which re-exports them) so that runners can import the
types without the whole lifecycle.
"""

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol

from testing_app.models import Job
from testing_app.models import WorkerProcess


@dataclass(frozen=True)
class JobOutcome:
    """What a runner reports; finish_job stores it and decides what follows."""

    verdict: str
    error_message: str = ""
    exit_code: int | None = None
    command: list[str] = field(default_factory=list)
    runner: str = ""
    runner_version: str = ""
    download_s: float | None = None
    test_s: float | None = None
    solved_packages: list[dict] = field(default_factory=list)
    log_path: str = ""
    log_tail: str = ""
    failure_excerpt: str = ""
    # False for errors another attempt cannot fix (e.g. no runner for the job's kind).
    retryable: bool = True


@dataclass(frozen=True)
class Declined:
    """This worker must not run the job now; RQ offers it again after `delay_s` (the job stays
    `queued` in the database, with the same RQ id, so nothing is duplicated)."""

    reason: str
    delay_s: int


class JobRunner(Protocol):
    def __call__(
        self, *, job: Job, worker: WorkerProcess | None, on_progress: Callable[[str], None]
    ) -> JobOutcome: ...
