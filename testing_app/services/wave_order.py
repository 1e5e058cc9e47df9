"""The order jobs enter their queues: release-blocking first, longest first, packages in turn.

RQ queues are first in, first out, so the order of a push is the order hosts take the work.
Within one push (a release wave, a full run, a new build and its reverse dependencies):

1. higher Job.priority first (a PyTorch release wave before routine runs: PLAN_PRIORITIES);
2. longest expected first, in bands of a factor of two: a long job started last is what makes
   a wave end late (longest-processing-time-first scheduling), while jobs within a factor of
   two of each other gain little from exact order;
3. within a band, packages take turns (each package's first job, then each one's second...),
   so one package with many cells does not hold back everyone else's verdicts.

An install check stands for the test it unlocks as well (its expected_s includes the test's),
so a long test's install check goes first too and its test reaches the queue early. The test's
share is also kept apart on the check (Job.unlocks_s, with the queue the test will go to,
Job.unlocks_queue): until the check ends, that queue's remaining work counts the test as
latent work (services/queue_work.py), so the hosts that alone can run it see it coming.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol
from typing import TypeVar

from testing_app.models import Job
from testing_app.selectors.job_estimates import duration_history


class Orderable(Protocol):
    priority: int
    expected_s: float
    share_key: int


def fill_expected_durations(jobs: Sequence[Job], *, package_of: dict[int, int | None]) -> None:
    """Set expected_s on jobs that have none (0): the job's own expected duration, plus the
    test's for an install check, whose unlocks_s is then that test's. One history query per
    job kind present."""
    todo = [job for job in jobs if not job.expected_s]
    if not todo:
        return
    packages = {package_of.get(job.build_id) for job in todo}
    tests = duration_history(kind=Job.Kind.TEST, package_ids=packages)
    kinds = {job.kind for job in todo}
    checks = (
        duration_history(kind=Job.Kind.INSTALL_CHECK, package_ids=packages)
        if Job.Kind.INSTALL_CHECK in kinds
        else None
    )
    for job in todo:
        cell = {
            "package_id": package_of.get(job.build_id),
            "variant_id": job.variant_id,
            "platform_id": job.platform_id,
        }
        test_s = tests.expected_s(**cell)
        if job.kind == Job.Kind.INSTALL_CHECK and checks is not None:
            job.unlocks_s = test_s
            job.expected_s = test_s + checks.expected_s(**cell)
        else:
            job.expected_s = test_s


def duration_band(seconds: float) -> int:
    """Jobs within a factor of two of each other share a band."""
    return math.floor(math.log2(max(seconds, 1.0)))


T = TypeVar("T", bound=Orderable)


def push_order(items: Sequence[T]) -> list[T]:
    """`items` in the order described in the module docstring (stable for equal keys)."""
    by_duration = sorted(items, key=lambda d: (-d.priority, -d.expected_s))
    turn: dict[tuple[int, int, int], int] = defaultdict(int)
    keyed = []
    for position, item in enumerate(by_duration):
        group = (item.priority, duration_band(item.expected_s), item.share_key)
        keyed.append(((-item.priority, -group[1], turn[group], position), item))
        turn[group] += 1
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]
