"""Benchmark: release impact, the release wave page, the lint and the maintenance policy at the
catalog scale of DESIGN.md s7 (2,000 packages x 20 builds).

Run as `.venv/bin/python bench/release_health.py [--requests N]`. It prints figures beside the
targets and asserts nothing. DATABASE_URL (postgres:// only) defaults to
postgres://postgres@127.0.0.1:5432/conda_distro_health; the database is dropped, recreated and
migrated on every run, then filled with 2,000 packages (500 maintainers, 2 each), 40,000 builds
(4 builds of the latest version per package, PyTorch specs drawn from real shapes) and, after
the release is registered, 32,000 CellResults of it (the 4 latest builds of every package x 2
variants x 2 platforms), then `ANALYZE`d as autovacuum would. The release page is timed
against the computation before issue 16 (`release_follow_before.py`) in the same run:
requests alternate between the two, and the two pages' HTML must be equal (but for the
chart's random element id). Its floor is the SQL the page runs, re-run with a bare cursor.
Mail goes to Django's in-memory backend; Redis is not needed (the immediate notices' jobs
are enqueued after commit, which the benchmark does not wait for).
"""

import argparse
import datetime
import os
import random
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.parse import urlunparse

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_health"
PACKAGES, BUILDS_PER_PACKAGE, LATEST_BUILDS, MAINTAINERS = 2000, 20, 4, 500
# PyTorch specs as they occur in real channels (see docs/lint.md), by weight.
SPECS = [
    ("pytorch >=2.4,<2.7", 6),
    ("pytorch >=2.0,<2.6", 4),
    ("pytorch 2.5.*", 3),
    ("pytorch ==2.5.1", 2),
    ("pytorch >=1.10", 2),
    ("pytorch", 1),
    ("pytorch >=2.4,<=2.5.0", 1),
]
TARGETS = {"register": 10.0, "wave page": 0.3, "lint per build": 0.001, "policy": 60.0}


def configure_environment() -> str:
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlparse(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgres:// URL, not {database_url!r}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("EMAIL_URL", "consolemail://")
    os.environ.setdefault(
        "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
    sys.path.insert(0, str(BASE_DIR))
    return database_url


def fresh_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunparse(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def generate() -> dict:
    """The catalog: packages with maintainers, 20 builds each (4 of the latest version)."""
    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import Maintainer
    from packages_app.models import Package
    from testing_app.models import Platform
    from testing_app.models import Variant

    rng = random.Random(8)
    specs = [s for s, weight in SPECS for _ in range(weight)]
    channel = Channel.objects.create(name="staging", url="https://conda.example.org/s")
    maintainers = Maintainer.objects.bulk_create(
        Maintainer(name=f"M{i}", email=f"m{i}@example.org", notify_mode="daily")
        for i in range(MAINTAINERS)
    )
    packages = Package.objects.bulk_create(
        Package(name=f"pkg{i:04d}", latest_version="1.19") for i in range(PACKAGES)
    )
    through = Package.maintainers.through
    through.objects.bulk_create(
        through(package_id=p.pk, maintainer_id=maintainers[(i * 2 + k) % MAINTAINERS].pk)
        for i, p in enumerate(packages)
        for k in range(2)
    )
    builds = []
    for package in packages:
        spec = rng.choice(specs)
        for b in range(BUILDS_PER_PACKAGE):
            version = "1.19" if b < LATEST_BUILDS else f"1.{b % 19}"
            name = f"{package.name}-{version}-py3{b}_0.conda"
            builds.append(
                Build(
                    channel=channel,
                    package=package,
                    name=package.name,
                    version=version,
                    build_string=f"py3{b}_0",
                    subdir="linux-64",
                    filename=name,
                    depends=["python >=3.10,<3.13", spec, "numpy >=1.21,<3"],
                    depends_names=["numpy", "python", "pytorch"],
                    record_digest=name,
                )
            )
    Build.objects.bulk_create(builds, batch_size=5000)
    variants = [
        Variant.objects.create(name=n, kind="cpu" if n == "cpu" else "cuda")
        for n in ("cpu", "cuda12.4")
    ]
    platforms = [
        Platform.objects.create(subdir=s, os_name="linux", arch=s)
        for s in ("linux-64", "linux-aarch64")
    ]
    return {"variants": variants, "platforms": platforms}


def fill_cells(release, axes) -> int:
    """The release's cells of every latest build: passed, with ~10% failing and ~10% running."""
    from django.db.models import F

    from packages_app.models import Build
    from testing_app.models import CellResult
    from testing_app.models import ReleaseImpact

    rng = random.Random(9)
    excluded = set(
        ReleaseImpact.objects.filter(torch_release=release, category="excludes").values_list(
            "package_id", flat=True
        )
    )
    latest = Build.objects.filter(version=F("package__latest_version")).values_list(
        "pk", "package_id"
    )
    cells = [
        CellResult(
            build_id=build_id,
            package_id=package_id,
            torch_release=release,
            variant=variant,
            platform=platform,
            # As the planner leaves them: cells a bound excludes are not_applicable.
            verdict="not_applicable"
            if package_id in excluded
            else rng.choices(["passed", "failed", "running"], weights=[8, 1, 1])[0],
        )
        for build_id, package_id in latest
        for variant in axes["variants"]
        for platform in axes["platforms"]
    ]
    CellResult.objects.bulk_create(cells, batch_size=5000)
    return len(cells)


def p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def time_release_page(url: str, requests: int) -> None:
    """The page with the current selector and with the one before, alternating; the SQL it
    runs, bare; and whether both give the same HTML."""
    import release_follow_before
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from testing_app.views import releases as views

    current = views.get_release_follow
    client = Client()
    selectors = {"current": current, "before": release_follow_before.get_release_follow}
    times: dict[str, list[float]] = {name: [] for name in selectors}
    pages = {}
    for name, selector in selectors.items():  # warm up
        views.get_release_follow = selector
        # The chart's element id is random per response.
        pages[name] = re.sub(rb"figure-[0-9a-f]{32}", b"figure-", client.get(url).content)
    for _ in range(requests):
        for name, selector in selectors.items():
            views.get_release_follow = selector
            times[name].append(timed(lambda: client.get(url))[0])
    counted = {}
    for name, selector in selectors.items():
        views.get_release_follow = selector
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        counted[name] = list(captured)
    views.get_release_follow = current
    floor = []
    with connection.cursor() as cursor:
        for _ in range(min(requests, 10)):
            start = time.perf_counter()
            for query in counted["current"]:
                cursor.execute(query["sql"])
                if cursor.description:
                    cursor.fetchall()
            floor.append(time.perf_counter() - start)
    now, before = p50(times["current"]), p50(times["before"])
    print(
        f"release page {url}: p50 {now * 1000:.0f} ms (max {max(times['current']) * 1000:.0f} "
        f"ms), {len(counted['current'])} queries, {len(pages['current']) // 1024} KiB   "
        f"target p50 <= {TARGETS['wave page'] * 1000:.0f} ms"
    )
    print(
        f"  before (same run, alternating): p50 {before * 1000:.0f} ms, "
        f"{len(counted['before'])} queries; ratio {now / before:.2f}; same HTML: "
        f"{pages['current'] == pages['before']}"
    )
    print(
        f"  floor (the page's {len(counted['current'])} statements, bare cursor): "
        f"p50 {p50(floor) * 1000:.0f} ms; page / floor {now / p50(floor):.1f}"
    )


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    database_url = configure_environment()
    fresh_database(database_url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    call_command("migrate", verbosity=0)
    seconds, axes = timed(generate)
    print(
        f"generated {PACKAGES} packages, {PACKAGES * BUILDS_PER_PACKAGE} builds in {seconds:.1f} s"
    )

    from packages_app.models import Build
    from packages_app.models import TorchRelease
    from packages_app.selectors.lint_report import summarize_lint
    from testing_app.models import Notification
    from testing_app.selectors.releases import get_release_follow
    from testing_app.services.maintenance import apply_maintenance_policy
    from testing_app.services.releases import record_release_impact

    builds = Build.objects.select_related("package").order_by("pk")
    seconds, summary = timed(lambda: summarize_lint(builds.iterator(chunk_size=5000)))
    per_build = seconds / summary.builds
    print(
        f"lint of {summary.builds} builds: {seconds:.2f} s ({per_build * 1e6:.0f} us/build; "
        f"{summary.with_errors} with errors)   "
        f"target < {TARGETS['lint per build'] * 1e6:.0f} us/build"
    )
    # The impact part of registering (the planner's wave is the planning benchmark's subject,
    # and would enqueue thousands of jobs into REDIS_URL).
    release = TorchRelease.objects.create(version="2.7.0", kind="final", supported=True)
    release.variants.set(axes["variants"])
    release.platforms.set(axes["platforms"])
    with CaptureQueriesContext(connection) as captured:
        seconds, impacts = timed(lambda: record_release_impact(release=release))
    notices = Notification.objects.count()
    print(
        f"record the impact of PyTorch 2.7.0: {seconds:.2f} s, {len(captured)} queries, "
        f"{len(impacts)} packages, {notices} bump-needed notices   "
        f"target < {TARGETS['register']:.0f} s"
    )
    seconds, cells = timed(lambda: fill_cells(release, axes))
    print(f"{cells} cells of the release written in {seconds:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    import release_follow_before

    selector_times = {"current": [], "before": []}
    for _ in range(5):
        seconds, follow = timed(lambda: get_release_follow(release))
        selector_times["current"].append(seconds)
        seconds, _ = timed(lambda: release_follow_before.get_release_follow(release))
        selector_times["before"].append(seconds)
    print(
        f"wave selector: p50 {p50(selector_times['current']) * 1000:.0f} ms (before: "
        f"{p50(selector_times['before']) * 1000:.0f} ms) for {len(follow.rows)} packages "
        f"{follow.by_state}"
    )
    time_release_page(f"/releases/{release.version}/", args.requests)
    release.released_on = datetime.date(2020, 1, 1)  # long past: the grace period is over
    release.save()
    with CaptureQueriesContext(connection) as captured:
        seconds, report = timed(apply_maintenance_policy)
    print(
        f"maintenance policy: {seconds:.2f} s, {len(captured)} queries, "
        f"{len(report.at_risk)} packages at risk   target < {TARGETS['policy']:.0f} s"
    )


if __name__ == "__main__":
    main()
