"""What a job's runner reports, and what a worker answers when it must not run a job.

Kept apart from services/execution.py (which re-exports them) so that runners can import the
types without the whole lifecycle.
"""

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Protocol

from testing_app.models import Job
from testing_app.models import WorkerProcess
from testing_app.models.verdicts import Verdict

if TYPE_CHECKING:
    from testing_app.adapters.job_log import JobLog


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


def log_failure(log: "JobLog") -> str:
    """Why the job's log could not be kept, naming the cause (e.g. the log disk is full)."""
    exc = log.write_error
    return (
        f"The job's log could not be written to {exc.filename or log.path}: "
        f"{exc.strerror or exc}. "
        "The log disk (LOG_DIR) of this host is full or failing; the last lines are kept here."
    )


def kept_only_with_its_log(outcome: JobOutcome, log: "JobLog") -> JobOutcome:
    """A verdict nobody can check against its log is not kept: the job ends `error` naming why
    the log could not be written, and another attempt (preferably on another host) runs it."""
    if log.write_error is None:
        return outcome
    return replace(outcome, verdict=Verdict.ERROR, error_message=log_failure(log), retryable=True)
