"""Each queue's remaining work in Redis counts the tests still waiting behind their install
checks (latent work): credited when a check is pushed, taken back when it ends however it ends,
and the same as the reconciler's recount from PostgreSQL at every step. And the queue order
that follows: a host whose own queues hold more than the fleet's average takes its own tests
first, a host with slack takes install checks first."""

import django_rq
import pytest
from django.db import transaction
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from testing_app.models import Job
from testing_app.models import Run
from testing_app.models.verdicts import Verdict
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import cancel_job
from testing_app.services.execution import finish_job
from testing_app.services.execution import start_job
from testing_app.services.outcomes import JobOutcome
from testing_app.services.queue_work import QUEUED_WORK_KEY
from testing_app.services.queue_work import busiest_first
from testing_app.services.queue_work import recount_queued_work
from testing_app.services.queue_work import work_per_serving_worker
from testing_app.services.reconcile import reconcile
from tests import factories

CPU = "test.linux-64.cpu"
RATTLER = "test.linux-64.cpu@rattler"
WIN = "test.win-64.cpu"


def _hash() -> dict[str, float]:
    """The Redis figures, without the queues whose work went back to zero."""
    raw = django_rq.get_connection("default").hgetall(QUEUED_WORK_KEY)
    figures = {key.decode(): float(value) for key, value in raw.items()}
    return {name: round(seconds, 6) for name, seconds in figures.items() if abs(seconds) > 1e-6}


def _recounted() -> dict[str, float]:
    return {name: round(seconds, 6) for name, seconds in recount_queued_work().items() if seconds}


def _assert_figures(expected: dict[str, float]) -> None:
    """The running figures are what the recount from PostgreSQL writes, and `expected`."""
    running = _hash()
    assert running == expected
    assert _recounted() == expected
    assert _hash() == expected


def _check(package: str, axes: dict, **fields) -> Job:
    build = factories.BuildFactory(package=factories.PackageFactory(name=package))
    return Job(kind=Job.Kind.INSTALL_CHECK, build=build, **axes, **fields)


@pytest.fixture
def timings(settings):
    settings.EXPECTED_TEST_S = 5.0
    settings.EXPECTED_INSTALL_CHECK_S = 1.0
    settings.RETRY_BACKOFF_S = [30]


@pytest.mark.django_db(transaction=True)
def test_latent_work_follows_each_install_check_to_its_end(timings, cpu_cell):
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    with transaction.atomic():
        passes, fails, cancelled, errors, stopped = enqueue_jobs(
            run=run,
            jobs=[
                _check("passes", cpu_cell),
                _check("fails", cpu_cell),
                _check("cancelled", cpu_cell, required_runner="rattler"),
                _check("errors", cpu_cell),
                _check("stopped", cpu_cell),
            ],
        )
    assert (passes.expected_s, passes.unlocks_s, passes.unlocks_queue) == (6.0, 5.0, CPU)
    assert cancelled.unlocks_queue == RATTLER  # the test's own routing: its runner's queue
    # Pushed: each check in `install` (its own time and its test's), each test latent.
    _assert_figures({"install": 30.0, CPU: 20.0, RATTLER: 5.0})

    with transaction.atomic():
        start_job(job_id=passes.pk, worker=None)
    _assert_figures({"install": 24.0, CPU: 20.0, RATTLER: 5.0})  # running: its test still latent
    finish_job(job_id=passes.pk, outcome=JobOutcome(verdict=Verdict.PASSED))
    test = Job.objects.get(run=run, kind=Job.Kind.TEST)
    assert test.queue_name == passes.unlocks_queue
    assert (test.expected_s, test.unlocks_s) == (5.0, 0.0)
    _assert_figures({"install": 24.0, CPU: 20.0, RATTLER: 5.0})  # latent -> queued

    with transaction.atomic():
        start_job(job_id=fails.pk, worker=None)
    finish_job(job_id=fails.pk, outcome=JobOutcome(verdict=Verdict.UNINSTALLABLE))
    _assert_figures({"install": 18.0, CPU: 15.0, RATTLER: 5.0})  # its test will never come

    cancel_job(job=cancelled, reason="not needed")  # still queued
    _assert_figures({"install": 12.0, CPU: 15.0})

    with transaction.atomic():
        start_job(job_id=errors.pk, worker=None)
    finish_job(job_id=errors.pk, outcome=JobOutcome(verdict=Verdict.ERROR))
    retry = Job.objects.get(retry_of=errors)
    assert retry.not_before is not None  # waits out its backoff in RQ's scheduled registry
    assert (retry.expected_s, retry.unlocks_s, retry.unlocks_queue) == (6.0, 5.0, CPU)
    _assert_figures({"install": 12.0, CPU: 15.0})  # the retry carries the same work

    with transaction.atomic():
        start_job(job_id=stopped.pk, worker=None)
    cancel_job(job=Job.objects.get(pk=stopped.pk), reason="stopped while running")
    _assert_figures({"install": 6.0, CPU: 10.0})

    # PostgreSQL is the truth: figures lost or wrong in Redis come back with the reconciler.
    django_rq.get_connection("default").hset(QUEUED_WORK_KEY, mapping={CPU: 999, "install": 0})
    reconcile(grace_s=0)
    assert _hash() == {"install": 6.0, CPU: 10.0}


@pytest.mark.django_db(transaction=True)
def test_a_binding_host_takes_its_own_latent_queue_first_a_slack_host_takes_install(
    timings, cpu_cell
):
    """One win-64 host and three linux-64 hosts, all serving `install`; each platform has
    three checks queued, no test yet. The win-64 host's queue holds 15 s for one host, more
    than the fleet's average (`install`: 36 s over 4 hosts): it takes its own tests first as
    they come. A linux-64 host's queue holds 15 s for three hosts, less than the average:
    it takes install checks first, which unlocks everybody's tests."""
    win = {**cpu_cell, "platform": factories.PlatformFactory(subdir="win-64")}
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    with transaction.atomic():
        enqueue_jobs(
            run=run,
            jobs=[_check(f"w{i}", win) for i in range(3)]
            + [_check(f"l{i}", cpu_cell) for i in range(3)],
        )
    connection = django_rq.get_connection("default")
    connection.sadd(WORKERS_BY_QUEUE_KEY % "install", "win", "lin1", "lin2", "lin3")
    connection.sadd(WORKERS_BY_QUEUE_KEY % WIN, "win")
    connection.sadd(WORKERS_BY_QUEUE_KEY % CPU, "lin1", "lin2", "lin3")
    assert connection.llen(f"rq:queue:{WIN}") == 0  # all of it latent

    binding = ["install", WIN]
    share = work_per_serving_worker(connection, binding)
    assert share == {"install": 9.0, WIN: 15.0}
    assert busiest_first(binding, share) == [WIN, "install"]

    slack = [CPU, "install"]
    share = work_per_serving_worker(connection, slack)
    assert share == {CPU: 5.0, "install": 9.0}
    assert busiest_first(slack, share) == ["install", CPU]
