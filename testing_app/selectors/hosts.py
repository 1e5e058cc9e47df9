"""Hosts: their state and current job, daily throughput and failure rate, and queue depths.

Queue depth is read from PostgreSQL (queued Job rows, the source of truth) and, beside it, from
Redis (what RQ holds), so a difference that the reconciler should repair is visible.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import date
from datetime import timedelta

import django_rq
from django.db import connection
from django.db.models import Count
from django.db.models import Q
from django.db.models import Sum
from django.utils import timezone
from rattler import Version
from rattler.exceptions import InvalidVersionError
from redis.exceptions import RedisError
from rq import Queue

from packages_app.models import Package
from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import JobDayCount
from testing_app.models import Notification
from testing_app.models import Variant
from testing_app.planner.gpu_arch import family_name
from testing_app.planner.gpu_arch import sm_name
from testing_app.planner.gpu_arch import variant_support
from testing_app.selectors.matrix import PROBLEM_VERDICTS

logger = logging.getLogger(__name__)

STATS_DAYS = 14


@dataclass(frozen=True)
class RefusedQueue:
    queue: str
    reason: str


@dataclass
class GpuRouting:
    """One GPU of a host: its architecture and the CUDA queues its worker does not serve."""

    index: int
    name: str
    memory_mib: int | None
    compute_capability: str
    refused: list[RefusedQueue] = field(default_factory=list)
    mig_devices: list[dict] = field(default_factory=list)

    @property
    def sm(self) -> str:
        return sm_name(self.compute_capability)

    @property
    def family(self) -> str:
        return family_name(self.compute_capability)


@dataclass
class HostRow:
    host: Host
    current_jobs: list[Job] = field(default_factory=list)
    gpus: list[GpuRouting] = field(default_factory=list)


def _version(text: str) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersionError:
        return None


def _cuda_refusal(host: Host, variant: Variant, capability: str, releases: list[str]) -> str:
    """Why a worker of this GPU does not serve the variant's queue ("" if it does); the same
    two tests as services.queues.serves_variant: driver CUDA, then architecture."""
    have = _version(host.max_cuda)
    need = _version(variant.min_driver_cuda or variant.accelerator_version)
    if have is None or need is None or have < need:
        return f"driver supports CUDA {host.max_cuda or '?'}, needs {need or '?'}"
    support = variant_support(
        cuda_version=variant.accelerator_version or variant.min_driver_cuda,
        subdir=host.platform.subdir,
        capability=capability,
        torch_versions=releases,
    )
    return "" if support.supported else f"{sm_name(capability)}: {support.reason}"


def gpu_routing(hosts: list[Host]) -> dict[int, list[GpuRouting]]:
    """For each host, each GPU with the CUDA queues of its platform it cannot serve and why
    (two queries for all hosts: variants and their releases)."""
    variants = list(
        Variant.objects.filter(kind=Variant.Kind.CUDA)
        .prefetch_related("torch_releases")
        .order_by("sort_order", "name")
    )
    releases = {v.pk: [r.version for r in v.torch_releases.all()] for v in variants}
    routing: dict[int, list[GpuRouting]] = {}
    for host in hosts:
        rows = []
        for gpu in host.gpus or []:
            capability = gpu.get("compute_capability", "")
            row = GpuRouting(
                index=gpu.get("index", 0),
                name=gpu.get("name", ""),
                memory_mib=gpu.get("memory_mib"),
                compute_capability=capability,
                mig_devices=list(gpu.get("mig_devices") or []),
            )
            for variant in variants:
                reason = _cuda_refusal(host, variant, capability, releases[variant.pk])
                if reason:
                    # services.queues.capability_queue_name's format (selectors import no
                    # services); a test compares the two.
                    queue = f"test.{host.platform.subdir}.{variant.name}"
                    row.refused.append(RefusedQueue(queue=queue, reason=reason))
            rows.append(row)
        routing[host.pk] = rows
    return routing


def list_hosts() -> list[HostRow]:
    """Every host with the jobs it is running now and its GPUs' routing (four queries)."""
    hosts = list(Host.objects.select_related("platform").order_by("name"))
    running = (
        Job.objects.filter(status=Job.Status.RUNNING, host__in=[h.pk for h in hosts])
        .select_related("build", "torch_release", "variant")
        .only(
            "id",
            "host_id",
            "gpu_index",
            "started_at",
            "build__name",
            "build__version",
            "torch_release__version",
            "variant__name",
        )
        .order_by("started_at")
    )
    by_host: dict[int, list[Job]] = {}
    for job in running:
        by_host.setdefault(job.host_id, []).append(job)
    routing = gpu_routing(hosts)
    return [
        HostRow(host=h, current_jobs=by_host.get(h.pk, []), gpus=routing.get(h.pk, []))
        for h in hosts
    ]


@dataclass(frozen=True)
class QueueDepth:
    name: str
    queued_in_db: int
    in_redis: int | None  # None when Redis could not be read
    online_hosts: int

    @property
    def unserved(self) -> bool:
        return self.online_hosts == 0


@dataclass
class QueueReport:
    queues: list[QueueDepth]
    redis_error: str = ""


def _redis_counts(names: list[str]) -> list[int]:
    """Each queue's length (what RQ's Queue.count reads), in one round trip for all queues."""
    connection = django_rq.get_connection("default")
    pipeline = connection.pipeline(transaction=False)
    for name in names:
        pipeline.llen(Queue(name, connection=connection).key)
    return pipeline.execute()


def get_queue_depths(
    hosts: list[Host], *, redis_counts: Callable[[list[str]], list[int]] = _redis_counts
) -> QueueReport:
    """Every capability queue (from queued jobs and hosts' queue lists) with its depth and how
    many online hosts serve it. One query; one Redis round trip for every queue."""
    queued = dict(
        Job.objects.filter(status=Job.Status.QUEUED)
        .order_by()
        .values_list("queue_name")
        .annotate(n=Count("pk"))
    )
    online = [h for h in hosts if h.effective_state == Host.State.ACTIVE]
    names = set(queued)
    for host in hosts:
        names.update(host.queues)
    names = sorted(names)
    report = QueueReport(queues=[])
    in_redis: list[int | None] = [None] * len(names)
    try:
        in_redis = list(redis_counts(names))
    except RedisError as exc:
        logger.warning("Redis unreachable while reading %d queues: %s", len(names), exc)
        report.redis_error = f"Redis could not be read: {exc}"
    for name, length in zip(names, in_redis, strict=True):
        report.queues.append(
            QueueDepth(
                name=name,
                queued_in_db=queued.get(name, 0),
                in_redis=length,
                online_hosts=sum(1 for h in online if name in h.queues),
            )
        )
    return report


@dataclass(frozen=True)
class HostDay:
    host: str
    day: date
    jobs: int
    problems: int


def get_host_daily_stats(*, days: int = STATS_DAYS) -> list[HostDay]:
    """Jobs finished per host and UTC day over the last `days` days (today included), with how
    many were problems: one grouped read of the daily counts (JobDayCount), not of the jobs."""
    first_day = timezone.now().date() - timedelta(days=days - 1)
    rows = (
        JobDayCount.objects.filter(day__gte=first_day, host__isnull=False)
        .order_by()
        .values_list("host__name", "day")
        .annotate(n=Sum("jobs"), problems=Sum("jobs", filter=Q(verdict__in=PROBLEM_VERDICTS)))
    )
    return sorted(
        (HostDay(host=h, day=d, jobs=n, problems=p or 0) for h, d, n, p in rows),
        key=lambda r: (r.host, r.day),
    )


def database_role_writes_follow_ups() -> bool:
    """Whether this process's database role may write what a finished job's follow-ups write
    (notices, a package's status): false under a host's limited role (manage.py host_db_role),
    which then needs HOST_LIMITED_ROLE. Other databases (the SQLite demo) have no roles."""
    if connection.vendor != "postgresql":
        return True
    tables = [Notification._meta.db_table, Package._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bool_and(has_table_privilege(t, 'INSERT') AND has_table_privilege(t, 'UPDATE'))"
            " FROM unnest(%s::text[]) AS t",
            [tables],
        )
        return bool(cursor.fetchone()[0])
