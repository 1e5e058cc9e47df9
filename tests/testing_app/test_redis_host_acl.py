"""A host's Redis user (manage.py redis_host_acl) against the real Redis server: its worker
runs a job of a host queue, and it cannot push to, read or rewrite the trusted side's queues."""

import shlex
import uuid
from io import StringIO
from urllib.parse import urlparse
from urllib.parse import urlunparse

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from rq import Queue
from rq import SimpleWorker
from rq.serializers import JSONSerializer

HOST = "acl-test-host"


@pytest.fixture
def host_connection():
    """Create the host's user from the printed line; remove it afterwards."""
    admin = redis.Redis.from_url(settings.REDIS_URL)
    user = f"host-acl-test-{uuid.uuid4().hex[:8]}"
    out, err = StringIO(), StringIO()
    call_command("redis_host_acl", "--host", HOST, "--user", user, stdout=out, stderr=err)
    line = out.getvalue().strip()
    password = err.getvalue().strip().rsplit(" ", 1)[-1]
    assert line.startswith(f"ACL SETUSER {user} reset on ")
    assert password not in line  # only its hash is stored
    admin.execute_command(*shlex.split(line))
    parsed = urlparse(settings.REDIS_URL)
    url = urlunparse(parsed._replace(netloc=f"{user}:{password}@{parsed.hostname}:{parsed.port}"))
    try:
        yield redis.Redis.from_url(url)
    finally:
        admin.execute_command("ACL", "DELUSER", user)


def test_a_host_worker_runs_a_host_queue_job_under_its_acl(host_connection):
    admin = redis.Redis.from_url(settings.REDIS_URL)
    job_id = f"distro-job-{uuid.uuid4().int % 10**9}"
    Queue("test.linux-64.cpu", connection=admin, serializer=JSONSerializer).enqueue(
        "builtins.len", "abcd", job_id=job_id
    )
    queue = Queue("test.linux-64.cpu", connection=host_connection, serializer=JSONSerializer)
    worker = SimpleWorker(
        [queue], connection=host_connection, serializer=JSONSerializer, name=f"{HOST}.cpu.1"
    )
    worker.work(burst=True, with_scheduler=True)

    assert admin.hget(f"rq:job:{job_id}", "status") == b"finished"
    assert queue.fetch_job(job_id).return_value() == 4


@pytest.mark.parametrize(
    "command",
    [
        ("LPUSH", "rq:queue:promote", "x"),
        ("RPUSH", "rq:queue:default", "x"),
        ("LRANGE", "rq:queue:promote", "0", "-1"),
        ("HSET", f"rq:job:{uuid.uuid4()}", "data", "x"),  # a trusted job's (pickle) data
        ("HGET", "rq:job:distro-promote-1", "data"),
        ("SADD", "rq:workers:promote", "x"),
        ("HSET", "rq:worker:another-host.cpu.1", "state", "busy"),
        ("DEL", "rq:suspended"),
    ],
)
def test_the_host_user_cannot_reach_the_trusted_queues(host_connection, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        host_connection.execute_command(*command)


@pytest.mark.parametrize(
    "command", [("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST")]
)
def test_the_host_user_has_no_admin_or_dangerous_commands(host_connection, command):
    with pytest.raises(redis.exceptions.NoPermissionError):
        host_connection.execute_command(*command)


def test_a_host_name_that_would_widen_the_patterns_is_refused():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="cannot be used in a key pattern"):
        call_command("redis_host_acl", "--host", "*", stdout=StringIO(), stderr=StringIO())


def test_a_declined_delivery_goes_back_to_its_queue_under_the_acl(host_connection):
    admin = redis.Redis.from_url(settings.REDIS_URL)
    job_id = f"distro-job-{uuid.uuid4().int % 10**9}"
    Queue("test.linux-64.cpu", connection=admin, serializer=JSONSerializer).enqueue(
        "tests.testing_app.test_rq_serialization.declines", job_id=job_id
    )
    queue = Queue("test.linux-64.cpu", connection=host_connection, serializer=JSONSerializer)
    worker = SimpleWorker(
        [queue], connection=host_connection, serializer=JSONSerializer, name=f"{HOST}.cpu.2"
    )
    worker.work(burst=True, max_jobs=1)

    assert job_id in queue.get_job_ids()
    assert admin.hget(f"rq:job:{job_id}", "status") == b"queued"
