"""Benchmark: the matrix page, the matrix API and a package page at the scale of DESIGN.md s7.

Run as `.venv/bin/python bench/matrix_scale.py [--generate] [--requests N]`. It prints figures
beside the targets and asserts nothing.

- DATABASE_URL (postgres:// only) defaults to postgres://postgres@127.0.0.1:5432/conda_distro_scale;
  the database is created if missing and its schema built from the current models (the same
  tables and indexes the migrations create).
- `--generate` (implied when the database is new) drops and recreates the database, then fills
  it with 2,000 packages, 40,000 builds, 480,000 CellResult and 5,000,000 Job rows
  (bench/matrix_scale_data.py) and prints how long each step took.
- Server time is measured around Django's test Client (URL routing, views, selectors, template
  or JSON rendering, middleware), SQL queries are counted in a separate request, and the "floor"
  of a page is the one SQL statement that fetches what it shows (built by the page's own
  selector), executed with a bare cursor; the ratio is the page's p50 over the floor's.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.parse import urlunparse

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_scale"
TARGETS = {
    "matrix page": (150, 15),
    "matrix page, failing only, most problems first": (150, 15),
    "package page": (100, 15),
    "matrix API": (150, 15),
    "hosts page": (150, 15),
    "trends page (30 days of jobs)": (150, 15),
}


def configure_environment() -> str:
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlparse(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgres:// URL, not {database_url!r}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    # Every timed request renders its page: a copy from the page cache would time the cache.
    os.environ.setdefault("PAGE_CACHE_SECONDS", "0")
    os.environ.setdefault(
        "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
    sys.path.insert(0, str(BASE_DIR))
    return database_url


def ensure_database(database_url: str, *, fresh: bool) -> bool:
    """Create the database if missing (or drop and recreate it when `fresh`); True if new."""
    import psycopg
    from psycopg import sql

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunparse(parts._replace(path="/postgres")), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    return not exists


def build_schema(*, with_triggers: bool = True) -> None:
    """Tables from the current models (syncdb without migration files)."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)
    if with_triggers:
        install_rollup_triggers()


def install_rollup_triggers() -> None:
    """The rollups' triggers (and their backfill) and the builds' subdir revision triggers,
    which only the migrations create: syncdb builds tables, not triggers. Run once per database
    (and again after --generate)."""
    import importlib

    from django.db import connection
    from django.db import transaction

    # Found by their names, not their numbers: the numbers change when branches merge.
    root = Path(__file__).resolve().parent.parent
    groups = (
        ("testing_app", "rollups", "testing_app_count_cells_insert"),
        ("packages_app", "subdir_revisions", "packages_app_build_revision_insert"),
    )
    statements = []
    for app, suffix, trigger in groups:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", [trigger])
            if cursor.fetchone():
                continue
        module = next((root / app / "migrations").glob(f"*_{suffix}.py")).stem
        statements += importlib.import_module(f"{app}.migrations.{module}").install_sql()
    if not statements:
        return
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    print(f"triggers installed, rollups backfilled in {time.perf_counter() - start:.1f} s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(client, url: str, requests: int) -> tuple[float, float, int, int]:
    """(p50 ms, p95 ms, queries, status) of GET url."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        client.get(url)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return percentile(times, 0.5), percentile(times, 0.95), len(captured), response.status_code


def time_sql(sql: str, params, requests: int) -> tuple[float, float]:
    """(p50 ms, p95 ms) of one SQL statement run with a bare cursor (3 warm-ups)."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for index in range(requests + 3):
            start = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            if index >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 0.5), percentile(times, 0.95)


def floor_queries() -> dict[str, tuple[str, object]]:
    """Per page label, the one SQL statement that fetches what the page shows (its rows),
    built by the page's own selector: the bare-SQL floor a page is compared with."""
    from datetime import timedelta
    from unittest import mock

    from django.db.models import Count
    from django.db.models import Q
    from django.db.models import Sum
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    from testing_app.models import Job
    from testing_app.models import JobDayCount
    from testing_app.selectors.hosts import STATS_DAYS
    from testing_app.selectors.matrix import PROBLEM_VERDICTS
    from testing_app.selectors.matrix import MatrixFilters
    from testing_app.selectors.matrix import _scoped_cells
    from testing_app.selectors.matrix import _scoped_counts
    from testing_app.selectors.matrix import list_matrix_packages
    from testing_app.selectors.matrix import list_supported_releases
    from testing_app.selectors.trends import TREND_DAYS

    def sql(queryset):
        return queryset.query.sql_with_params()

    release_ids = [r.pk for r in list_supported_releases()]
    plain = MatrixFilters()
    first_page = list(list_matrix_packages(plain, release_ids).values_list("pk", flat=True)[:50])
    failing = MatrixFilters(status="failing", sort="failing")
    # The same page's rows as the selector built them before the counts: from CellResult.
    with mock.patch("testing_app.selectors.matrix._counts_apply", return_value=False):
        failing_from_cells = list_matrix_packages(failing, release_ids).values_list("pk", "name")
    today = timezone.now().date()
    since = timezone.now() - timedelta(days=TREND_DAYS)
    return {
        "matrix page": sql(
            _scoped_counts(release_ids)
            .filter(package_id__in=first_page)
            .values_list("package_id", "torch_release_id", "verdict", "cells")
        ),
        "matrix page, failing only, most problems first": sql(
            list_matrix_packages(failing, release_ids).values_list("pk", "name")[:50]
        ),
        "matrix page, linux-64 x cuda12.4, page 20": sql(
            _scoped_cells(MatrixFilters(platform="linux-64", variant="cuda12.4"), release_ids)
            .filter(package_id__in=first_page)
            .order_by()
            .values_list("package_id", "torch_release_id", "verdict")
            .annotate(n=Count("pk"))
        ),
        "hosts page": sql(
            JobDayCount.objects.filter(
                day__gte=today - timedelta(days=STATS_DAYS - 1), host__isnull=False
            )
            .order_by()
            .values_list("host__name", "day")
            .annotate(n=Sum("jobs"), p=Sum("jobs", filter=Q(verdict__in=PROBLEM_VERDICTS)))
        ),
        "trends page (30 days of jobs)": sql(
            JobDayCount.objects.filter(day__gte=today - timedelta(days=TREND_DAYS - 1), kind="test")
            .order_by()
            .values_list("day", "verdict")
            .annotate(n=Sum("jobs"))
        ),
        # What the pages grouped on every request before the rollups.
        "  before: failing-only rows from CellResult": sql(failing_from_cells[:50]),
        "  before: hosts page's grouping of 14 days of jobs": sql(
            Job.objects.filter(
                finished_at__gte=timezone.now() - timedelta(days=STATS_DAYS),
                host__isnull=False,
            )
            .annotate(day=TruncDate("finished_at"))
            .order_by()
            .values_list("host__name", "day")
            .annotate(n=Count("pk"))
        ),
        "  before: trends page's grouping of 30 days of jobs": sql(
            Job.objects.filter(finished_at__gte=since, kind="test")
            .annotate(day=TruncDate("finished_at"))
            .order_by()
            .values_list("day", "verdict")
            .annotate(n=Count("pk"))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help="regenerate the data first")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    args = parser.parse_args()
    database_url = configure_environment()
    # Generation always starts from an empty database, so a failed earlier run (which may have
    # left the job table without its indexes) can never skew the figures.
    generate = ensure_database(database_url, fresh=args.generate)

    import django

    django.setup()
    from django.test import Client

    from bench import matrix_scale_data
    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import Maintainer
    from packages_app.models import Package
    from packages_app.models import TorchRelease
    from testing_app.models import CellResult
    from testing_app.models import Host
    from testing_app.models import Job
    from testing_app.models import Platform
    from testing_app.models import Run
    from testing_app.models import Variant

    # Generated rows are counted once afterwards, not statement by statement while written.
    build_schema(with_triggers=not generate)
    models = {
        m.__name__: m
        for m in (
            Platform,
            Variant,
            TorchRelease,
            Channel,
            Maintainer,
            Host,
            Package,
            Build,
            Run,
            Job,
            CellResult,
        )
    }
    if not generate and not Job.objects.exists():
        sys.exit("The benchmark database holds no jobs: run with --generate.")
    if generate:
        from django.db import connection

        print("generating design-scale data:")
        start = time.perf_counter()
        matrix_scale_data.generate(connection, models)
        print(f"  {'total':<52}{time.perf_counter() - start:8.1f} s")
        install_rollup_triggers()
    counts = {name: models[name].objects.count() for name in ("Package", "Build", "CellResult")}
    counts["Job"] = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0
    print("rows: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()) + " (Job: max id)")

    client = Client()
    middle = Package.objects.order_by("name")[counts["Package"] // 2].name
    last_run = Run.objects.order_by("-id").first()
    urls = [
        ("matrix page", "/matrix/"),
        ("matrix page, failing only, most problems first", "/matrix/?status=failing&sort=failing"),
        (
            "matrix page, linux-64 x cuda12.4, page 20",
            "/matrix/?platform=linux-64&variant=cuda12.4&page=20",
        ),
        ("matrix heatmap view", "/matrix/?view=heatmap"),
        ("matrix API", "/api/matrix/"),
        ("matrix API, failing only", "/api/matrix/?status=failing"),
        ("package page", f"/packages/{middle}/"),
        ("run page (2,000 jobs, in flight)", f"/runs/{last_run.pk}/"),
        ("run progress JSON", f"/runs/{last_run.pk}/progress.json"),
        ("jobs API (cursor)", "/api/jobs/"),
        ("badge", f"/badges/{middle}.svg"),
        ("hosts page", "/hosts/"),
        ("trends page (30 days of jobs)", "/trends/"),
    ]
    print()
    print(
        f"{'what':<50}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}{'floor ms':>10}{'ratio':>7}   target"
    )
    floors = {
        label: time_sql(sql, params, args.requests)[0]
        for label, (sql, params) in floor_queries().items()
    }
    for label, url in urls:
        p50, p95, queries, status = measure(client, url, args.requests)
        target = TARGETS.get(label)
        goal = f"p50 <= {target[0]} ms, <= {target[1]} queries" if target else ""
        note = "" if status == 200 else f"   HTTP {status}!"
        floor = floors.get(label)
        versus = f"{floor:>10.1f}{p50 / floor:>7.1f}" if floor else f"{'':>17}"
        print(f"{label:<50}{p50:>9.1f}{p95:>9.1f}{queries:>9}{versus}   {goal}{note}")
    for label, floor in floors.items():
        if label.startswith("  before"):
            print(f"{label:<50}{floor:>9.1f}   (bare SQL)")
    # Where the package page's time goes: its two heaviest selectors on their own.
    from packages_app.selectors.catalog import get_reverse_dependencies
    from packages_app.selectors.catalog import list_versions
    from testing_app.selectors.package_matrix import get_package_matrix

    versions = list_versions(name=middle)
    parts = [
        (
            "  of which: test matrix (get_package_matrix)",
            lambda: get_package_matrix(name=middle, versions=versions),
        ),
        (
            "  of which: reverse deps (get_reverse_dependencies)",
            lambda: get_reverse_dependencies(name=middle),
        ),
    ]
    for label, func in parts:
        times = []
        for index in range(args.requests + 3):
            start = time.perf_counter()
            func()
            if index >= 3:
                times.append((time.perf_counter() - start) * 1000)
        print(f"{label:<50}{percentile(times, 0.5):>9.1f}{percentile(times, 0.95):>9.1f}")


if __name__ == "__main__":
    main()
