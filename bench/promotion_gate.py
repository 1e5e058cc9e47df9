"""Benchmark: the promotion gate over a large queue, one excuses page, the queue page.

Run as `.venv/bin/python bench/promotion_gate.py [--candidates N] [--requests N] [--reuse]
[--only queue,page]`. It prints figures beside the targets and asserts nothing.

DATABASE_URL (postgres:// only) defaults to postgres://postgres@127.0.0.1:5432/conda_distro_bench;
the database is dropped, recreated and its schema built from the current models. The data: N
staged candidates (default 2,000, one per package) in a staging channel, each with 12 required
cells (4 supported PyTorch releases x 3 variants on linux-64) passed except every 10th one
(one failed cell), 2 installability checks, every 4th one with a dependent package whose
re-test pinned to it passed (and a baseline job), plus 200 waivers. It times the gate of the
whole queue (the selector the queue page uses), one build's excuses, and both pages through
Django's test Client, and counts their SQL queries.

`--reuse` keeps the data of an earlier run (no drop, no generation): to compare two versions
of the code on the same data under the same load, run this script from each checkout in turn,
alternating, against one database (bench/README.md shows how).
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix_scale import build_schema  # noqa: E402
from matrix_scale import ensure_database  # noqa: E402
from matrix_scale import percentile  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_bench"
RELEASES = ("2.2.2", "2.3.1", "2.4.1", "2.5.1")
VARIANTS = ("cpu", "cuda11.8", "cuda12.4")


def configure_environment() -> str:
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault(
        "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
    sys.path.insert(0, str(BASE_DIR))
    return database_url


def generate(candidates: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import Maintainer
    from packages_app.models import Package
    from packages_app.models import TorchRelease
    from testing_app.models import CellResult
    from testing_app.models import InstallabilityCheck
    from testing_app.models import Job
    from testing_app.models import Platform
    from testing_app.models import Run
    from testing_app.models import Variant
    from testing_app.models import Waiver

    now = timezone.now()
    linux = Platform.objects.create(subdir="linux-64", os_name="linux", arch="64")
    variants = [
        Variant.objects.create(name=name, kind="cpu" if name == "cpu" else "cuda")
        for name in VARIANTS
    ]
    releases = []
    for version in RELEASES:
        release = TorchRelease.objects.create(version=version, supported=True)
        release.variants.set(variants)
        release.platforms.set([linux])
        releases.append(release)
    staging = Channel.objects.create(name="staging", url="file:///srv/staging", role="staging")
    upstream = Channel.objects.create(name="upstream", url="file:///srv/up", role="upstream")
    target = Channel.objects.create(name="target", url="file:///srv/target", role="target")
    maintainer = Maintainer.objects.create(name="M", email="m@example.org")
    packages = Package.objects.bulk_create(
        Package(name=f"pkg{i:05d}", status="active", latest_version="1.0.0")
        for i in range(candidates)
    )
    Package.maintainers.through.objects.bulk_create(
        Package.maintainers.through(package_id=p.pk, maintainer_id=maintainer.pk) for p in packages
    )

    def build(channel, package, name, depends):
        return Build(
            channel=channel,
            package=package,
            name=name,
            version="1.0.0",
            build_string="py_0",
            subdir="linux-64",
            filename=f"{name}-1.0.0-py_0.conda",
            depends=depends,
            depends_names=sorted({d.split()[0] for d in depends}),
            license="BSD-3-Clause",
            record_digest=name,
            first_seen_at=now,
        )

    staged = Build.objects.bulk_create(
        build(staging, p, p.name, ["pytorch >=2.2,<2.6", "python >=3.10,<3.13"]) for p in packages
    )
    dependents = Package.objects.bulk_create(
        Package(name=f"dep{i:05d}", status="active", latest_version="1.0.0")
        for i in range(0, candidates, 4)
    )
    dependent_builds = Build.objects.bulk_create(
        build(upstream, d, d.name, [f"pkg{i * 4:05d} >=1.0", "pytorch >=2.2,<2.6"])
        for i, d in enumerate(dependents)
    )
    cells = []
    for index, candidate in enumerate(staged):
        for release in releases:
            for variant in variants:
                verdict = "passed"
                if index % 10 == 0 and release is releases[-1] and variant is variants[-1]:
                    verdict = "failed"
                cells.append(
                    CellResult(
                        build=candidate,
                        package_id=candidate.package_id,
                        torch_release=release,
                        variant=variant,
                        platform=linux,
                        verdict=verdict,
                    )
                )
    CellResult.objects.bulk_create(cells, batch_size=5000)
    InstallabilityCheck.objects.bulk_create(
        (
            InstallabilityCheck(
                kind="gate",
                subject_key=f"build:{b.pk}",
                build_ids=[b.pk],
                build=b,
                target_channel=target,
                subdir="linux-64",
                label=label,
                state="done",
                ok=True,
                finished_at=now,
            )
            for b in staged
            for label in ("alone", "pytorch torchvision torchaudio")
        ),
        batch_size=5000,
    )
    run = Run.objects.create(trigger="reverse_dependency")
    jobs = []
    for i, dependent in enumerate(dependent_builds):
        for pinned in (None, staged[i * 4]):
            jobs.append(
                Job(
                    run=run,
                    kind="test",
                    build=dependent,
                    torch_release=releases[-1],
                    variant=variants[0],
                    platform=linux,
                    pinned_build=pinned,
                    status="finished",
                    verdict="passed",
                    queue_name="test.linux-64.cpu",
                    attempt=1 if pinned is None else 2,
                )
            )
    Job.objects.bulk_create(jobs, batch_size=5000)
    user = get_user_model().objects.create(username="rm")
    Waiver.objects.bulk_create(
        Waiver(build=staged[i], policy="lint", reason="bench", created_by=user)
        for i in range(0, min(candidates, 2000), max(1, candidates // 200))
    )


def timed(function, repeats: int) -> tuple[float, float, float, int]:
    """p50 and p95 wall time, p50 of this process's CPU time (which other processes on a busy
    machine disturb far less; the database's own time is not in it), and the query count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    function()  # warm up
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        function()
        times.append((time.perf_counter() - start) * 1000)
        cpu_times.append((time.process_time() - cpu_start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        function()
    if os.environ.get("BENCH_RAW"):  # every time, for pooling alternating runs
        print("raw wall", " ".join(f"{t:.1f}" for t in times))
        print("raw cpu", " ".join(f"{t:.1f}" for t in cpu_times))
    p50, p95, cpu = percentile(times, 0.5), percentile(times, 0.95), percentile(cpu_times, 0.5)
    return p50, p95, cpu, len(captured)


def sql_floor(function):
    """A function that runs, through a raw cursor and fetching every row, the SQL `function`
    runs: what the database and the driver cost without any Python work on the rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        function()
    statements = [query["sql"] for query in captured.captured_queries]

    def run() -> None:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                if cursor.description is not None:
                    cursor.fetchall()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier run")
    parser.add_argument(
        "--only", default="", help="comma-separated rows to time: queue, gate, page, excuses, floor"
    )
    args = parser.parse_args()
    database_url = configure_environment()
    ensure_database(database_url, fresh=not args.reuse)

    import django

    django.setup()
    if not args.reuse:
        build_schema()
        start = time.perf_counter()
        generate(args.candidates)
        print(f"generated {args.candidates} candidates in {time.perf_counter() - start:.1f} s")

    from django.test import Client

    from packages_app.models import Build
    from testing_app.selectors.gate import get_build_gate
    from testing_app.selectors.promotions import get_promotion_queue

    one = Build.objects.filter(channel__role="staging").order_by("pk")[4].pk
    client = Client()
    rows = [
        ("queue", "gate of the whole queue (get_promotion_queue)", get_promotion_queue),
        ("gate", "one build's gate (get_build_gate)", lambda: get_build_gate(one)),
        ("page", "queue page /promotions/", lambda: client.get("/promotions/")),
        (
            "excuses",
            "excuses page /builds/<id>/excuses/",
            lambda: client.get(f"/builds/{one}/excuses/"),
        ),
    ]
    rows.append(("floor", "floor: the queue's queries as bare SQL", sql_floor(get_promotion_queue)))
    wanted = set(filter(None, args.only.split(",")))
    rows = [(label, function) for key, label, function in rows if not wanted or key in wanted]
    queue = get_promotion_queue()
    counts = ", ".join(f"{group.title.lower()} {group.total}" for group in queue.groups)
    print(f"queue: {counts}")
    for label, function in rows:
        p50, p95, cpu, queries = timed(function, args.requests)
        print(
            f"{label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, cpu p50 {cpu:.0f} ms, {queries} queries"
        )


if __name__ == "__main__":
    main()
