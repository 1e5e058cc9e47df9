"""The reconciler: make Redis agree with PostgreSQL again, whatever happened to either side.

1. Workers that stopped heartbeating are lost: the jobs they were running end `error (worker
   lost)` and are retried. So are running jobs of workers that shut down mid-job.
2. Every `queued` job missing from Redis (Redis restarted empty, flushed, a push that failed
   after commit) is pushed again, with its own id, so it is never queued twice.
3. Scheduled retries whose backoff is over but which RQ's scheduler has not moved to their queue
   (the scheduler died with its worker and its locks outlive it; RQ's workers only try to take
   them over every maintenance tick, about 10 minutes) are moved now.
4. RQ entries of ours that no longer match a queued or running job are removed.
5. Each queue's remaining work (services/queue_work.py) is recounted from the queued rows and
   the install checks still queued or running (the tests they unlock).
6. A running run without a queued or running job left is finished (its last job's check
   after commit was lost with its process: services/execution.py, _update_run_state).
A worker starting on a host also ends, at once, the jobs of that host's earlier worker processes
whose process is gone (`recover_dead_workers_of_host`), instead of WORKER_LOST_AFTER_S later.
It runs periodically (RQ cron, see testing_app/management/cron.py) and as `manage.py reconcile`.
"""

import logging
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db.models import Exists
from django.db.models import OuterRef
from django.db.models import Q
from django.utils import timezone
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.registry import ScheduledJobRegistry
from rq.registry import StartedJobRegistry

from testing_app.models import Job
from testing_app.models import Run
from testing_app.models import WorkerProcess
from testing_app.services.dispatch import RQ_JOB_ID_PREFIX
from testing_app.services.dispatch import Dispatch
from testing_app.services.dispatch import job_pk_from_rq_id
from testing_app.services.dispatch import push_jobs
from testing_app.services.execution import abandon_job
from testing_app.services.execution import finish_run_if_drained
from testing_app.services.execution import run_due_follow_ups
from testing_app.services.hosts import stop_worker
from testing_app.services.queue_work import recount_queued_work

logger = logging.getLogger(__name__)

READ_CHUNK = 5000


@dataclass(frozen=True)
class ReconcileReport:
    lost_workers: int
    lost_jobs: int
    restored: int
    orphans_removed: int
    overdue_released: int = 0

    def __str__(self) -> str:
        return (
            f"{self.lost_workers} lost workers, {self.lost_jobs} lost jobs retried, "
            f"{self.restored} queued jobs restored to Redis, "
            f"{self.overdue_released} overdue scheduled retries released, "
            f"{self.orphans_removed} orphaned RQ entries removed"
        )


def reconcile(*, grace_s: int | None = None) -> ReconcileReport:
    """Run the three repairs in order and report what each changed."""
    lost_workers, lost_jobs = recover_lost_work()
    restored = restore_queued_jobs(
        grace_s=settings.RECONCILE_GRACE_S if grace_s is None else grace_s
    )
    released = release_overdue_retries()
    removed = remove_orphaned_entries()
    recount_queued_work()
    finish_drained_runs()
    run_due_follow_ups()
    report = ReconcileReport(lost_workers, lost_jobs, restored, removed, released)
    if lost_workers or lost_jobs or restored or removed or released:
        logger.warning("reconciler: %s", report)
    return report


def finish_drained_runs() -> int:
    """Finish every running run that has no queued or running job. Returns how many."""
    now = timezone.now()
    open_jobs = Job.objects.filter(
        run_id=OuterRef("pk"), status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    )
    # Only running runs: a planning run may still be getting its jobs.
    candidates = Run.objects.filter(~Exists(open_jobs), state=Run.State.RUNNING).values_list(
        "pk", flat=True
    )
    return sum(finish_run_if_drained(run_id, now=now) for run_id in candidates)


def recover_lost_work() -> tuple[int, int]:
    """Mark silent workers lost; end their running jobs (and those of stopped workers) as
    `error` and retry them. Returns (workers marked lost, jobs recovered)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    silent = WorkerProcess.objects.filter(stopped_at__isnull=True).filter(
        Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    lost_names = {}
    for worker in silent.only("pk", "name", "last_heartbeat_at"):
        seen = worker.last_heartbeat_at.isoformat() if worker.last_heartbeat_at else "never"
        # Guarded by the same condition: a heartbeat that arrived meanwhile keeps it alive.
        if WorkerProcess.objects.filter(
            pk=worker.pk, stopped_at__isnull=True, last_heartbeat_at=worker.last_heartbeat_at
        ).exists():
            stop_worker(worker_id=worker.pk, reason=f"lost: no heartbeat since {seen}")
            lost_names[worker.pk] = f"{worker.name}, silent since {seen}"
    orphaned = Job.objects.filter(status=Job.Status.RUNNING).filter(
        Q(worker__stopped_at__isnull=False)
        | Q(worker__isnull=True, started_at__lt=now - timedelta(seconds=_longest_job_s()))
    )
    recovered = 0
    for job_id, worker_id, worker_name in orphaned.values_list("pk", "worker_id", "worker_name"):
        detail = lost_names.get(worker_id) or worker_name or "no worker recorded"
        if abandon_job(job_id=job_id, reason=f"Worker lost ({detail})."):
            recovered += 1
    return len(lost_names), recovered


def recover_dead_workers_of_host(*, host_id: int, alive: Callable[[int], bool]) -> int:
    """A worker starting on a host sees which earlier worker processes of that host are gone
    (`alive(pid)` false: killed with -9, the machine rebooted): they are stopped and their
    running jobs end `error (worker lost)` and are retried now. A reused pid reads as alive and
    is left to the heartbeat timeout, which is the safe side. Returns the jobs recovered."""
    recovered = 0
    workers = WorkerProcess.objects.filter(host_id=host_id, stopped_at__isnull=True)
    for worker_id, name, pid in workers.exclude(pid=None).values_list("pk", "name", "pid"):
        if alive(pid):
            continue
        stop_worker(worker_id=worker_id, reason="lost: its process is gone (seen on restart)")
        running = Job.objects.filter(status=Job.Status.RUNNING, worker_id=worker_id)
        for job_id in running.values_list("pk", flat=True):
            if abandon_job(job_id=job_id, reason=f"Worker lost ({name}, its process is gone)."):
                recovered += 1
    return recovered


def release_overdue_retries(*, slack_s: float = 5.0) -> int:
    """Move our scheduled jobs whose time has come (by more than `slack_s`) from RQ's scheduled
    registry to their queue, as RQ's scheduler would have. A live scheduler doing the same at
    the same moment can at worst push one twice; the guarded queued -> running transition runs
    it once."""
    due = timezone.now() - timedelta(seconds=slack_s)
    queue_names = set(
        Job.objects.filter(status=Job.Status.QUEUED, not_before__lte=due)
        .values_list("queue_name", flat=True)
        .distinct()
    )
    released = 0
    connection = django_rq.get_connection("default")
    for queue_name in sorted(queue_names):
        queue = Queue(queue_name, connection=connection)
        registry = ScheduledJobRegistry(queue=queue)
        overdue = [
            rq_id
            for rq_id in registry.get_jobs_to_schedule(timestamp=int(due.timestamp()))
            if rq_id.startswith(RQ_JOB_ID_PREFIX)
        ]
        for rq_id, status in _statuses(overdue).items():
            job = queue.fetch_job(rq_id)
            if status != Job.Status.QUEUED or job is None:
                continue
            registry.remove(job)
            queue.enqueue_job(job)
            released += 1
    return released


def _longest_job_s() -> int:
    # A job started by a plain rqworker (no heartbeat row) is lost once RQ itself would have
    # killed it: the largest job timeout plus the margin RQ is given.
    longest = Job.objects.filter(status=Job.Status.RUNNING).order_by("-timeout_s").first()
    return (longest.timeout_s if longest else 0) + settings.JOB_TIMEOUT_MARGIN_S + 60


def restore_queued_jobs(*, grace_s: int) -> int:
    """Push every `queued` job older than `grace_s` that Redis does not hold. Reads PostgreSQL
    first, then Redis, so a job dequeued in between is found in the started registry."""
    cutoff = timezone.now() - timedelta(seconds=grace_s)
    candidates = Job.objects.filter(status=Job.Status.QUEUED, created_at__lte=cutoff)
    by_queue: dict[str, list[Dispatch]] = {}
    fields = (
        "pk",
        "queue_name",
        "timeout_s",
        "not_before",
        "priority",
        "expected_s",
        "build_id",
        "unlocks_queue",
        "unlocks_s",
    )
    for row in candidates.values_list(*fields, named=True).iterator(chunk_size=READ_CHUNK):
        by_queue.setdefault(row.queue_name, []).append(
            Dispatch(
                row.pk,
                row.queue_name,
                row.timeout_s,
                row.not_before,
                priority=row.priority,
                expected_s=row.expected_s,
                share_key=row.build_id,
                unlocks_queue=row.unlocks_queue,
                unlocks_s=row.unlocks_s,
            )
        )
    missing: list[Dispatch] = []
    for queue_name, dispatches in by_queue.items():
        held = _ids_held(queue_name)
        missing.extend(d for d in dispatches if d.rq_job_id not in held)
    return push_jobs(missing) if missing else 0


def _ids_held(queue_name: str) -> set[str]:
    """Every job id Redis holds for a queue: waiting, being dequeued, scheduled or started."""
    connection = django_rq.get_connection("default")
    queue = Queue(queue_name, connection=connection)
    with connection.pipeline() as pipe:
        pipe.lrange(queue.key, 0, -1)
        pipe.lrange(queue.intermediate_queue_key, 0, -1)
        pipe.zrange(ScheduledJobRegistry(queue=queue).key, 0, -1)
        pipe.zrange(StartedJobRegistry(queue=queue).key, 0, -1)
        results = pipe.execute()
    held = set()
    for ids in results:
        # The started registry stores "<job id>:<execution id>" members in rq >= 2.
        held.update(raw.decode().split(":", 1)[0] for raw in ids)
    return held


def remove_orphaned_entries() -> int:
    """Remove our ids that Redis holds for jobs PostgreSQL no longer has queued (or running,
    for the started registry): cancelled, finished, deleted, or already recorded failures."""
    connection = django_rq.get_connection("default")
    removed = 0
    for queue in Queue.all(connection=connection):
        removed += _clean_list(queue, keep={Job.Status.QUEUED})
        removed += _clean_registry(
            ScheduledJobRegistry(queue=queue), queue, keep={Job.Status.QUEUED}
        )
        removed += _clean_registry(
            StartedJobRegistry(queue=queue), queue, keep={Job.Status.QUEUED, Job.Status.RUNNING}
        )
        removed += _clean_registry(FailedJobRegistry(queue=queue), queue, keep=set())
    return removed


def _statuses(rq_ids: Iterable[str]) -> dict[str, str]:
    pks = {job_pk_from_rq_id(i): i for i in rq_ids}
    pks.pop(None, None)
    found = dict(Job.objects.filter(pk__in=list(pks)).values_list("pk", "status"))
    return {rq_id: found.get(pk, "") for pk, rq_id in pks.items()}


def _clean_list(queue: Queue, *, keep: set[str]) -> int:
    ids = [i for i in queue.get_job_ids() if i.startswith(RQ_JOB_ID_PREFIX)]
    removed = 0
    for rq_id, status in _statuses(ids).items():
        if status not in keep:
            queue.remove(rq_id)
            queue.connection.delete(f"{queue.job_class.redis_job_namespace_prefix}{rq_id}")
            removed += 1
    return removed


def _clean_registry(registry, queue: Queue, *, keep: set[str]) -> int:
    members = queue.connection.zrange(registry.key, 0, -1)
    ids = {m.decode().split(":", 1)[0]: m for m in members}
    ours = [i for i in ids if i.startswith(RQ_JOB_ID_PREFIX)]
    removed = 0
    for rq_id, status in _statuses(ours).items():
        if status not in keep:
            queue.connection.zrem(registry.key, ids[rq_id])
            removed += 1
    return removed
