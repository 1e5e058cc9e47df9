"""Benchmark: a full-distribution run at design scale, planned, written and enqueued by the real
services (DESIGN.md section 7): 2,000 packages x 10 PyTorch releases x 6 variants x 4
platforms, about 480,000 candidate cells. Target: plan + write + enqueue 100,000 jobs < 60 s.

Run as `.venv/bin/python bench/planning_scale.py [--packages N] [--rounds R]`. Prints figures,
asserts nothing. DATABASE_URL (PostgreSQL; default conda_distro_bench_planning, created when
missing) and REDIS_URL (an empty database, flushed afterwards) as bench/_jobs_setup.py says.

The catalog is generated: every package has one noarch build whose PyTorch bound admits a
window of 4 consecutive releases (so about a fifth of the candidates run), and the upstream
channel holds conda-forge-style PyTorch builds for every release x variant x platform x python,
which is what the planner reads as evidence. Phases are timed separately: loading the catalog,
the planner (pure), the not_applicable upsert, the job COPY + cell upsert, and the Redis push
after the commit.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conda_distro_bench_planning"
)

from _jobs_setup import configure_environment  # noqa: E402
from _jobs_setup import flush_redis  # noqa: E402
from _jobs_setup import require_empty_redis  # noqa: E402

RELEASES = ["2.4.1", "2.5.1", "2.6.0", "2.7.1", "2.8.0", "2.9.1", "2.10.0", "2.11.0", "2.12.1",
            "2.13.0"]  # fmt: skip
CUDA = ["12.6", "12.8", "13.0"]
VARIANTS = ["cpu", *(f"cuda{c}" for c in CUDA), "rocm7.1", "rocm7.2"]
PLATFORMS = ["linux-64", "win-64", "osx-arm64", "linux-aarch64"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]


def generate(packages: int) -> None:
    """Reference rows, an upstream channel of PyTorch builds, a staging channel of packages."""
    from django.db import transaction
    from django.db.models import OuterRef
    from django.db.models import Subquery

    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import Package
    from packages_app.models import TorchRelease
    from testing_app.models import CellResult
    from testing_app.models import Job
    from testing_app.models import Platform
    from testing_app.models import Run
    from testing_app.models import Variant

    with transaction.atomic():
        for model in (CellResult, Job, Run, Build, Package, TorchRelease, Channel):
            model.objects.all().delete()
        platforms = [
            Platform.objects.get_or_create(subdir=s, defaults={"os_name": s.split("-")[0],
                                                               "arch": s.split("-")[1]})[0]
            for s in PLATFORMS
        ]  # fmt: skip
        variants = []
        for name in VARIANTS:
            kind = "cpu" if name == "cpu" else name.rstrip("0123456789.")
            version = name.removeprefix(kind)
            specs = {"cpu": ["pytorch * cpu*"], "cuda": ["pytorch * cuda*",
                     f"cuda-version {version}.*"]}.get(kind, [])  # fmt: skip
            variant, _ = Variant.objects.update_or_create(
                name=name,
                defaults={"kind": kind, "accelerator_version": version,
                          "select_specs": {"conda-forge": specs} if specs else {}},
            )  # fmt: skip
            variants.append(variant)
        for version in RELEASES:
            release = TorchRelease.objects.create(
                version=version, supported=True, python_versions=PYTHONS
            )
            release.variants.set(variants)
            release.platforms.set(platforms)
        upstream = Channel.objects.create(name="bench-forge", url="file:///x", role="upstream")
        staging = Channel.objects.create(name="bench-staging", url="file:///y", role="staging")
        builds = []
        for version in RELEASES:
            for platform in PLATFORMS:
                for python in PYTHONS:
                    tag = f"py{python.replace('.', '')}"
                    for variant in ["cpu", *CUDA]:
                        if variant != "cpu" and platform == "osx-arm64":
                            continue
                        flavour = "cpu" if variant == "cpu" else f"cuda{variant.replace('.', '')}"
                        depends = [f"python {python}.*"]
                        if variant != "cpu":
                            depends.append(f"cuda-version >={variant},<{int(float(variant)) + 1}")
                        name = f"{flavour}_mkl_{tag}_h0_0"
                        builds.append(_build(upstream, "pytorch", version, name, platform, depends))
        for index in range(packages):
            low = index % (len(RELEASES) - 3)
            bound = f"pytorch >={RELEASES[low]},<{RELEASES[low + 3]}.post999"
            builds.append(_build(staging, f"pkg{index:05d}", "1.0", "pyhd8ed1ab_0", "noarch",
                                 ["python >=3.10", bound, "numpy"], noarch="python"))  # fmt: skip
        Build.objects.bulk_create(builds, batch_size=5000)
        Package.objects.bulk_create(
            [Package(name=f"pkg{i:05d}", latest_version="1.0") for i in range(packages)],
            batch_size=5000,
        )
        Build.objects.filter(channel=staging).update(
            package_id=Subquery(Package.objects.filter(name=OuterRef("name")).values("pk")[:1])
        )


def _build(channel, name, version, build, subdir, depends, noarch=""):
    from packages_app.models import Build

    return Build(
        channel=channel, name=name, version=version, build_string=build, subdir=subdir,
        filename=f"{name}-{version}-{build}.conda", depends=depends,
        depends_names=sorted({d.split()[0] for d in depends}), noarch=noarch,
        record_digest="bench",
    )  # fmt: skip


def one_round() -> dict:
    """The steps of services/planning.plan_full_run, each timed; the push after the commit."""
    from django.conf import settings
    from django.db import transaction

    from testing_app.models import CellResult
    from testing_app.models import Job
    from testing_app.models import Run
    from testing_app.planner.engine import Planner
    from testing_app.planner.types import FullRun
    from testing_app.selectors.planning import existing_cells
    from testing_app.selectors.planning import load_catalog
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.planning import _install_check
    from testing_app.services.planning import plan_options
    from testing_app.services.planning import write_not_applicable

    # Every variant on every platform: the design's 2,000 x 10 x 6 x 4 candidates (the default
    # PLAN_VARIANT_SUBDIRS would drop CUDA on macOS and ROCm off linux-64 before planning).
    settings.PLAN_VARIANT_SUBDIRS = {}
    times = {}
    started = time.perf_counter()
    with transaction.atomic():
        mark = time.perf_counter()
        catalog = load_catalog()
        planner = Planner(catalog, plan_options())
        targets, releases = planner.expand(FullRun())
        catalog.existing = existing_cells(build_ids={t.build.id for t in targets})
        times["load catalog"] = time.perf_counter() - mark
        mark = time.perf_counter()
        plan = planner.plan_targets(targets, releases)
        times["plan (pure)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        write_not_applicable(plan.not_applicable)
        times["write not_applicable"] = time.perf_counter() - mark
        mark = time.perf_counter()
        run = Run.objects.create(trigger=Run.Trigger.FULL, trigger_detail="bench")
        jobs = enqueue_jobs(run=run, jobs=[_install_check(c) for c in plan.to_run])
        times["write jobs + cells"] = time.perf_counter() - mark
        mark = time.perf_counter()
    times["commit + push to Redis"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    times["candidates"], times["jobs"] = plan.candidates, len(jobs)
    times["not applicable"] = len(plan.not_applicable)
    CellResult.objects.all().delete()
    Job.objects.all().delete()
    Run.objects.all().delete()
    flush_redis()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_environment()
    require_empty_redis()
    started = time.perf_counter()
    generate(args.packages)
    print(f"generated {args.packages} packages in {time.perf_counter() - started:.1f} s")
    rounds = [one_round() for _ in range(args.rounds)]
    first = rounds[0]
    print(f"candidates {first['candidates']:,}, install-check jobs {first['jobs']:,}, "
          f"not applicable {first['not applicable']:,}")  # fmt: skip
    for key in ("load catalog", "plan (pure)", "write not_applicable", "write jobs + cells",
                "commit + push to Redis", "total"):  # fmt: skip
        values = [r[key] for r in rounds]
        print(f"  {key:<26} median {statistics.median(values):7.2f} s   (min {min(values):.2f})")
    total = statistics.median(r["total"] for r in rounds)
    rows = first["jobs"] + first["not applicable"] + first["jobs"]  # jobs + n/a cells + cells
    write = statistics.median(r["write not_applicable"] + r["write jobs + cells"] for r in rounds)
    print(f"  bulk write: {rows:,} rows in {write:.2f} s = {rows / write:,.0f} rows/s")
    planning = statistics.median(r["plan (pure)"] for r in rounds)
    print(f"  planning rate: {first['candidates'] / planning:,.0f} candidate cells/s")
    print(f"target: plan + write + enqueue 100,000 jobs < 60 s -> {total:.1f} s for "
          f"{first['jobs']:,} jobs")  # fmt: skip


if __name__ == "__main__":
    main()
