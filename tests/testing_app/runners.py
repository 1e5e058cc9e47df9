"""A runner for worker processes in tests (DISTRO_JOB_RUNNER): no conda-build, one line per run.

Each run appends the job's pk to the file named by $RUNNER_RECORD_FILE, so a test can prove
that every job ran exactly once across processes.
"""

import os

from testing_app.models import Verdict
from testing_app.services.execution import JobOutcome


def record_and_pass(*, job, worker, on_progress) -> JobOutcome:
    with open(os.environ["RUNNER_RECORD_FILE"], "a") as record:
        record.write(f"{job.pk}\n")
    return JobOutcome(verdict=Verdict.PASSED, runner="record-and-pass")


def stand_in_pass(*, job, worker, on_progress) -> JobOutcome:
    """A test job that passes without conda-build: for tests of what happens around the test
    (planning, gates), where the package's own test suite is not the subject."""
    return JobOutcome(verdict=Verdict.PASSED, runner="stand-in", failure_excerpt="")
