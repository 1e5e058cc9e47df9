"""Dispatch: Job rows are written first, then pushed to their capability queue after commit.

PostgreSQL is the truth. Redis only carries ids ("distro-job-<pk>") of jobs that are `queued`
in the database; anything lost on the way (a failed push, a flushed Redis) is pushed again by
the reconciler, and a job delivered twice still runs once (see services/execution.py).
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.exceptions import NoSuchJobError
from rq.registry import StartedJobRegistry

from packages_app.models import Build
from packages_app.selectors.proposals import account_maintainers
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.services.bulk import insert_jobs
from testing_app.services.bulk import mark_cells_queued
from testing_app.services.bulk import mark_enqueued
from testing_app.services.queue_work import add_queued_work
from testing_app.services.queue_work import pushed_work
from testing_app.services.queues import queue_for_cell
from testing_app.services.queues import queue_serializer
from testing_app.services.rq_push import RqCall
from testing_app.services.rq_push import enqueue_calls
from testing_app.services.wave_order import fill_expected_durations
from testing_app.services.wave_order import push_order

logger = logging.getLogger(__name__)

EXECUTE_FUNCTION = "testing_app.jobs.rq_execute_job"
RQ_JOB_ID_PREFIX = "distro-job-"
# Results live in PostgreSQL; Redis keeps finished RQ jobs only long enough to debug with.
RESULT_TTL_S = 600
FAILURE_TTL_S = 7 * 24 * 3600
PUSH_CHUNK = 1000
RQ_TTLS = {"result_ttl": RESULT_TTL_S, "failure_ttl": FAILURE_TTL_S}


@dataclass(frozen=True)
class Dispatch:
    """What pushing one job to Redis needs (plain values: it outlives the transaction)."""

    pk: int
    queue_name: str
    timeout_s: int
    not_before: datetime | None = None
    # Push order (services/wave_order.py): priority, expected seconds, and whose work it is.
    priority: int = 0
    expected_s: float = 0.0
    share_key: int = 0
    # An install check's test, latent until the check ends (services/queue_work.py).
    unlocks_queue: str = ""
    unlocks_s: float = 0.0

    @property
    def rq_job_id(self) -> str:
        return f"{RQ_JOB_ID_PREFIX}{self.pk}"

    @classmethod
    def of(cls, job: Job, *, package_of: dict[int, int | None] | None = None) -> "Dispatch":
        """Packages take turns within a push; without the build -> package map, each build
        stands for its package."""
        share_key = (package_of or {}).get(job.build_id) or job.build_id
        return cls(
            job.pk,
            job.queue_name,
            job.timeout_s,
            job.not_before,
            priority=job.priority,
            expected_s=job.expected_s,
            share_key=share_key,
            unlocks_queue=job.unlocks_queue,
            unlocks_s=job.unlocks_s,
        )


def job_pk_from_rq_id(rq_job_id: str) -> int | None:
    """The Job pk of one of our RQ ids, None for anyone else's job."""
    if not rq_job_id.startswith(RQ_JOB_ID_PREFIX):
        return None
    tail = rq_job_id[len(RQ_JOB_ID_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def rq_queue(name: str) -> Queue:
    """An RQ queue of any name; django_rq.get_queue knows only the static RQ_QUEUES. A host
    queue's jobs are written as JSON (services/queues.py queue_serializer)."""
    return Queue(
        name,
        connection=django_rq.get_connection("default"),
        is_async=not settings.RQ_SYNC,
        serializer=queue_serializer(name),
    )


@transaction.atomic
def enqueue_jobs(*, run: Run, jobs: Sequence[Job]) -> list[Job]:
    """Write `jobs` (unsaved Job instances naming their cell) into `run` and queue them.

    Each job needs `kind`, `build`, `torch_release`, `variant`, `platform` (objects or *_id) and
    may set `python`, `pinned_build`, `extra_specs`, `required_runner`, `priority`,
    `timeout_s`, `max_attempts`.
    This fills `queue_name` from the cell's capability (test.<subdir>.<variant>, or `install`),
    creates the rows in bulk, marks each cell `queued` in CellResult, and pushes the jobs to
    Redis after the transaction commits (never before: a worker must find the row). Returns
    the saved jobs. Raises ValidationError on a job that names no cell or an unknown kind.
    """
    if not jobs:
        return []
    variant_names = dict(
        Variant.objects.filter(pk__in={j.variant_id for j in jobs}).values_list("pk", "name")
    )
    subdirs = dict(
        Platform.objects.filter(pk__in={j.platform_id for j in jobs}).values_list("pk", "subdir")
    )
    package_of = dict(
        Build.objects.filter(pk__in={j.build_id for j in jobs}).values_list("pk", "package_id")
    )
    now = timezone.now()
    for job in jobs:
        _prepare(job, run=run, subdir=subdirs.get(job.platform_id), variant=variant_names, now=now)
    fill_expected_durations(jobs, package_of=package_of)
    created = insert_jobs(jobs)
    mark_cells_queued(created)
    if run.state == Run.State.PLANNING:
        Run.objects.filter(pk=run.pk, state=Run.State.PLANNING).update(
            state=Run.State.RUNNING, started_at=timezone.now()
        )
    dispatches = [Dispatch.of(job, package_of=package_of) for job in created]
    transaction.on_commit(lambda: push_after_commit(dispatches, stamp=False))
    return created


def _prepare(
    job: Job, *, run: Run, subdir: str | None, variant: dict[int, str], now: datetime
) -> None:
    if job.kind not in Job.Kind.values:
        raise ValidationError(f"Unknown job kind {job.kind!r}.")
    if not (job.build_id and job.torch_release_id and subdir and job.variant_id in variant):
        raise ValidationError("Every job needs a build, a PyTorch release, a variant, a platform.")
    job.run_id = run.pk
    job.status = Job.Status.QUEUED
    job.verdict = ""
    job.enqueued_at = now
    job.queue_name = queue_for_cell(
        kind=job.kind,
        subdir=subdir,
        variant_name=variant[job.variant_id],
        runner=job.required_runner if job.kind == Job.Kind.TEST else "",
    )
    # The queue of the test a passing check queues (install_checks.enqueue_test_after_check:
    # this cell, this runner, routed here again as a test).
    job.unlocks_queue = (
        queue_for_cell(
            kind=Job.Kind.TEST,
            subdir=subdir,
            variant_name=variant[job.variant_id],
            runner=job.required_runner,
        )
        if job.kind == Job.Kind.INSTALL_CHECK
        else ""
    )


def push_after_commit(dispatches: Sequence[Dispatch], *, stamp: bool = True) -> None:
    """The on-commit half of enqueue_jobs: a Redis failure here loses nothing (the rows are
    committed; their `enqueued_at` is cleared to show they are not in Redis) and the
    reconciler pushes them later, so it is logged, with the count, instead of failing a
    request whose data is already saved."""
    try:
        push_jobs(dispatches, stamp=stamp)
    except RedisError:
        logger.exception(
            "could not push %d committed jobs to Redis; the reconciler will enqueue them",
            len(dispatches),
        )
        Job.objects.filter(pk__in=[d.pk for d in dispatches], status=Job.Status.QUEUED).update(
            enqueued_at=None
        )


def push_jobs(dispatches: Iterable[Dispatch], *, stamp: bool = True) -> int:
    """Put jobs into their RQ queues: `enqueue_many` per queue for jobs due now, `enqueue_at`
    (RQ's scheduler, run by every distro_worker) for retries waiting out a backoff. Stamps
    `enqueued_at` unless the caller already did (enqueue_jobs writes it with the rows, which
    saves updating 100,000 rows again). Each queue gets its jobs in push_order (longest first,
    packages in turn) and counts their expected work, and an install check's test counts in
    its test queue, in the push's own pipeline (services/queue_work.py). Returns how many were
    pushed."""
    due, later = defaultdict(list), []
    now = timezone.now()
    for dispatch in dispatches:
        if dispatch.not_before and dispatch.not_before > now:
            later.append(dispatch)
        else:
            due[dispatch.queue_name].append(dispatch)
    pushed: list[int] = []
    connection = django_rq.get_connection("default")
    for name, unordered in due.items():
        queue = rq_queue(name)
        items = push_order(unordered)
        for start in range(0, len(items), PUSH_CHUNK):
            chunk = items[start : start + PUSH_CHUNK]
            with connection.pipeline() as pipe:
                if queue.is_async:
                    add_queued_work(pipe, pushed_work(chunk))
                if queue.is_async:
                    calls = [_rq_call(d) for d in chunk]
                    enqueue_calls(
                        queue, calls, func_name=EXECUTE_FUNCTION, pipeline=pipe, **RQ_TTLS
                    )
                else:  # RQ_SYNC (the demo without redis-server): RQ runs each job right here
                    queue.enqueue_many([_enqueue_data(d) for d in chunk], pipeline=pipe)
                pipe.execute()
            pushed.extend(d.pk for d in chunk)
    for dispatch in later:
        queue = rq_queue(dispatch.queue_name)
        with connection.pipeline() as pipe:
            queue.enqueue_at(
                dispatch.not_before,
                EXECUTE_FUNCTION,
                dispatch.pk,
                job_id=dispatch.rq_job_id,
                job_timeout=dispatch.timeout_s + settings.JOB_TIMEOUT_MARGIN_S,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                pipeline=pipe,
            )
            if queue.is_async:
                add_queued_work(pipe, pushed_work([dispatch]))
            pipe.execute()
        pushed.append(dispatch.pk)
    if pushed and stamp:
        mark_enqueued(pushed)
    return len(pushed)


def withdraw_from_redis(rq_job_id: str, *, queue_name: str) -> None:
    """Take a cancelled job out of Redis: out of its queue if it waits there, and its work-horse
    stopped if it runs. Best effort by design: were it delivered anyway, the guarded start
    finds it cancelled and does nothing, so a Redis error is only logged."""
    connection = django_rq.get_connection("default")
    try:
        rq_queue(queue_name).remove(rq_job_id)
        if rq_job_id in StartedJobRegistry(queue_name, connection=connection).get_job_ids():
            send_stop_job_command(connection, rq_job_id)
    except (RedisError, InvalidJobOperation, NoSuchJobError) as exc:
        logger.warning("could not withdraw %s from Redis: %s", rq_job_id, exc)


def _rq_call(dispatch: Dispatch) -> RqCall:
    return RqCall(
        job_id=dispatch.rq_job_id,
        args=(dispatch.pk,),
        description=f"job {dispatch.pk} on {dispatch.queue_name}",
        timeout=dispatch.timeout_s + settings.JOB_TIMEOUT_MARGIN_S,
    )


def _enqueue_data(dispatch: Dispatch):
    """RQ's own path for one job (what enqueue_calls writes faster; the tests compare both)."""
    call = _rq_call(dispatch)
    return Queue.prepare_data(
        EXECUTE_FUNCTION,
        args=call.args,
        job_id=call.job_id,
        timeout=call.timeout,
        description=call.description,
        **RQ_TTLS,
    )


def user_may_retry_job(user, job: Job) -> bool:
    """Release managers (permission testing_app.retry_any_job) retry any job; a maintainer
    retries the jobs of the packages they maintain."""
    if not user.is_authenticated:
        return False
    if user.has_perm("testing_app.retry_any_job"):
        return True
    return Build.objects.filter(
        pk=job.build_id, package__maintainers__in=account_maintainers(user)
    ).exists()


@transaction.atomic
def retry_job(*, job: Job, requested_by) -> Job:
    """A person asks to run a finished job's cell again: a new Run (trigger `retry`) with one
    new job. Rate-limited per person (MANUAL_RETRY_LIMIT_PER_HOUR), and refused while the cell
    already has a job in flight."""
    job = Job.objects.get(pk=job.pk)  # decide on the current state, not the caller's copy
    if not user_may_retry_job(requested_by, job):
        raise ValidationError("Only the package's maintainers and release managers may retry it.")
    if job.status not in (Job.Status.FINISHED, Job.Status.CANCELLED):
        raise ValidationError(f"Job {job.pk} is still {job.status}; retry it once it has ended.")
    # Serialise this person's retries, so two quick clicks cannot both pass the limit.
    get_user_model().objects.select_for_update().filter(pk=requested_by.pk).first()
    since = timezone.now() - timedelta(hours=1)
    recent = Run.objects.filter(
        trigger=Run.Trigger.RETRY, triggered_by=requested_by, created_at__gte=since
    ).count()
    if recent >= settings.MANUAL_RETRY_LIMIT_PER_HOUR:
        raise ValidationError(
            f"Retry limit reached: {settings.MANUAL_RETRY_LIMIT_PER_HOUR} per hour. "
            "Try again later."
        )
    in_flight = Job.objects.filter(
        Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING),
        kind=job.kind,
        build_id=job.build_id,
        torch_release_id=job.torch_release_id,
        variant_id=job.variant_id,
        platform_id=job.platform_id,
        python=job.python,
    )
    if in_flight.exists():
        raise ValidationError("This cell already has a job queued or running.")
    run = Run.objects.create(
        trigger=Run.Trigger.RETRY,
        triggered_by=requested_by,
        trigger_detail=f"retry of job {job.pk}",
        trigger_build_id=job.build_id,
        torch_release_id=job.torch_release_id,
    )
    (retry,) = enqueue_jobs(run=run, jobs=[clone_cell(job, retry_of=job)])
    return retry


def clone_cell(job: Job, **overrides) -> Job:
    """A new, unsaved job on the same cell with the same settings."""
    fields = {
        "kind": job.kind,
        "build_id": job.build_id,
        "torch_release_id": job.torch_release_id,
        "variant_id": job.variant_id,
        "platform_id": job.platform_id,
        "python": job.python,
        "pinned_build_id": job.pinned_build_id,
        "extra_specs": job.extra_specs,
        "planning_note": job.planning_note,
        "required_runner": job.required_runner,
        "priority": job.priority,
        # expected_s is left out: the clone's kind may differ; enqueue_jobs estimates it anew.
        "timeout_s": job.timeout_s,
        "max_attempts": job.max_attempts,
        "queue_name": job.queue_name,
    }
    fields.update(overrides)
    return Job(**fields)
