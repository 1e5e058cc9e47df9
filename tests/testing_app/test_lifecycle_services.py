"""The job lifecycle services: write then enqueue, guarded transitions, cells, retries, cancel."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Run
from testing_app.models import Verdict
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import retry_job
from testing_app.services.dispatch import rq_queue
from testing_app.services.execution import Declined
from testing_app.services.execution import JobOutcome
from testing_app.services.execution import abandon_job
from testing_app.services.execution import cancel_job
from testing_app.services.execution import execute_job
from testing_app.services.execution import finish_job
from testing_app.services.execution import start_job
from tests import factories

QUEUE = "test.linux-64.cpu"


def _outcome(verdict: str, **extra):
    def runner(*, job, worker, on_progress):
        runner.calls.append(job.pk)
        on_progress("live tail line")
        return JobOutcome(verdict=verdict, **extra)

    runner.calls = []
    return runner


def _enqueue(cell, n: int = 1, *, run=None, **fields) -> list[Job]:
    run = run or factories.RunFactory(state=Run.State.PLANNING)
    jobs = [Job(kind="test", build=factories.BuildFactory(), **cell, **fields) for _ in range(n)]
    return enqueue_jobs(run=run, jobs=jobs)


def _redis_ids(name: str = QUEUE) -> list[str]:
    return rq_queue(name).get_job_ids()


def _worker(host, *, busy: bool = False) -> WorkerProcess:
    return WorkerProcess.objects.create(
        host=host,
        name=f"{host.name}.gpu0.{WorkerProcess.objects.count()}",
        queues=[QUEUE],
        last_heartbeat_at=timezone.now(),
        current_job=factories.JobFactory() if busy else None,
    )


@pytest.mark.django_db
def test_enqueue_jobs_writes_rows_and_pushes_to_redis_only_after_commit(
    cpu_cell, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        jobs = _enqueue(cpu_cell, 3)
        assert _redis_ids() == []  # nothing reaches Redis before the commit
    assert _redis_ids() == [job.rq_job_id for job in jobs]
    assert all(job.queue_name == QUEUE for job in jobs)
    assert Job.objects.filter(status="queued", enqueued_at__isnull=False).count() == 3
    assert Run.objects.get().state == Run.State.RUNNING
    cells = CellResult.objects.filter(verdict="queued")
    assert sorted(c.latest_job_id for c in cells) == sorted(j.pk for j in jobs)


@pytest.mark.django_db
def test_enqueue_jobs_rolled_back_leaves_nothing_in_redis(
    cpu_cell, django_capture_on_commit_callbacks
):
    def plan_then_fail():
        with transaction.atomic():
            _enqueue(cpu_cell, 2)
            raise RuntimeError("planning failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        plan_then_fail()
    assert _redis_ids() == []
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_jobs_rejects_unknown_kind(cpu_cell):
    with pytest.raises(ValidationError, match="Unknown job kind"):
        enqueue_jobs(
            run=factories.RunFactory(),
            jobs=[Job(kind="compile", build=factories.BuildFactory(), **cpu_cell)],
        )


@pytest.mark.django_db
def test_install_check_jobs_go_to_the_install_queue(cpu_cell, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = _enqueue_install(cpu_cell)
    assert job.queue_name == "install"
    assert _redis_ids("install") == [job.rq_job_id]
    assert _redis_ids() == []  # no test queue: any CPU worker on `install` may run it


def _enqueue_install(cell):
    job = Job(kind="install_check", build=factories.BuildFactory(), **cell)
    return enqueue_jobs(run=factories.RunFactory(), jobs=[job])


@pytest.mark.django_db
def test_job_delivered_twice_runs_once(cpu_cell):
    (job,) = _enqueue(cpu_cell)
    runner = _outcome(Verdict.PASSED)
    assert execute_job(job_id=job.pk, runner=runner).verdict == Verdict.PASSED
    assert execute_job(job_id=job.pk, runner=runner) is None
    assert runner.calls == [job.pk]


@pytest.mark.django_db
def test_finished_job_never_moves_back(cpu_cell):
    (job,) = _enqueue(cpu_cell)
    execute_job(job_id=job.pk, runner=_outcome(Verdict.FAILED))
    assert start_job(job_id=job.pk, worker=None) is None
    assert finish_job(job_id=job.pk, outcome=JobOutcome(verdict=Verdict.PASSED)) is None
    assert cancel_job(job=job) is None
    job.refresh_from_db()
    assert (job.status, job.verdict) == ("finished", "failed")


@pytest.mark.django_db
def test_cell_result_tracks_latest_job_and_previous_verdict(cpu_cell):
    (first,) = _enqueue(cpu_cell)
    execute_job(job_id=first.pk, runner=_outcome(Verdict.FAILED))
    cell = CellResult.objects.get()
    assert (cell.verdict, cell.previous_verdict, cell.latest_job_id) == ("failed", "", first.pk)
    second = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=first.build, **cpu_cell)],
    )[0]
    cell.refresh_from_db()
    assert (cell.verdict, cell.previous_verdict, cell.latest_job_id) == (
        "queued",
        "failed",
        second.pk,
    )
    execute_job(job_id=second.pk, runner=_outcome(Verdict.PASSED))
    cell.refresh_from_db()
    assert (cell.verdict, cell.previous_verdict) == ("passed", "failed")
    # An older job finishing late does not overwrite the newer result.
    Job.objects.filter(pk=first.pk).update(status="running", verdict="")
    finish_job(job_id=first.pk, outcome=JobOutcome(verdict=Verdict.ERROR, retryable=False))
    cell.refresh_from_db()
    assert (cell.verdict, cell.latest_job_id) == ("passed", second.pk)


@pytest.mark.django_db
def test_error_is_retried_up_to_three_attempts_each_visible(cpu_cell, engine_settings):
    host = factories.HostFactory(platform=cpu_cell["platform"])
    worker = _worker(host)
    (job,) = _enqueue(cpu_cell)
    attempts = [job]
    for _ in range(3):
        execute_job(job_id=attempts[-1].pk, worker_name=worker.name, runner=_outcome("error"))
        nxt = Job.objects.filter(retry_of=attempts[-1]).first()
        if nxt:
            attempts.append(nxt)
    assert [j.attempt for j in attempts] == [1, 2, 3]
    assert [Job.objects.get(pk=j.pk).verdict for j in attempts] == ["error"] * 3
    assert attempts[1].avoid_host_ids == [host.pk]
    cell = CellResult.objects.get()
    assert (cell.verdict, cell.latest_job_id) == ("error", attempts[-1].pk)
    assert Run.objects.get().state == Run.State.FINISHED


@pytest.mark.django_db
def test_retry_waits_out_its_backoff_in_rqs_schedule(cpu_cell, settings):
    settings.RETRY_BACKOFF_S = [120]
    (job,) = _enqueue(cpu_cell)
    execute_job(job_id=job.pk, runner=_outcome(Verdict.ERROR))
    retry = Job.objects.get(retry_of=job)
    assert retry.not_before > timezone.now() + timedelta(seconds=100)
    assert CellResult.objects.get().verdict == "queued"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second", "attempts"),
    [
        ("timeout", "timeout", 2),
        ("timeout", "passed", 2),
        ("failed", None, 1),
        ("uninstallable", None, 1),
    ],
)
def test_retry_policy_by_verdict(cpu_cell, first, second, attempts):
    (job,) = _enqueue(cpu_cell)
    execute_job(job_id=job.pk, runner=_outcome(first))
    retry = Job.objects.filter(retry_of=job).first()
    if second is not None:
        execute_job(job_id=retry.pk, runner=_outcome(second))
    assert Job.objects.count() == attempts
    assert CellResult.objects.get().verdict == (second or first)


@pytest.mark.django_db
def test_worker_of_paused_host_declines_and_job_stays_queued(cpu_cell):
    host = factories.HostFactory(platform=cpu_cell["platform"], state="draining")
    worker = _worker(host)
    (job,) = _enqueue(cpu_cell)
    runner = _outcome(Verdict.PASSED)
    result = execute_job(job_id=job.pk, worker_name=worker.name, runner=runner)
    assert isinstance(result, Declined)
    assert result.delay_s > 0
    assert runner.calls == []
    assert Job.objects.get(pk=job.pk).status == "queued"


@pytest.mark.django_db
def test_retry_prefers_another_idle_host(json_lookup_modes, cpu_cell):
    failing = factories.HostFactory(platform=cpu_cell["platform"])
    other = factories.HostFactory(platform=cpu_cell["platform"])
    failing_worker = _worker(failing)
    (job,) = _enqueue(cpu_cell, avoid_host_ids=[failing.pk])
    busy_other = _worker(other, busy=True)
    # The other host is busy: running here beats waiting.
    assert execute_job(job_id=job.pk, worker_name=failing_worker.name, runner=_outcome("passed"))
    (job2,) = _enqueue(cpu_cell, avoid_host_ids=[failing.pk])
    WorkerProcess.objects.filter(pk=busy_other.pk).update(current_job=None)
    declined = execute_job(
        job_id=job2.pk, worker_name=failing_worker.name, runner=_outcome("passed")
    )
    assert isinstance(declined, Declined)
    assert declined.delay_s == 0
    other_worker = WorkerProcess.objects.get(pk=busy_other.pk)
    finished = execute_job(job_id=job2.pk, worker_name=other_worker.name, runner=_outcome("passed"))
    assert finished.host_id == other.pk
    assert finished.handoffs == 1


@pytest.mark.django_db
def test_start_records_host_gpu_and_driver(cpu_cell):
    host = factories.HostFactory(platform=cpu_cell["platform"], driver_version="580.159.04")
    worker = _worker(host)
    WorkerProcess.objects.filter(pk=worker.pk).update(gpu_index=0)
    (job,) = _enqueue(cpu_cell)
    started = start_job(job_id=job.pk, worker=WorkerProcess.objects.get(pk=worker.pk))
    assert (started.host_id, started.gpu_index, started.gpu_name) == (host.pk, 0, "NVIDIA H100")
    assert started.driver_version == "580.159.04"
    assert started.worker_name == worker.name
    assert WorkerProcess.objects.get(pk=worker.pk).current_job_id == job.pk
    assert CellResult.objects.get().verdict == "running"


@pytest.mark.django_db
def test_abandon_running_job_ends_error_and_retries(cpu_cell):
    (job,) = _enqueue(cpu_cell)
    start_job(job_id=job.pk, worker=None)
    abandoned = abandon_job(job_id=job.pk, reason="Worker lost (w1).")
    assert (abandoned.verdict, abandoned.error_message) == ("error", "Worker lost (w1).")
    assert Job.objects.get(retry_of=job).status == "queued"
    assert abandon_job(job_id=job.pk, reason="again") is None


@pytest.mark.django_db
def test_cancel_queued_job_restores_cell_and_leaves_redis(
    cpu_cell, django_capture_on_commit_callbacks
):
    (done,) = _enqueue(cpu_cell)
    execute_job(job_id=done.pk, runner=_outcome(Verdict.PASSED))
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = enqueue_jobs(
            run=factories.RunFactory(), jobs=[Job(kind="test", build=done.build, **cpu_cell)]
        )
    assert job.rq_job_id in _redis_ids()
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_job(job=job, reason="not needed").status == "cancelled"
    assert job.rq_job_id not in _redis_ids()
    assert CellResult.objects.get().verdict == "passed"
    assert execute_job(job_id=job.pk, runner=_outcome("passed")) is None


@pytest.mark.django_db
def test_manual_retry_permissions_rate_limit_and_in_flight_refusal(cpu_cell, settings):
    settings.MANUAL_RETRY_LIMIT_PER_HOUR = 2
    maintainer_user = factories.UserFactory()
    package = factories.PackageFactory()
    package.maintainers.add(factories.MaintainerFactory(user=maintainer_user))
    build = factories.BuildFactory(package=package)
    jobs = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[
            Job(kind="test", build=build, python=p, **cpu_cell) for p in ("3.10", "3.11", "3.12")
        ],
    )
    for job in jobs:
        execute_job(job_id=job.pk, runner=_outcome(Verdict.FAILED))
    stranger = factories.UserFactory()
    with pytest.raises(ValidationError, match="maintainers and release managers"):
        retry_job(job=jobs[0], requested_by=stranger)
    retried = retry_job(job=jobs[0], requested_by=maintainer_user)
    assert (retried.retry_of_id, retried.run.trigger, retried.status) == (
        jobs[0].pk,
        "retry",
        "queued",
    )
    with pytest.raises(ValidationError, match="still queued"):
        retry_job(job=retried, requested_by=maintainer_user)
    with pytest.raises(ValidationError, match="already has a job"):
        retry_job(job=jobs[0], requested_by=maintainer_user)
    retry_job(job=jobs[1], requested_by=maintainer_user)
    with pytest.raises(ValidationError, match="Retry limit reached"):
        retry_job(job=jobs[2], requested_by=maintainer_user)
    release_manager = factories.UserFactory()
    release_manager.groups.add(Group.objects.get(name="release managers"))
    assert retry_job(job=jobs[2], requested_by=release_manager).status == "queued"


@pytest.mark.django_db
def test_enqueue_without_postgresql_fast_path_writes_the_same(
    cpu_cell, monkeypatch, django_capture_on_commit_callbacks
):
    """The ORM path other databases (the SQLite demo) take gives the same rows and cells."""
    monkeypatch.setattr("testing_app.services.bulk.use_fast_path", lambda: False)
    (first,) = _enqueue(cpu_cell)
    execute_job(job_id=first.pk, runner=_outcome(Verdict.FAILED))
    with django_capture_on_commit_callbacks(execute=True):
        second, other = enqueue_jobs(
            run=factories.RunFactory(),
            jobs=[
                Job(kind="test", build=first.build, **cpu_cell),
                Job(kind="test", build=first.build, python="3.12", **cpu_cell),
            ],
        )
    assert (second.status, second.queue_name, second.enqueued_at is not None) == (
        "queued",
        QUEUE,
        True,
    )
    cells = {c.python: c for c in CellResult.objects.all()}
    assert (cells[""].verdict, cells[""].previous_verdict) == ("queued", "failed")
    assert cells[""].latest_job_id == second.pk
    assert (cells["3.12"].verdict, cells["3.12"].latest_job_id) == ("queued", other.pk)
    assert _redis_ids() == [second.rq_job_id, other.rq_job_id]
