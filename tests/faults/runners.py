"""Runners for the fault runs (DISTRO_JOB_RUNNER), executed inside real worker processes.

`sleep_then_pass` holds each job for FAULT_RUNNER_SLEEP_S seconds, so that a fault can strike
while jobs are running, and records every start and every completion in FAULT_RUNNER_RECORD
("start <pk> <pid>", "done <pk>"): the test proves from it that every job completed once.
While it sleeps it reports a live tail, as the real runners do.
"""

import os
import time

from testing_app.models import Verdict
from testing_app.services.outcomes import JobOutcome

PROGRESS_INTERVAL_S = 0.5


def _record(line: str) -> None:
    with open(os.environ["FAULT_RUNNER_RECORD"], "a") as record:
        record.write(line + "\n")


def sleep_then_pass(*, job, worker, on_progress) -> JobOutcome:
    _record(f"start {job.pk} {os.getpid()}")
    deadline = time.monotonic() + float(os.environ.get("FAULT_RUNNER_SLEEP_S", "2"))
    lines = []
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, PROGRESS_INTERVAL_S))
        lines.append(f"still running ({len(lines) + 1})")
        on_progress("\n".join(lines))  # the live tail, as the real runners report it
    _record(f"done {job.pk}")
    return JobOutcome(verdict=Verdict.PASSED, runner="sleep-then-pass")
