"""Our direct push (services/rq_push.py) leaves Redis exactly as RQ's own enqueue_many does,
and RQ reads the jobs back as the calls we meant."""

from datetime import datetime

import django_rq
import pytest
import redis
from django.conf import settings
from rq.job import Job as RqJob
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from testing_app.services.dispatch import EXECUTE_FUNCTION
from testing_app.services.dispatch import Dispatch
from testing_app.services.dispatch import _enqueue_data
from testing_app.services.dispatch import push_jobs
from testing_app.services.dispatch import rq_queue

DISPATCHES = [
    Dispatch(pk, queue, timeout)
    for pk, queue, timeout in [
        (11, "test.linux-64.cpu", 4500),
        (12, "test.linux-64.cpu", 60),
        (13, "install", 600),
        (2_000_000_007, "test.linux-64.cuda12.4", 7200),
    ]
]
TIMESTAMPS = {b"created_at", b"enqueued_at"}


def _redis_state() -> dict:
    """Every key with its type and content; the job hashes' timestamps replaced by a marker
    after checking that they parse (they are the moment of the push, different by nature)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    state = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == b"hash":
            content = client.hgetall(key)
            for field in TIMESTAMPS & content.keys():
                datetime.fromisoformat(content[field].decode())
                content[field] = "<timestamp>"
        elif kind == b"list":
            content = client.lrange(key, 0, -1)
        elif kind == b"set":
            content = client.smembers(key)
        else:
            content = f"unexpected type {kind!r}"
        state[key] = (kind, content, client.ttl(key))
    return state


def _push_with_rq_enqueue_many(dispatches) -> None:
    connection = django_rq.get_connection("default")
    by_queue: dict[str, list[Dispatch]] = {}
    for dispatch in dispatches:
        by_queue.setdefault(dispatch.queue_name, []).append(dispatch)
    for name, items in by_queue.items():
        with connection.pipeline() as pipe:
            rq_queue(name).enqueue_many([_enqueue_data(d) for d in items], pipeline=pipe)
            pipe.execute()


@pytest.mark.django_db
def test_direct_push_leaves_the_same_redis_state_as_rq_enqueue_many():
    _push_with_rq_enqueue_many(DISPATCHES)
    expected = _redis_state()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    assert push_jobs(DISPATCHES, stamp=False) == len(DISPATCHES)
    assert _redis_state() == expected
    assert len(expected) == len(DISPATCHES) + 4  # the job hashes, 3 queues, rq:queues


@pytest.mark.django_db
def test_rq_reads_back_the_calls_in_order():
    push_jobs(DISPATCHES, stamp=False)
    queue = rq_queue("test.linux-64.cpu")
    assert queue.get_job_ids() == ["distro-job-11", "distro-job-12"]
    job = RqJob.fetch("distro-job-12", connection=queue.connection, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.kwargs) == (EXECUTE_FUNCTION, [12], {})
    assert job.timeout == 60 + settings.JOB_TIMEOUT_MARGIN_S
    assert job.get_status() == JobStatus.QUEUED
    assert job.origin == "test.linux-64.cpu"
    assert job.description == "job 12 on test.linux-64.cpu"
