"""The rollups (per-package verdict counts, jobs per day) always equal what they count.

Random sequences of job lifecycles go through the real services (enqueue_jobs' COPY and cell
upsert, start_job, finish_job with retries, cancel_job, the planner's not_applicable upsert,
waivers' QuerySet.update, a retry by hand, cascade deletes of builds and hosts); after every step
the stored counts are compared with the same counts recomputed from CellResult and Job in Python.
"""

import random
from collections import Counter
from datetime import UTC
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from packages_app.models import Build
from testing_app.models import CellResult
from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import JobDayCount
from testing_app.models import PackageVerdictCount
from testing_app.models import Verdict
from testing_app.models import Waiver
from testing_app.models import WorkerProcess
from testing_app.planner.types import PlannedCell
from testing_app.selectors.hosts import STATS_DAYS
from testing_app.selectors.hosts import get_host_daily_stats
from testing_app.selectors.matrix import PROBLEM_VERDICTS
from testing_app.selectors.matrix import MatrixFilters
from testing_app.selectors.matrix import get_results_matrix
from testing_app.selectors.matrix import list_matrix_packages
from testing_app.selectors.trends import TREND_DAYS
from testing_app.selectors.trends import get_daily_verdicts
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.dispatch import retry_job
from testing_app.services.execution import JobOutcome
from testing_app.services.execution import cancel_job
from testing_app.services.execution import finish_job
from testing_app.services.execution import start_job
from testing_app.services.planning import write_not_applicable
from testing_app.services.waivers import grant_waiver
from testing_app.services.waivers import revoke_waiver
from tests import factories
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

FINISH_VERDICTS = [
    Verdict.PASSED,
    Verdict.FAILED,
    Verdict.UNINSTALLABLE,
    Verdict.ERROR,
    Verdict.TIMEOUT,
    Verdict.NO_TESTS,
]


def recomputed_package_counts() -> Counter:
    counts: Counter = Counter()
    for cell in CellResult.objects.filter(package__isnull=False).select_related("build"):
        counts[(cell.package_id, cell.build.version, cell.torch_release_id, cell.verdict)] += 1
    return counts


def stored_package_counts() -> Counter:
    rows = PackageVerdictCount.objects.values_list(
        "package_id", "version", "torch_release_id", "verdict", "cells"
    )
    assert all(n > 0 for *_, n in rows), "a stored count of zero must be deleted"
    return Counter({tuple(key): n for *key, n in rows})


def recomputed_job_counts() -> Counter:
    counts: Counter = Counter()
    for job in Job.objects.filter(finished_at__isnull=False):
        day = job.finished_at.astimezone(UTC).date()
        counts[(day, job.host_id, job.kind, job.verdict)] += 1
    return counts


def stored_job_counts() -> Counter:
    rows = JobDayCount.objects.values_list("day", "host_id", "kind", "verdict", "jobs")
    assert all(n > 0 for *_, n in rows), "a stored count of zero must be deleted"
    return Counter({tuple(key): n for *key, n in rows})


def assert_rollups_exact(step: str) -> None:
    assert stored_package_counts() == recomputed_package_counts(), step
    assert stored_job_counts() == recomputed_job_counts(), step


class World:
    """Two packages x two versions (one build each) x two releases, one CPU variant on linux-64,
    two hosts able to run it."""

    def __init__(self):
        platform = factories.PlatformFactory(subdir="linux-64")
        self.variant = factories.VariantFactory(name="cpu", kind="cpu")
        self.releases = [factories.TorchReleaseFactory(version=v) for v in ("2.5.1", "2.6.0")]
        self.platform = platform
        self.builds = []
        for name in ("alpha", "beta"):
            package = factories.PackageFactory(name=name)
            for version in ("1.0", "2.0"):
                self.builds.append(
                    factories.BuildFactory(name=name, version=version, package=package)
                )
        self.hosts = [
            factories.HostFactory(platform=platform, gpus=[], max_cuda="") for _ in range(2)
        ]
        self.workers = [
            WorkerProcess.objects.create(
                host=host, name=f"{host.name}.cpu", queues=["test.linux-64.cpu"]
            )
            for host in self.hosts
        ]
        # A release manager: may waive, revoke and retry anything.
        self.user, _ = get_user_model().objects.get_or_create(
            username="rollup-admin", defaults={"is_staff": True, "is_superuser": True}
        )

    def live_worker(self, pick: int) -> WorkerProcess | None:
        """A worker of a host not deleted yet, or (one pick in three) none: a job without host."""
        live = [w for w in self.workers if Host.objects.filter(pk=w.host_id).exists()]
        return live[pick % len(live)] if live and pick % 3 != 2 else None

    def cell(self, build_index: int, release_index: int) -> dict:
        return {
            "build": self.builds[build_index % len(self.builds)],
            "torch_release": self.releases[release_index % len(self.releases)],
            "variant": self.variant,
            "platform": self.platform,
        }


# Operations, weighted: jobs are enqueued and finished more often than the rest happens.
OPERATIONS = {
    "enqueue": 4,
    "start": 1,
    "finish": 4,
    "cancel": 1,
    "not_applicable": 1,
    "waive": 1,
    "revoke": 1,
    "retry": 1,
    "delete_build": 1,
    "delete_host": 1,
}
STEPS_PER_SEQUENCE = 40


def draw_steps(rng) -> list[tuple[str, int, int, int]]:
    """A sequence of (operation, three numbers that pick what it acts on), drawn from a random
    generator with a seed from Hypothesis. Drawing the steps themselves with Hypothesis gave
    mostly short runs of the first operation, which never reach the interesting states."""
    names, weights = zip(*OPERATIONS.items(), strict=True)
    return [
        (
            rng.choices(names, weights)[0],
            rng.randrange(8),
            rng.randrange(8),
            rng.randrange(len(FINISH_VERDICTS)),
        )
        for _ in range(STEPS_PER_SEQUENCE)
    ]


def apply_step(world: World, operation: str, a: int, b: int, c: int) -> None:
    if operation == "enqueue":
        # A run of its own: one attempt per cell and run is the planner's rule.
        enqueue_jobs(run=factories.RunFactory(), jobs=[Job(kind="test", **world.cell(a, b))])
    elif operation == "start":
        job = Job.objects.filter(status=Job.Status.QUEUED).order_by("pk").first()
        if job is not None:
            start_job(job_id=job.pk, worker=world.live_worker(a))
    elif operation == "finish":
        job = Job.objects.filter(status=Job.Status.RUNNING).order_by("pk").first()
        if job is None:  # start one first, so that most sequences reach a verdict
            job = Job.objects.filter(status=Job.Status.QUEUED).order_by("pk").first()
            if job is not None:
                start_job(job_id=job.pk, worker=world.live_worker(a))
        if job is not None:
            finish_job(job_id=job.pk, outcome=JobOutcome(verdict=FINISH_VERDICTS[c]))
    elif operation == "cancel":
        job = Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).first()
        if job is not None:
            cancel_job(job=job, reason="property test")
    elif operation == "not_applicable":
        cell = world.cell(a, b)
        write_not_applicable(
            [
                PlannedCell(
                    build_id=cell["build"].pk,
                    torch_release_id=cell["torch_release"].pk,
                    variant_id=world.variant.pk,
                    platform_id=world.platform.pk,
                    python="",
                    pinned_build_id=None,
                    extra_specs=(),
                    reason="no PyTorch record",
                )
            ]
        )
    elif operation == "waive":
        failing = CellResult.objects.filter(verdict__in=[Verdict.FAILED, Verdict.TIMEOUT]).first()
        axes = failing and {
            "torch_release": failing.torch_release,
            "variant": failing.variant,
            "platform": failing.platform,
        }
        if (
            failing
            and not Waiver.objects.filter(
                build=failing.build, revoked_at__isnull=True, **axes
            ).exists()
        ):
            grant_waiver(
                build=failing.build, created_by=world.user, reason="known upstream bug", **axes
            )
    elif operation == "revoke":
        waiver = Waiver.objects.filter(revoked_at__isnull=True).first()
        if waiver is not None:
            revoke_waiver(waiver=waiver, revoked_by=world.user)
    elif operation == "retry":
        job = Job.objects.filter(status=Job.Status.FINISHED).order_by("-pk").first()
        if (
            job is not None
            and not Job.objects.filter(
                status__in=[Job.Status.QUEUED, Job.Status.RUNNING],
                build=job.build,
                torch_release=job.torch_release,
            ).exists()
        ):
            retry_job(job=job, requested_by=world.user)
    elif operation == "delete_build":
        # Jobs go with their build (cascade), and so do its cells: both counts must follow.
        build = world.builds[a % len(world.builds)]
        Build.objects.filter(pk=build.pk).delete()
        world.builds[a % len(world.builds)] = factories.BuildFactory(
            name=build.name, version=build.version, package=build.package
        )
    elif operation == "delete_host":
        # Jobs keep their counts but lose their host (SET_NULL): the count moves to "no host".
        host = world.hosts[a % len(world.hosts)]
        if Host.objects.filter(pk=host.pk).exists():
            Host.objects.filter(pk=host.pk).delete()


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_rollups_equal_the_recomputed_counts_after_every_step(seed, settings):
    settings.MANUAL_RETRY_LIMIT_PER_HOUR = 10**6
    # Each example starts from empty tables (the transaction of the test is shared, so clear).
    Job.objects.all().delete()
    CellResult.objects.all().delete()
    Build.objects.all().delete()
    Host.objects.all().delete()
    Waiver.objects.all().delete()
    world = World()
    assert_rollups_exact("empty")
    steps = draw_steps(random.Random(seed))
    for index, step in enumerate(steps):
        apply_step(world, *step)
        assert_rollups_exact(f"after step {index} of {steps}")


@pytest.mark.django_db
def test_a_finished_job_counts_on_its_utc_day_and_host_and_a_cell_on_its_version(cpu_cell):
    host = factories.HostFactory(platform=cpu_cell["platform"], gpus=[], max_cuda="")
    worker = WorkerProcess.objects.create(host=host, name="h.cpu", queues=["test.linux-64.cpu"])
    build = factories.BuildFactory(version="3.1", package=factories.PackageFactory(name="gamma"))
    [job] = enqueue_jobs(
        run=factories.RunFactory(), jobs=[Job(kind="test", build=build, **cpu_cell)]
    )
    assert list(PackageVerdictCount.objects.values_list("version", "verdict", "cells")) == [
        ("3.1", "queued", 1)
    ]
    start_job(job_id=job.pk, worker=worker)
    finish_job(job_id=job.pk, outcome=JobOutcome(verdict=Verdict.FAILED))
    assert list(PackageVerdictCount.objects.values_list("version", "verdict", "cells")) == [
        ("3.1", "failed", 1)
    ]
    assert list(JobDayCount.objects.values_list("day", "host_id", "kind", "verdict", "jobs")) == [
        (timezone.now().astimezone(UTC).date(), host.pk, "test", "failed", 1)
    ]


MATRIX_VERDICTS = ["passed", "passed", "failed", "uninstallable", "timeout", "error", "queued"]


@pytest.mark.django_db
def test_matrix_orders_and_filters_the_same_from_the_counts_as_from_the_cells():
    """Every status x sort of the matrix gives the same rows, problem counts and cells whether
    it reads the per-package counts or groups CellResult (the path the filters by platform or
    variant still take)."""
    axes = make_axes()
    rng = random.Random(16)
    for index in range(12):
        package = make_package(f"pkg-{index:02d}", axes, version="2.0")
        for version in ("1.0", "2.0"):  # the old version's cells must never count
            for platform in axes.platforms:
                build = make_build(package, axes, version=version, subdir=platform.subdir)
                for release in axes.releases:
                    for variant in axes.variants:
                        if rng.random() < 0.8:
                            record_cell(
                                build=build,
                                release=release,
                                variant=variant,
                                platform=platform,
                                verdicts=[rng.choice(MATRIX_VERDICTS)],
                            )
    make_package("never-tested", axes, version="2.0")
    all_passed = make_package("all-passed", axes, version="2.0")
    fill_package(all_passed, axes, verdict="passed")
    # Some cells waived, through QuerySet.update as the waiver service does.
    cell_ids = sorted(CellResult.objects.values_list("pk", flat=True))
    CellResult.objects.filter(pk__in=rng.sample(cell_ids, 20)).update(verdict=Verdict.WAIVED)
    # One release no longer supported: its cells leave both the counts' and the cells' scope.
    type(axes.releases[0]).objects.filter(pk=axes.releases[0].pk).update(supported=False)

    def page(filters: MatrixFilters, *, from_counts: bool):
        with mock.patch("testing_app.selectors.matrix._counts_apply", return_value=from_counts):
            matrix = get_results_matrix(filters=filters, per_page=200)
            rows = list_matrix_packages(filters, [c.pk for c in matrix.columns])
            totals = [getattr(p, "problem_count", None) for p in rows]
        return [(r.package.name, r.cells) for r in matrix.rows], totals

    checked = 0
    for status in ["", "failing", "in_flight", "passing", "untested"]:
        for sort in ["name", "-name", "failing"]:
            filters = MatrixFilters(status=status, sort=sort)
            assert page(filters, from_counts=True) == page(filters, from_counts=False), filters
            checked += len(page(filters, from_counts=True)[0])
    assert checked > 50  # the scenario has rows in most combinations


@pytest.mark.django_db
def test_host_and_trend_days_equal_the_jobs_they_count(settings):
    """The hosts page's and the trends page's daily figures, read from JobDayCount, equal the
    same figures grouped from the jobs, over a window edge and jobs without a host."""
    axes = make_axes()
    package = make_package("kornia", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    hosts = [factories.HostFactory(name=f"host-{n}") for n in range(3)]
    rng = random.Random(9)
    now = timezone.now()
    jobs = []
    for _ in range(120):
        finished = now - timedelta(days=rng.uniform(0, 35))
        jobs.append(
            factories.JobFactory(
                build=build,
                torch_release=axes.releases[0],
                variant=axes.variants[0],
                platform=axes.platforms[0],
                kind=rng.choice(["test", "test", "install_check"]),
                host=rng.choice([*hosts, None]),
                status="finished",
                verdict=rng.choice(FINISH_VERDICTS),
                finished_at=finished,
            )
        )
    assert_rollups_exact("jobs written")
    first_host_day = now.date() - timedelta(days=STATS_DAYS - 1)
    expected_hosts: Counter = Counter()
    expected_problems: Counter = Counter()
    for job in jobs:
        day = job.finished_at.astimezone(UTC).date()
        if job.host is not None and day >= first_host_day:
            expected_hosts[(job.host.name, day)] += 1
            expected_problems[(job.host.name, day)] += job.verdict in PROBLEM_VERDICTS
    stats = get_host_daily_stats(days=STATS_DAYS)
    assert {(s.host, s.day): s.jobs for s in stats} == dict(expected_hosts)
    assert {(s.host, s.day): s.problems for s in stats} == dict(expected_problems)

    first_trend_day = now.date() - timedelta(days=TREND_DAYS - 1)
    expected_trend: dict = {}
    for job in jobs:
        day = job.finished_at.astimezone(UTC).date()
        if job.kind == "test" and day >= first_trend_day:
            counts = expected_trend.setdefault(day, Counter())
            counts[job.verdict] += 1
    for package_name in ("", "kornia"):  # all packages: the counts; one package: its jobs
        days = get_daily_verdicts(package_name=package_name)
        assert {d.day: d.counts for d in days} == {
            day: dict(counts) for day, counts in expected_trend.items()
        }, package_name
