"""Fault 1: workers killed with SIGKILL while they run jobs (docs/fault-runs.md).

Three hosts run six jobs that each take a few seconds. While every worker holds a job, one
worker is killed alone (its job process dies with it) and another with its whole session (the
node is gone). Nobody tells PostgreSQL: the heartbeats stop, `manage.py reconcile` finds both
workers lost, their jobs end `error (worker lost)` and are retried; the killed workers are
restarted as a service manager would. Every cell ends passed exactly once.
"""

import os
import re
import signal
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from testing_app.models import Job
from testing_app.models import Run
from testing_app.models import WorkerProcess
from tests.faults.helpers import chains
from tests.faults.helpers import enqueue_cells
from tests.faults.helpers import kill_session
from tests.faults.helpers import live_pids
from tests.faults.helpers import manage
from tests.faults.helpers import nothing_in_redis
from tests.faults.helpers import recorded
from tests.faults.helpers import redis_holds
from tests.faults.helpers import runner_env
from tests.faults.helpers import status_counts
from tests.testing_app.conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

JOBS = 6


def test_kill_9_of_workers_mid_job_every_job_ends_once(
    worker, worker_env, cpu_cell, token, tmp_path
):
    record = tmp_path / "runs.txt"
    env = runner_env(record, sleep_s=3)
    jobs = enqueue_cells(cpu_cell, JOBS)
    hosts = ["host-a", "host-b", "host-c"]
    workers = {"host-a": worker("--enroll-token", token, "--name", "host-a", env=env)}
    # host-a starts first, so it runs the queues' RQ scheduler (a child process of its own).
    wait_for(
        lambda: WorkerProcess.objects.filter(last_heartbeat_at__isnull=False).exists(),
        timeout=60,
        what="host-a to start working",
    )
    for name in hosts[1:]:
        workers[name] = worker("--enroll-token", token, "--name", name, env=env)

    running: dict[str, Job] = {}

    def busy():  # each host holds a job at the same moment (not just three running rows)
        jobs = Job.objects.filter(status="running").select_related("worker__host")
        running.clear()
        running.update({job.worker.host.name: job for job in jobs})
        # The victims' jobs started under half their 3 s ago: they are still the ones running
        # when the kill comes, not a job that ended between this look and the kill.
        fresh = timezone.now() - timedelta(seconds=1.5)
        return sorted(running) == hosts and all(
            running[name].started_at and running[name].started_at > fresh
            for name in ("host-a", "host-b")
        )

    wait_for(busy, timeout=90, what="every worker to hold a job")
    victim_alone, victim_node = workers["host-a"].proc, workers["host-b"].proc
    assert len(live_pids(sid=victim_alone.pid)) >= 2  # the worker and its scheduler, at least
    os.kill(victim_alone.pid, signal.SIGKILL)  # the worker process only
    killed_node = kill_session(victim_node.pid)  # the worker and everything it started
    victim_alone.wait(), victim_node.wait()
    assert len(killed_node) >= 1
    # Nothing a killed worker started outlives it (its job, its scheduler).
    for proc in (victim_alone, victim_node):
        wait_for(lambda p=proc: not live_pids(sid=p.pid), timeout=20, what="the session to die")
    killed = {running["host-a"].pk, running["host-b"].pk}
    assert Job.objects.get(pk=running["host-a"].pk).status == "running"  # nobody told PostgreSQL

    # The operator's reconciler (cron runs it every 30 s) finds the silent workers lost.
    reconcile_env = {**worker_env, **env}
    reports = []

    def both_recovered() -> bool:
        reports.append(manage("reconcile", env=reconcile_env))
        return Job.objects.filter(pk__in=killed, status="finished").count() == len(killed)

    wait_for(both_recovered, timeout=60, what="the reconciler to find both workers lost")
    found = [re.match(r"(\d+) lost workers, (\d+) lost jobs retried", r).groups() for r in reports]
    assert [sum(int(f[i]) for f in found) for i in (0, 1)] == [2, 2], reports
    # The service manager restarts the killed workers (new processes, same hosts).
    worker("--name", "host-a", env=env)
    worker("--name", "host-b", env=env)
    wait_for(
        lambda: not Job.objects.filter(status__in=["queued", "running"]).exists(),
        timeout=120,
        what="every job to finish",
    )
    manage("reconcile", "--grace", "0", env=reconcile_env)

    # Exactly once: every cell passed once; each killed job failed once and was retried once.
    assert status_counts() == {("finished", "passed"): JOBS, ("finished", "error"): 2}
    for original, *retries in chains(jobs):
        if original.pk in killed:
            (retry,) = retries
            assert (original.attempt, original.verdict) == (1, "error")
            assert original.error_message.startswith(f"Worker lost ({original.worker_name}")
            assert (retry.attempt, retry.verdict, retry.status) == (2, "passed", "finished")
        else:
            assert retries == []
            assert (original.attempt, original.verdict) == (1, "passed")
    starts, done = recorded(record)
    passed = set(Job.objects.filter(verdict="passed").values_list("pk", flat=True))
    assert set(done) == passed
    assert set(done.values()) == {1}  # no job completed twice
    assert sum(starts.values()) == JOBS + len(killed)
    assert all(starts[pk] == 1 for pk in killed)  # started once, never completed
    assert killed.isdisjoint(done)
    lost_workers = WorkerProcess.objects.filter(stop_reason__startswith="lost: no heartbeat")
    assert sorted(w.host.name for w in lost_workers) == ["host-a", "host-b"]
    assert Run.objects.get().state == Run.State.FINISHED
    assert redis_holds(redis.Redis.from_url(settings.REDIS_URL)) == nothing_in_redis()
