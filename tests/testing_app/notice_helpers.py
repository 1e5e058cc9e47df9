"""Shared pieces of the notification, release and maintenance tests: finishing real jobs through
the lifecycle services, a mail server that refuses, and draining the default queue."""

import socket

import django_rq
from rq.worker import SimpleWorker

from packages_app.models import Maintainer
from testing_app.adapters.rq_serializers import TrustedSideSerializer
from testing_app.models import Job
from testing_app.models import Run
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import JobOutcome
from testing_app.services.execution import execute_job
from tests import factories

# A port of this test run's range with nothing listening: SMTP to it is refused (a real
# OSError from smtplib, as when the mail server is down).
REFUSING_SMTP_PORT = 8869


def refusing_smtp(settings) -> None:
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", REFUSING_SMTP_PORT)) != 0, "port unexpectedly open"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = REFUSING_SMTP_PORT
    settings.EMAIL_TIMEOUT = 5


def maintainer(**fields) -> Maintainer:
    return factories.MaintainerFactory(**fields)


def finish(build, cell: dict, verdict: str, *, pinned_build=None, excerpt: str = "") -> Job:
    """Enqueue one test job on the cell and run it to `verdict` through the real services."""
    (job,) = enqueue_jobs(
        run=factories.RunFactory(state=Run.State.PLANNING),
        jobs=[Job(kind="test", build=build, pinned_build=pinned_build, **cell)],
    )

    def runner(*, job, worker, on_progress):
        return JobOutcome(verdict=verdict, failure_excerpt=excerpt, retryable=False)

    return execute_job(job_id=job.pk, runner=runner)


def drain(queue_name: str) -> int:
    """Run every job of one queue in this process (SimpleWorker); returns how many ran."""
    queue = django_rq.get_queue(queue_name)

    def done() -> int:
        return queue.finished_job_registry.count + queue.failed_job_registry.count

    before = done()
    django_rq.get_worker(
        queue_name, worker_class=SimpleWorker, serializer=TrustedSideSerializer
    ).work(burst=True)
    return done() - before


def drain_default_queue() -> int:
    return drain("default")


def failed_jobs(queue_name: str = "default") -> list:
    queue = django_rq.get_queue(queue_name)
    return [queue.fetch_job(i) for i in queue.failed_job_registry.get_job_ids()]
