"""Execution: the guarded transitions of a Job and everything a finished job updates.

queued -> running -> finished (with a verdict) | cancelled. Every transition is a conditional
change of one row under its lock, so a job delivered twice runs once, a late or duplicate result
is ignored, and a finished job never moves back. Finishing keeps CellResult, the run's state and
automatic retries current in the same transaction.
"""

import logging
import time
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import InterfaceError
from django.db import OperationalError
from django.db import connection
from django.db import transaction
from django.db.models import Exists
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from distro_site.json_lists import json_list_contains
from testing_app.models import CellResult
from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import PinnedCellResult
from testing_app.models import Run
from testing_app.models import WorkerProcess
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict
from testing_app.planner.gpu_arch import build_support
from testing_app.planner.gpu_arch import sm_name
from testing_app.services.dispatch import Dispatch
from testing_app.services.dispatch import clone_cell
from testing_app.services.dispatch import push_after_commit
from testing_app.services.dispatch import withdraw_from_redis
from testing_app.services.maintenance import reinstate_if_passing
from testing_app.services.notices import notify_job_finished
from testing_app.services.outcomes import Declined
from testing_app.services.outcomes import JobOutcome
from testing_app.services.outcomes import JobRunner
from testing_app.services.queue_work import ended_work
from testing_app.services.queue_work import started_work
from testing_app.services.queue_work import take_queued_work
from testing_app.services.queues import Capabilities
from testing_app.services.queues import serves_variant

logger = logging.getLogger(__name__)

# An avoided host hands a retry on at most this often, so a job never bounces forever.
MAX_HANDOFFS = 2
# What starting a job writes (start_job).
START_FIELDS = [
    "status",
    "started_at",
    "log_path",
    "host",
    "worker",
    "worker_name",
    "gpu_index",
    "gpu_name",
    "driver_version",
]
# What a cell's verdict change writes (_record_cell).
CELL_FIELDS = ["verdict", "previous_verdict", "latest_job", "updated_at"]
# What finishing a job writes (see _store_outcome).
OUTCOME_FIELDS = [
    "status",
    "verdict",
    "finished_at",
    "duration_s",
    "error_message",
    "exit_code",
    "command",
    "runner",
    "runner_version",
    "download_s",
    "test_s",
    "solved_packages",
    "log_path",
    "log_tail",
    "failure_excerpt",
    "follow_ups_due",
]


def runner_for(job: Job, worker: WorkerProcess | None = None) -> JobRunner | None:
    """The runner of a job. SIMULATED_JOB_RUNNER, when set, runs every job (simulations only).
    Install checks: the solver (services/install_checks.py). Test jobs:
    DISTRO_JOB_RUNNER when set (e.g. the benchmark's no-op), else the runner the job names, else
    conda-build where the host has it and rattler where it does not (choose_test_runner)."""
    if settings.SIMULATED_JOB_RUNNER:  # a fleet simulation (bench/wave_sim.py): every kind
        return import_string(settings.SIMULATED_JOB_RUNNER)
    if job.kind == Job.Kind.INSTALL_CHECK:
        from testing_app.services.install_checks import run_install_check

        return run_install_check
    if job.kind == Job.Kind.TEST:
        if settings.DISTRO_JOB_RUNNER:
            return import_string(settings.DISTRO_JOB_RUNNER)
        from testing_app.services.conda_runner import choose_test_runner
        from testing_app.services.conda_runner import run_test_job

        return partial(run_test_job, runner=choose_test_runner(job, worker))
    return None


def execute_job(
    *, job_id: int, worker_name: str = "", runner: JobRunner | None = None
) -> Job | Declined | None:
    """Run one delivered job through its lifecycle. Returns the finished Job; None when this
    delivery does nothing (job already started, finished or cancelled); Declined when this
    worker must leave it to another one or to later."""
    worker = None
    if worker_name:
        worker = (
            WorkerProcess.objects.select_related("host__platform").filter(name=worker_name).first()
        )
    job = start_job(job_id=job_id, worker=worker)
    if job is None or isinstance(job, Declined):
        return job
    runner = runner or runner_for(job, worker)
    if runner is None:
        outcome = JobOutcome(
            verdict=Verdict.ERROR,
            error_message=f"No runner for {job.get_kind_display().lower()} jobs yet.",
            retryable=False,
        )
        return finish_job(job_id=job.pk, outcome=outcome)
    try:
        outcome = runner(
            job=job, worker=worker, on_progress=lambda tail: _save_tail_if_possible(job.pk, tail)
        )
    except Exception as exc:  # noqa: BLE001 - any runner crash is an infrastructure error, kept on the job
        logger.exception("runner crashed on job %s", job.pk)
        outcome = JobOutcome(verdict=Verdict.ERROR, error_message=f"Runner crashed: {exc!r}")
        # The crash may have struck inside a statement (RQ's timeout is a signal: it lands
        # wherever the runner is, a live-tail save included), leaving the session mid-query;
        # a fresh one records the outcome.
        if not connection.in_atomic_block:
            connection.close()
    return _finish_when_database_answers(job_id=job.pk, outcome=outcome)


def _save_tail_if_possible(job_id: int, tail: str) -> None:
    """The live tail is a convenience: PostgreSQL away for a moment must not stop the test."""
    try:
        save_log_tail(job_id=job_id, tail=tail)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("job %s: live tail not saved, database unavailable: %s", job_id, exc)
        connection.close()  # reconnect next time


def _finish_when_database_answers(*, job_id: int, outcome: JobOutcome) -> Job | None:
    """finish_job, retried while PostgreSQL cannot be reached (a restart, a failover): the test
    ran, and its result must not be lost with the connection; nor may the job stay `running`
    under a live worker, which the reconciler would never treat as lost. The retry is safe:
    finish_job is guarded, a result that did commit is not stored twice."""
    # Within what RQ's own job timeout leaves after the test's timeout (JOB_TIMEOUT_MARGIN_S),
    # less a minute for the runner's own kill grace and the rest of the lifecycle.
    deadline = time.monotonic() + max(settings.JOB_TIMEOUT_MARGIN_S - 60, 30)
    pause = 0.5
    while True:
        try:
            return finish_job(job_id=job_id, outcome=outcome)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() > deadline:
                raise
            logger.warning("job %s: database unavailable, result kept for retry: %s", job_id, exc)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


@transaction.atomic
def start_job(*, job_id: int, worker: WorkerProcess | None) -> Job | Declined | None:
    """queued -> running, guarded. None when the job is not queued any more (a duplicate
    delivery); Declined when this worker must not run it (host paused, avoided host)."""
    job = (
        Job.objects.select_for_update(of=("self",))
        .select_related("variant", "torch_release")
        .filter(pk=job_id)
        .first()
    )
    if job is None or job.status != Job.Status.QUEUED:
        logger.info("job %s: not queued (%s), delivery ignored", job_id, job and job.status)
        return None
    if worker is not None:
        refusal, delay_s = _refusal(job, worker)
        if refusal:
            return _decline(job, worker, refusal, delay_s)
    now = timezone.now()
    job.status, job.started_at = Job.Status.RUNNING, now
    job.log_path = f"{job.pk}.log"
    if worker is not None:
        _stamp_worker(job, worker)
    job.save(update_fields=START_FIELDS)
    if worker is not None:
        WorkerProcess.objects.filter(pk=worker.pk).update(current_job=job)
    _cell_rows(job).filter(latest_job=job).update(verdict=Verdict.RUNNING, updated_at=now)
    transaction.on_commit(partial(take_queued_work, started_work(job)))
    return job


def _refusal(job: Job, worker: WorkerProcess) -> tuple[str, int]:
    """Why this worker must not start the job ("" if it may), and how long the job should wait
    before it is offered again, so that a worker that just declined does not take it straight
    back (its own pause starts at its next heartbeat)."""
    host = worker.host
    if host.state != Host.State.ACTIVE:
        return f"host is {host.state}", settings.WORKER_HEARTBEAT_S
    if job.kind == Job.Kind.INSTALL_CHECK:
        return "", 0  # a solver run: any worker of the `install` queue may do it for any cell
    capabilities = Capabilities(
        host.platform.subdir, host.max_cuda if host.gpus else "", host.rocm_version
    )
    misrouted = job.platform_id != host.platform_id or not serves_variant(capabilities, job.variant)
    if misrouted or (job.required_runner and job.required_runner not in (host.runners or {})):
        # Only possible when a host's facts changed under a running worker; it re-probes on
        # restart. Offered again later rather than in a tight loop.
        return "host cannot serve this cell (misrouted)", settings.WORKER_LOST_AFTER_S
    unsupported_gpu = _unsupported_gpu(job, worker)
    if unsupported_gpu:
        # A build without code for this GPU fails with "no kernel image": a false `failed`.
        # Handed back (still queued) for a worker whose GPU the build runs on.
        return unsupported_gpu, settings.WORKER_HEARTBEAT_S
    avoided = host.pk in job.avoid_host_ids and job.handoffs < MAX_HANDOFFS
    if avoided and _other_host_idle(job, avoid=host.pk):
        return "an earlier attempt failed on this host and another host is idle", 0
    return "", 0


def _unsupported_gpu(job: Job, worker: WorkerProcess) -> str:
    """Why the GPU this worker pins cannot run the job's (PyTorch release, CUDA variant)
    build ("" if it can, or if the worker pins no GPU or its architecture is unknown)."""
    if job.variant.kind != job.variant.Kind.CUDA or worker.gpu_index is None:
        return ""
    host = worker.host
    gpu = next((g for g in host.gpus or [] if g.get("index") == worker.gpu_index), None)
    capability = (gpu or {}).get("compute_capability", "")
    support = build_support(
        torch_version=job.torch_release.version,
        cuda_version=job.variant.accelerator_version or job.variant.min_driver_cuda,
        subdir=host.platform.subdir,
        capability=capability,
    )
    if support.supported:
        return ""
    return f"GPU {worker.gpu_index} ({sm_name(capability)}) unsupported: {support.reason}"


def _decline(job: Job, worker: WorkerProcess, refusal: str, delay_s: int) -> "Declined":
    logger.info("job %s declined by %s: %s", job.pk, worker.name, refusal)
    if not delay_s:
        Job.objects.filter(pk=job.pk).update(handoffs=job.handoffs + 1)
    return Declined(reason=refusal, delay_s=delay_s)


def _other_host_idle(job: Job, *, avoid: int) -> bool:
    fresh = timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    idle_elsewhere = (
        WorkerProcess.objects.filter(
            json_list_contains("queues", job.queue_name),
            stopped_at__isnull=True,
            last_heartbeat_at__gte=fresh,
            current_job__isnull=True,
            host__state=Host.State.ACTIVE,
        )
        .exclude(host_id__in=[avoid, *job.avoid_host_ids])
        .values_list("queues", flat=True)
    )
    return any(job.queue_name in (queues or ()) for queues in idle_elsewhere)


def _stamp_worker(job: Job, worker: WorkerProcess) -> None:
    host = worker.host
    job.host, job.worker, job.worker_name = host, worker, worker.name
    job.gpu_index = worker.gpu_index
    gpu = next((g for g in host.gpus or [] if g.get("index") == worker.gpu_index), None)
    job.gpu_name = (gpu or {}).get("name", "")[:200]
    job.driver_version = host.driver_version if gpu else ""


def save_log_tail(*, job_id: int, tail: str) -> None:
    """The live view: the last lines of a running job's log."""
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(log_tail=tail)


@transaction.atomic
def finish_job(*, job_id: int, outcome: JobOutcome) -> Job | None:
    """running -> finished with the outcome's verdict, guarded; None when the job is not
    running (it was finished, cancelled or given up on meanwhile: this result is ignored)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status != Job.Status.RUNNING:
        logger.info("job %s: not running (%s), result ignored", job_id, job and job.status)
        return None
    now = timezone.now()
    _store_outcome(job, outcome, now=now)
    job.save(update_fields=OUTCOME_FIELDS)
    if job.worker_id:
        WorkerProcess.objects.filter(pk=job.worker_id, current_job=job).update(current_job=None)
    # An install check's test is no longer latent: queued below if the check passed (with its
    # own expected_s), or not at all. Registered first, so it is taken before that push adds.
    transaction.on_commit(partial(take_queued_work, ended_work(job, was_queued=False)))
    retry = _automatic_retry(job, retryable=outcome.retryable)
    if job.kind == Job.Kind.INSTALL_CHECK and job.verdict == Verdict.PASSED:
        # The environment solves: now the GPU (or CPU) test of the same cell, in the same run.
        # It takes over the cell, so _record_cell below leaves the cell alone.
        from testing_app.services.install_checks import enqueue_test_after_check

        enqueue_test_after_check(check=job)
    _record_cell(job, retry=retry, now=now)
    _update_run_state(job.run_id, now=now)
    if not job.follow_ups_due:
        _follow_up(job)
    return job


def _follow_up(job: Job) -> None:
    """What a finished job changes beyond its own cell and run (trusted-side writes)."""
    notify_job_finished(job=job)  # maintainers: own failure, or breakage by an upstream build
    reinstate_if_passing(job=job)  # maintenance policy: a passing build undoes at_risk at once


def run_due_follow_ups(*, limit: int = 500) -> int:
    """The follow-ups of jobs that hosts finished under their limited role (finish_job), run
    by the reconciler on the web side; each job's once (the flag is cleared in the same
    transaction, rows locked by another reconciler are skipped). Returns how many ran."""
    done = 0
    due = Job.objects.filter(follow_ups_due=True, status=Job.Status.FINISHED)
    for job_id in due.order_by("pk").values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            job = (
                Job.objects.select_for_update(skip_locked=True)
                .filter(pk=job_id, follow_ups_due=True)
                .first()
            )
            if job is None:
                continue
            _follow_up(job)
            Job.objects.filter(pk=job.pk).update(follow_ups_due=False)
            done += 1
    return done


def _store_outcome(job: Job, outcome: JobOutcome, *, now) -> None:
    job.status, job.verdict, job.finished_at = Job.Status.FINISHED, outcome.verdict, now
    job.duration_s = (now - job.started_at).total_seconds() if job.started_at else None
    job.error_message = outcome.error_message
    job.exit_code = outcome.exit_code
    job.command = outcome.command
    job.runner = outcome.runner or job.runner
    job.runner_version = outcome.runner_version or job.runner_version
    job.download_s, job.test_s = outcome.download_s, outcome.test_s
    job.solved_packages = outcome.solved_packages
    job.log_path = outcome.log_path or job.log_path
    job.log_tail = outcome.log_tail or job.log_tail
    job.failure_excerpt = outcome.failure_excerpt
    # A host's limited role cannot write notices or packages: the web side follows up.
    job.follow_ups_due = settings.HOST_LIMITED_ROLE


def _automatic_retry(job: Job, *, retryable: bool) -> Job | None:
    """`error`: up to max_attempts, preferring another host, with backoff. `timeout`: once.
    `failed` and `uninstallable` never: the package's own result does not change by retrying."""
    if not retryable or job.attempt >= job.max_attempts:
        return None
    if job.verdict == Verdict.TIMEOUT:
        if _earlier_attempts(job).filter(verdict=Verdict.TIMEOUT).exists():
            return None
    elif job.verdict != Verdict.ERROR:
        return None
    backoff = settings.RETRY_BACKOFF_S or [0]
    delay = backoff[min(job.attempt - 1, len(backoff) - 1)]
    avoid = list(job.avoid_host_ids)
    if job.host_id and job.host_id not in avoid:
        avoid.append(job.host_id)
    retry = clone_cell(
        job,
        run_id=job.run_id,
        attempt=job.attempt + 1,
        retry_of=job,
        avoid_host_ids=avoid,
        not_before=timezone.now() + timedelta(seconds=delay) if delay else None,
        # Same kind, same cell: the same estimate, and an install check's test stays latent.
        expected_s=job.expected_s,
        unlocks_queue=job.unlocks_queue,
        unlocks_s=job.unlocks_s,
    )
    retry.save()
    dispatch = Dispatch.of(retry)
    transaction.on_commit(lambda: push_after_commit([dispatch]))
    logger.info("job %s (%s) retried as job %s in %s s", job.pk, job.verdict, retry.pk, delay)
    return retry


def _earlier_attempts(job: Job):
    ids, current = [], job
    while current.retry_of_id and len(ids) < job.max_attempts:
        ids.append(current.retry_of_id)
        current = Job.objects.only("retry_of_id").get(pk=current.retry_of_id)
    return Job.objects.filter(pk__in=ids)


def _cell_filter(job: Job) -> dict:
    """The job's cell: a re-test with an upstream build pinned has its own cell, apart from the
    dependent's (models/pinned_results.py)."""
    cell = {
        "build_id": job.build_id,
        "torch_release_id": job.torch_release_id,
        "variant_id": job.variant_id,
        "platform_id": job.platform_id,
        "python": job.python,
    }
    if job.pinned_build_id:
        cell["pinned_build_id"] = job.pinned_build_id
    return cell


def _cell_model(job: Job) -> type[CellResult] | type[PinnedCellResult]:
    return PinnedCellResult if job.pinned_build_id else CellResult


def _cell_rows(job: Job):
    return _cell_model(job).objects.filter(**_cell_filter(job))


def _record_cell(job: Job, *, retry: Job | None, now) -> None:
    """The cell shows the verdict, or `queued` again while a retry is in flight. A cell that a
    newer job already owns is left alone (an old run finishing late)."""
    # The common case in one statement: the cell still points at this job.
    if (
        _cell_rows(job)
        .filter(latest_job=job)
        .update(
            verdict=Verdict.QUEUED if retry else job.verdict,
            latest_job=retry or job,
            updated_at=now,
        )
    ):
        return
    cell = _cell_rows(job).select_for_update().first()
    new = cell is None
    if new:
        package_id = job.build.package_id
        cell = _cell_model(job)(**_cell_filter(job), package_id=package_id, verdict=job.verdict)
    elif cell.latest_job_id is not None and cell.latest_job_id > job.pk:
        if retry is None or cell.latest_job_id > retry.pk:
            return
    elif cell.latest_job_id != job.pk and cell.verdict not in IN_FLIGHT_VERDICTS:
        cell.previous_verdict = cell.verdict
    cell.verdict = Verdict.QUEUED if retry else job.verdict
    cell.latest_job = retry or job
    cell.updated_at = now
    cell.save(update_fields=None if new else CELL_FIELDS)


def _update_run_state(run_id: int, *, now) -> None:
    """A run is finished when none of its jobs is queued or running.

    Checked twice, without locking the run: all of a release wave's jobs share one run, and a
    lock on its row held to each finishing transaction's commit made every worker of the fleet
    wait in line for it (bench/wave_sim.py). Inside the transaction the check sees this job's
    own change; a job finishing at the same moment in another transaction may hide it, so the
    check is repeated after the commit: of two jobs that finish together, the second commit's
    check starts after both commits and sees both (READ COMMITTED: each statement sees what
    was committed before it began). The reconciler finishes a run whose last check was lost
    with its process (finish_drained_runs)."""
    finish_run_if_drained(run_id, now=now)
    transaction.on_commit(partial(finish_run_if_drained, run_id, now=now))


def finish_run_if_drained(run_id: int, *, now) -> bool:
    """One conditional UPDATE: the run ends if it has no queued or running job left."""
    open_jobs = Job.objects.filter(
        run_id=run_id, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    )
    return bool(
        Run.objects.filter(
            ~Exists(open_jobs),
            pk=run_id,
            state__in=[Run.State.PLANNING, Run.State.RUNNING],
        ).update(state=Run.State.FINISHED, finished_at=now)
    )


def abandon_job(*, job_id: int, reason: str) -> Job | None:
    """The process running a job died (work-horse killed, worker lost, cold shutdown): a running
    job ends `error` with the reason and is retried. Idempotent: a job in any other state is
    left alone (one that died before it started is still `queued`; the reconciler finds it
    missing from Redis and enqueues it again)."""
    outcome = JobOutcome(verdict=Verdict.ERROR, error_message=reason)
    return finish_job(job_id=job_id, outcome=outcome)


@transaction.atomic
def cancel_job(*, job: Job, reason: str = "") -> Job | None:
    """queued|running -> cancelled, guarded. A running job's worker sees its result ignored.
    The cell goes back to the verdict it had before this job, when it still points here."""
    now = timezone.now()
    # Locked first: whether it was still queued decides what leaves the queued work.
    before = Job.objects.select_for_update().filter(pk=job.pk).values_list("status", flat=True)
    was_queued = before.first() == Job.Status.QUEUED
    updated = Job.objects.filter(
        Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING), pk=job.pk
    ).update(status=Job.Status.CANCELLED, finished_at=now, error_message=reason[:2000])
    if not updated:
        return None
    job.refresh_from_db()
    cell = _cell_rows(job).select_for_update().filter(latest_job=job).first()
    if cell is not None:
        if cell.previous_verdict:
            cell.verdict, cell.previous_verdict = cell.previous_verdict, ""
            cell.save(update_fields=["verdict", "previous_verdict", "updated_at"])
        else:
            cell.delete()  # nothing was ever decided for this cell
    if job.worker_id:
        WorkerProcess.objects.filter(pk=job.worker_id, current_job=job).update(current_job=None)
    _update_run_state(job.run_id, now=now)
    transaction.on_commit(lambda: withdraw_from_redis(job.rq_job_id, queue_name=job.queue_name))
    transaction.on_commit(partial(take_queued_work, ended_work(job, was_queued=was_queued)))
    return job
