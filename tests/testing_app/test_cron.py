"""The periodic reconciler: registered for RQ's cron scheduler, and runnable as an RQ job."""

import django_rq
import pytest
import redis
from rq import SimpleWorker
from rq.cron import CronScheduler

from testing_app.jobs import rq_reconcile_jobs
from testing_app.models import Job
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import rq_queue
from tests import factories


def test_cron_config_registers_the_reconciler_on_the_default_queue():
    scheduler = CronScheduler(connection=django_rq.get_connection("default"))
    scheduler.load_config_from_file("testing_app.management.cron")
    registered = {job.func: job for job in scheduler.get_jobs()}
    job = registered[rq_reconcile_jobs]
    assert (job.queue_name, job.interval) == ("default", 30)


@pytest.mark.django_db(transaction=True)
def test_reconciler_job_restores_a_flushed_queue(cpu_cell, settings):
    settings.RECONCILE_GRACE_S = 0
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=factories.BuildFactory(), **cpu_cell)],
    )
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    default = django_rq.get_queue("default")
    default.enqueue(rq_reconcile_jobs)
    # SimpleWorker: the job runs in this process, where the test database is.
    SimpleWorker([default], connection=default.connection).work(burst=True)
    assert rq_queue(job.queue_name).get_job_ids() == [job.rq_job_id]
