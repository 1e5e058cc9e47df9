"""Each queue's remaining work: the expected host seconds of the jobs still ahead of it.

A host that serves several queues takes its next job from the queue with the most remaining
work per serving worker (workers.py), not from a fixed first queue: a fixed order lets a
queue that only a few hosts serve fall behind while those hosts work on a queue everybody
serves, and the wave ends when that scarce queue does.

What a queue's figure counts:

- its queued jobs' Job.expected_s (taken off when a job starts);
- for a test queue, also its latent work: the tests still waiting behind their install checks,
  queued or running (each check's Job.unlocks_s, credited to its Job.unlocks_queue in the
  check's push, taken back when the check ends, whatever the outcome; a passing check's test is
  then pushed with its own expected_s). Most of a release wave's test work is latent at first:
  without it, the queue of a platform only a few hosts serve looks nearly empty while its
  checks wait, and those hosts take the shared `install` queue's checks instead of their own
  tests as these appear.

The `install` queue keeps counting the tests its checks unlock (an install check's
expected_s is its own time plus its test's), so while a check waits its test counts twice: in
`install` (what running the check brings forward) and in the test's queue (work only that
queue's hosts can do). `install` is served by every host, so its share is about the remaining
latent work over the whole fleet, the average host's: a host whose own queue holds more per
serving worker (the scarce hosts the wave's end depends on) takes its own tests first, a host
with less takes install checks first and unlocks everyone's tests early. Two alternatives were
measured with bench/wave_sim.py (bench/README.md, "What the wave simulation measures") and
left out:

- counting only a check's own time in `install` (about 1 % of the work): every host with a
  test queued then prefers it, checks run only on hosts that have run dry, late, and the last
  tests were unlocked late (the single osx-arm64 host ended the run 14 s after the others);
- ranking a queue by the work of every queue served by a subset of its workers (the lower
  bound's density of that set of hosts): a GPU host then ranks the platform's cpu queue first
  (the platform's GPU work counts in it) and takes the cpu tests the CPU-only hosts were there
  for, which then run dry while the GPU queues are left to the end (ratio 1.37, against 1.06
  with the rule above, at 300 packages and --time-scale 0.002).

What the share does not see: a queue served by many hosts that are all busy elsewhere. The
win-64 CPU-only host of the simulated fleet serves only `test.win-64.cpu`, which the 6 win-64
GPU hosts serve too; its share per serving worker stays below `install`'s, so that host takes
install checks although the 7 win-64 hosts together decide the wave's end.

The figures are kept in one Redis hash, next to the queues: added to when jobs are pushed (in
the push's own pipeline), taken from when a job starts or an install check ends. PostgreSQL
stays the truth: the reconciler rewrites the hash from the rows (recount_queued_work), so a
lost update (a flushed Redis, a crash between the two writes) is corrected at its next run.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Protocol

import django_rq
from django.db.models import Sum
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from testing_app.models import Job

logger = logging.getLogger(__name__)

QUEUED_WORK_KEY = "distro:queued-work"


class QueuedWork(Protocol):
    """A job as the figures see it (a Job, or a Dispatch on its way to Redis)."""

    queue_name: str
    expected_s: float
    unlocks_queue: str
    unlocks_s: float


def pushed_work(jobs: Iterable[QueuedWork]) -> dict[str, float]:
    """What pushing `jobs` adds, per queue: their expected work, and each install check's
    test in the queue that test will go to."""
    work: dict[str, float] = defaultdict(float)
    for job in jobs:
        work[job.queue_name] += job.expected_s
        if job.unlocks_s and job.unlocks_queue:
            work[job.unlocks_queue] += job.unlocks_s
    return dict(work)


def started_work(job: QueuedWork) -> dict[str, float]:
    """What a job's start takes off: its own expected work (its test stays latent)."""
    return {job.queue_name: job.expected_s}


def ended_work(job: QueuedWork, *, was_queued: bool) -> dict[str, float]:
    """What a job's end takes off: an install check's latent test, and its own expected work
    if it never started (a cancelled queued job)."""
    work: dict[str, float] = defaultdict(float)
    if was_queued:
        work[job.queue_name] += job.expected_s
    if job.unlocks_s and job.unlocks_queue:
        work[job.unlocks_queue] += job.unlocks_s
    return dict(work)


def add_queued_work(pipeline: Pipeline, work_by_queue: Mapping[str, float]) -> None:
    """Count pushed work (queue name -> seconds) in the caller's pipeline."""
    for name, seconds in work_by_queue.items():
        if seconds:
            pipeline.hincrbyfloat(QUEUED_WORK_KEY, name, seconds)


def take_queued_work(work_by_queue: Mapping[str, float]) -> None:
    """Work no longer ahead (queue name -> seconds), in one round trip. Best effort: the
    reconciler recounts what this misses."""
    work = {name: seconds for name, seconds in work_by_queue.items() if name and seconds}
    if not work:
        return
    try:
        with django_rq.get_connection("default").pipeline(transaction=False) as pipe:
            for name, seconds in work.items():
                pipe.hincrbyfloat(QUEUED_WORK_KEY, name, -seconds)
            pipe.execute()
    except RedisError as exc:
        logger.warning("could not update the queued work of %s: %s", ", ".join(work), exc)


def recount_queued_work() -> dict[str, float]:
    """Rewrite the hash from PostgreSQL: queued jobs' expected work per queue, plus the tests
    of queued and running install checks per queue they unlock; returns the figures written."""
    totals: dict[str, float] = defaultdict(float)
    queued = (
        Job.objects.filter(status=Job.Status.QUEUED)
        .values("queue_name")
        .annotate(work=Sum("expected_s"))
        .order_by()
        .values_list("queue_name", "work")
    )
    latent = (
        Job.objects.filter(
            status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
            kind=Job.Kind.INSTALL_CHECK,
            unlocks_s__gt=0,
        )
        .exclude(unlocks_queue="")
        .values("unlocks_queue")
        .annotate(work=Sum("unlocks_s"))
        .order_by()
        .values_list("unlocks_queue", "work")
    )
    for name, work in [*queued, *latent]:
        totals[name] += float(work or 0)
    connection = django_rq.get_connection("default")
    with connection.pipeline() as pipe:  # MULTI/EXEC: readers never see the hash half-written
        pipe.delete(QUEUED_WORK_KEY)
        if totals:
            pipe.hset(QUEUED_WORK_KEY, mapping=totals)
        pipe.execute()
    return dict(totals)


def work_per_serving_worker(connection, queue_names: Iterable[str]) -> dict[str, float]:
    """Remaining work of each queue divided by the number of RQ workers listening on it (one
    round trip). A queue nobody is registered on counts as served by one (the asker)."""
    names = list(queue_names)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hmget(QUEUED_WORK_KEY, names)
        for name in names:
            pipe.scard(WORKERS_BY_QUEUE_KEY % name)
        work, *serving = pipe.execute()
    return {
        name: max(float(seconds or 0), 0.0) / max(int(count), 1)
        for name, seconds, count in zip(names, work, serving, strict=True)
    }


def busiest_first(queue_names: list[str], share: Mapping[str, float]) -> list[str]:
    """The queues, most remaining work per serving worker first; equal shares (an empty queue
    among them) keep the configured order, so nothing the worker serves is ever left out."""
    position = {name: index for index, name in enumerate(queue_names)}
    return sorted(queue_names, key=lambda name: (-share.get(name, 0.0), position[name]))
