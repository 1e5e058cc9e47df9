"""Test data for the matrix and dashboards: packages with builds, jobs and CellResults.

Rows are written through the factories exactly as the execution service leaves them (a
finished job carries its verdict; the cell points at its latest job), so the pages are tested
against the shapes the workers produce.
"""

from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from tests import factories

IN_FLIGHT = {"queued", "running"}


@dataclass
class Axes:
    releases: list[TorchRelease]
    variants: list[Variant]
    platforms: list[Platform]
    channel: object = None


def make_axes(
    versions=("2.5.1", "2.10.0", "2.4.1"),
    variants=("cpu", "cuda12.4"),
    platforms=("linux-64", "osx-arm64"),
) -> Axes:
    """Supported releases (given out of order on purpose), variants and platforms."""
    releases = [factories.TorchReleaseFactory(version=v, supported=True) for v in versions]
    variant_rows = [
        factories.VariantFactory(
            name=name,
            kind="cpu" if name == "cpu" else "cuda",
            needs_gpu=name != "cpu",
            sort_order=index,
        )
        for index, name in enumerate(variants)
    ]
    platform_rows = [
        factories.PlatformFactory(subdir=subdir, sort_order=index)
        for index, subdir in enumerate(platforms)
    ]
    channel = factories.ChannelFactory(name="staging")
    return Axes(releases, variant_rows, platform_rows, channel)


def make_package(
    name: str, axes: Axes, *, version: str = "1.0", maintainer=None, status="active"
) -> Package:
    package = factories.PackageFactory(name=name, latest_version=version, status=status)
    if maintainer is not None:
        package.maintainers.add(maintainer)
    return package


def make_build(package: Package, axes: Axes, *, version: str, subdir: str) -> Build:
    return factories.BuildFactory(
        channel=axes.channel,
        package=package,
        name=package.name,
        version=version,
        subdir=subdir,
        build_string=f"py311_{subdir.replace('-', '_')}_0",
        depends=["pytorch >=2.0"],
    )


@dataclass
class CellRecord:
    cell: CellResult
    jobs: list[Job] = field(default_factory=list)


def record_cell(
    *,
    build: Build,
    release: TorchRelease,
    variant: Variant,
    platform: Platform,
    verdicts: list[str],
    run: Run | None = None,
    **job_fields,
) -> CellRecord:
    """Jobs with the given verdicts (oldest first) and the CellResult showing the last one."""
    run = run or factories.RunFactory()
    jobs = []
    start = timezone.now() - timedelta(hours=len(verdicts))
    for index, verdict in enumerate(verdicts):
        in_flight = verdict in IN_FLIGHT
        created = start + timedelta(hours=index)
        job = factories.JobFactory(
            run=run,
            build=build,
            torch_release=release,
            variant=variant,
            platform=platform,
            attempt=index + 1,
            max_attempts=max(3, len(verdicts)),
            status=verdict if in_flight else "finished",
            verdict="" if in_flight else verdict,
            started_at=None if verdict == "queued" else created,
            finished_at=None if in_flight else created + timedelta(minutes=5),
            duration_s=None if in_flight else 300.0 + index,
            **job_fields,
        )
        Job.objects.filter(pk=job.pk).update(created_at=created)
        jobs.append(job)
    cell = CellResult.objects.create(
        build=build,
        package=build.package,
        torch_release=release,
        variant=variant,
        platform=platform,
        python=job_fields.get("python", ""),
        verdict=verdicts[-1],
        previous_verdict=verdicts[-2] if len(verdicts) > 1 else "",
        latest_job=jobs[-1],
    )
    return CellRecord(cell=cell, jobs=jobs)


def fill_package(
    package: Package, axes: Axes, *, verdict: str = "passed", version: str | None = None
) -> list[CellRecord]:
    """Every release x variant x platform of one version gets one job with `verdict`."""
    version = version or package.latest_version
    records = []
    for platform in axes.platforms:
        build = make_build(package, axes, version=version, subdir=platform.subdir)
        for release in axes.releases:
            for variant in axes.variants:
                records.append(
                    record_cell(
                        build=build,
                        release=release,
                        variant=variant,
                        platform=platform,
                        verdicts=[verdict],
                    )
                )
    return records
