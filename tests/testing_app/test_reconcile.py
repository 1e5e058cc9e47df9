"""The reconciler: PostgreSQL stays the truth whatever Redis holds or lost."""

import io
import os
import subprocess
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry
from rq.registry import ScheduledJobRegistry

from testing_app.management.commands.distro_worker import process_is_alive
from testing_app.models import Job
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import rq_queue
from testing_app.services.execution import start_job
from testing_app.services.reconcile import reconcile
from testing_app.services.reconcile import recover_dead_workers_of_host
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "test.linux-64.cpu"


def _jobs(cell, n: int = 1, **fields) -> list[Job]:
    build = factories.BuildFactory()
    return enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=build, python=f"3.{i}", **cell, **fields) for i in range(n)],
    )


def _flush():
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def test_restores_missing_queued_jobs_once_and_respects_the_grace_period(cpu_cell):
    jobs = _jobs(cpu_cell, 3)
    _flush()
    assert reconcile(grace_s=3600).restored == 0  # too young: their push may be in flight
    assert reconcile(grace_s=0).restored == 3
    assert sorted(rq_queue(QUEUE).get_job_ids()) == sorted(j.rq_job_id for j in jobs)
    assert reconcile(grace_s=0).restored == 0


def test_restored_retry_keeps_waiting_out_its_backoff(cpu_cell):
    (job,) = _jobs(cpu_cell, not_before=timezone.now() + timedelta(hours=1))
    assert job.rq_job_id in ScheduledJobRegistry(queue=rq_queue(QUEUE)).get_job_ids()
    _flush()
    assert reconcile(grace_s=0).restored == 1
    assert rq_queue(QUEUE).get_job_ids() == []
    assert job.rq_job_id in ScheduledJobRegistry(queue=rq_queue(QUEUE)).get_job_ids()


def test_removes_orphaned_entries_and_leaves_other_jobs_alone(cpu_cell):
    cancelled, finished = _jobs(cpu_cell, 2)
    Job.objects.filter(pk=cancelled.pk).update(status="cancelled")
    Job.objects.filter(pk=finished.pk).update(status="finished", verdict="passed")
    queue = rq_queue(QUEUE)
    foreign = queue.enqueue("builtins.len", "abc", job_id="someone-elses-job")
    failed = FailedJobRegistry(queue=queue)
    failed.add(RQJob.fetch(finished.rq_job_id, connection=queue.connection), ttl=600)
    report = reconcile(grace_s=0)
    assert report.orphans_removed == 3  # two queue entries, one failed-registry entry
    assert queue.get_job_ids() == [foreign.id]
    assert failed.get_job_ids() == []


def test_lost_worker_job_ends_error_and_is_retried(cpu_cell, engine_settings):
    host = factories.HostFactory(platform=cpu_cell["platform"])
    stale = timezone.now() - timedelta(seconds=60)
    lost = WorkerProcess.objects.create(host=host, name="dead.gpu0.1", last_heartbeat_at=stale)
    alive = WorkerProcess.objects.create(
        host=host, name="alive.gpu0.2", last_heartbeat_at=timezone.now()
    )
    lost_job, alive_job = _jobs(cpu_cell, 2)
    start_job(job_id=lost_job.pk, worker=WorkerProcess.objects.get(pk=lost.pk))
    start_job(job_id=alive_job.pk, worker=WorkerProcess.objects.get(pk=alive.pk))
    report = reconcile(grace_s=0)
    assert (report.lost_workers, report.lost_jobs) == (1, 1)
    lost_job.refresh_from_db()
    assert (lost_job.status, lost_job.verdict) == ("finished", "error")
    assert lost_job.error_message.startswith("Worker lost (dead.gpu0.1, silent since")
    retry = Job.objects.get(retry_of=lost_job)
    assert retry.avoid_host_ids == [host.pk]
    assert retry.rq_job_id in rq_queue(QUEUE).get_job_ids()
    assert Job.objects.get(pk=alive_job.pk).status == "running"
    assert WorkerProcess.objects.get(pk=lost.pk).stopped_at is not None
    assert WorkerProcess.objects.get(pk=alive.pk).stopped_at is None


def test_running_job_of_a_worker_that_shut_down_is_recovered(cpu_cell):
    host = factories.HostFactory(platform=cpu_cell["platform"])
    worker = WorkerProcess.objects.create(
        host=host, name="w.cpu.1", last_heartbeat_at=timezone.now()
    )
    (job,) = _jobs(cpu_cell)
    start_job(job_id=job.pk, worker=WorkerProcess.objects.get(pk=worker.pk))
    WorkerProcess.objects.filter(pk=worker.pk).update(stopped_at=timezone.now())
    assert reconcile(grace_s=0).lost_jobs == 1
    assert Job.objects.get(pk=job.pk).verdict == "error"


def test_reconcile_command_prints_its_report(cpu_cell):
    _jobs(cpu_cell, 2)
    _flush()
    out = io.StringIO()
    call_command("reconcile", "--grace", "0", stdout=out)
    assert "2 queued jobs restored to Redis" in out.getvalue()


def test_overdue_scheduled_retry_is_moved_to_its_queue(cpu_cell):
    """RQ's scheduler died with its worker and its locks outlive it: a retry whose backoff is
    over waits in the scheduled registry until the reconciler moves it."""
    due, later = _jobs(cpu_cell, 2, not_before=timezone.now() + timedelta(hours=1))
    registry = ScheduledJobRegistry(queue=rq_queue(QUEUE))
    past = timezone.now() - timedelta(seconds=60)
    Job.objects.filter(pk=due.pk).update(not_before=past)
    redis.Redis.from_url(settings.REDIS_URL).zadd(registry.key, {due.rq_job_id: past.timestamp()})

    report = reconcile(grace_s=0)

    assert report.overdue_released == 1
    assert rq_queue(QUEUE).get_job_ids() == [due.rq_job_id]
    assert registry.get_job_ids() == [later.rq_job_id]
    assert "1 overdue scheduled retries released" in str(report)
    assert reconcile(grace_s=0).overdue_released == 0


def test_a_starting_worker_ends_the_jobs_of_its_hosts_dead_workers_at_once(cpu_cell):
    host = factories.HostFactory(platform=cpu_cell["platform"])
    other_host = factories.HostFactory(platform=cpu_cell["platform"])
    dead_pid = _gone_pid()
    now = timezone.now()
    dead = WorkerProcess.objects.create(
        host=host, name="host.cpu.dead", pid=dead_pid, last_heartbeat_at=now
    )
    alive = WorkerProcess.objects.create(
        host=host, name="host.cpu.alive", pid=os.getpid(), last_heartbeat_at=now
    )
    elsewhere = WorkerProcess.objects.create(
        host=other_host, name="other.cpu.dead", pid=dead_pid, last_heartbeat_at=now
    )
    jobs = _jobs(cpu_cell, 3)
    for job, worker in zip(jobs, (dead, alive, elsewhere), strict=True):
        start_job(job_id=job.pk, worker=WorkerProcess.objects.get(pk=worker.pk))

    recovered = recover_dead_workers_of_host(host_id=host.pk, alive=process_is_alive)

    assert recovered == 1
    states = {j.pk: Job.objects.get(pk=j.pk).status for j in jobs}
    assert states == {jobs[0].pk: "finished", jobs[1].pk: "running", jobs[2].pk: "running"}
    assert Job.objects.get(pk=jobs[0].pk).error_message.startswith(
        "Worker lost (host.cpu.dead, its process is gone)"
    )
    assert Job.objects.filter(retry_of=jobs[0]).exists()
    assert WorkerProcess.objects.get(pk=dead.pk).stop_reason.startswith("lost: its process")
    assert WorkerProcess.objects.get(pk=alive.pk).stopped_at is None
    assert WorkerProcess.objects.get(pk=elsewhere.pk).stopped_at is None  # another host's


def _gone_pid() -> int:
    proc = subprocess.Popen(["true"])  # noqa: S607 - reaped below, so its pid is free
    proc.wait()
    return proc.pid
