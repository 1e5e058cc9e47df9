"""Fault 2: Redis killed and restarted empty while jobs are queued and running
(docs/fault-runs.md). A private redis-server without persistence plays the queue server.

The workers ride out the outage and reconnect; the jobs that were running finish (their
results go to PostgreSQL); `manage.py reconcile --grace 0` pushes every queued job Redis lost
back, under its own id; every job ends once.
"""

import pytest
import redis

from testing_app.models import Job
from testing_app.models import Run
from testing_app.models import WorkerProcess
from tests.faults.helpers import chains
from tests.faults.helpers import enqueue_cells
from tests.faults.helpers import manage
from tests.faults.helpers import nothing_in_redis
from tests.faults.helpers import recorded
from tests.faults.helpers import redis_holds
from tests.faults.helpers import runner_env
from tests.faults.helpers import status_counts
from tests.faults.servers import PrivateRedis
from tests.testing_app.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

JOBS = 8


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    settings.RQ_QUEUES = {
        name: {**config, "URL": server.url} for name, config in settings.RQ_QUEUES.items()
    }
    yield server
    server.kill()


def test_redis_restarted_empty_mid_run_every_job_ends_once(
    private_redis, worker, worker_env, cpu_cell, token, tmp_path
):
    record = tmp_path / "runs.txt"
    env = {**runner_env(record, sleep_s=2), "REDIS_URL": private_redis.url}
    jobs = enqueue_cells(cpu_cell, JOBS)
    client = redis.Redis.from_url(private_redis.url)
    assert len(redis_holds(client)["queued"]) == JOBS
    workers = [worker("--enroll-token", token, "--name", n, env=env) for n in ("host-a", "host-b")]
    wait_for(
        lambda: Job.objects.filter(status="running").count() == 2,
        timeout=90,
        what="both workers to hold a job",
    )

    private_redis.kill()
    private_redis.start()  # empty: the queue, the registries and the workers' keys are gone
    assert client.dbsize() == 0
    queued_when_lost = Job.objects.filter(status="queued").count()
    assert queued_when_lost >= JOBS - 4  # jobs were waiting in Redis when it died

    # Only PostgreSQL knows what is queued: the reconciler (cron, or by hand) restores it.
    reconcile_env = {**worker_env, **env}
    restored = manage("reconcile", "--grace", "0", env=reconcile_env)
    assert f"{queued_when_lost} queued jobs restored to Redis" in restored
    wait_for(
        lambda: not Job.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=120,
        what="every job to finish after the restart",
    )
    manage("reconcile", "--grace", "0", env=reconcile_env)

    assert status_counts() == {("finished", "passed"): JOBS}
    assert all(len(chain) == 1 for chain in chains(jobs))  # nothing needed a retry
    starts, done = recorded(record)
    assert set(done) == {job.pk for job in jobs}
    assert set(done.values()) == {1}  # each job ran to completion exactly once
    assert set(starts.values()) == {1}
    assert Run.objects.get().state == Run.State.FINISHED
    # The same two worker processes did it all: none crashed, none was restarted.
    assert [w.proc.poll() for w in workers] == [None, None]
    assert WorkerProcess.objects.filter(stopped_at__isnull=True).count() == 2
    assert redis_holds(client) == nothing_in_redis()
