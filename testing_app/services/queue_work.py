"""Each queue's remaining work: the expected host seconds (Job.expected_s) of its queued jobs.

A host that serves several queues takes its next job from the queue with the most remaining
work per serving worker (workers.py), not from a fixed first queue: a fixed order lets a
queue that only a few hosts serve fall behind while those hosts work on a queue everybody
serves, and the wave ends when that scarce queue does.

The figure is kept in one Redis hash, next to the queues: added to when jobs are pushed,
taken from when a job starts. PostgreSQL stays the truth: the reconciler rewrites the hash
from the queued rows (recount_queued_work), so a lost update (a cancelled job, a flushed
Redis, a crash between the two writes) is corrected at its next run.
"""

import logging
from collections.abc import Iterable
from collections.abc import Mapping

import django_rq
from django.db.models import Sum
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from testing_app.models import Job

logger = logging.getLogger(__name__)

QUEUED_WORK_KEY = "distro:queued-work"


def add_queued_work(pipeline: Pipeline, work_by_queue: Mapping[str, float]) -> None:
    """Count pushed work (queue name -> seconds) in the caller's pipeline."""
    for name, seconds in work_by_queue.items():
        if seconds:
            pipeline.hincrbyfloat(QUEUED_WORK_KEY, name, seconds)


def take_queued_work(*, queue_name: str, seconds: float) -> None:
    """A job of `queue_name` started. Best effort: the reconciler recounts what this misses."""
    if not seconds:
        return
    try:
        django_rq.get_connection("default").hincrbyfloat(QUEUED_WORK_KEY, queue_name, -seconds)
    except RedisError as exc:
        logger.warning("could not update the queued work of %s: %s", queue_name, exc)


def recount_queued_work() -> dict[str, float]:
    """Rewrite the hash from PostgreSQL's queued jobs; returns the figures written."""
    totals = {
        row["queue_name"]: float(row["work"] or 0)
        for row in Job.objects.filter(status=Job.Status.QUEUED)
        .values("queue_name")
        .annotate(work=Sum("expected_s"))
        .order_by()
    }
    connection = django_rq.get_connection("default")
    with connection.pipeline() as pipe:  # MULTI/EXEC: readers never see the hash half-written
        pipe.delete(QUEUED_WORK_KEY)
        if totals:
            pipe.hset(QUEUED_WORK_KEY, mapping=totals)
        pipe.execute()
    return totals


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
