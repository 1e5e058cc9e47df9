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
  is the bare SQL of the matrix page's cell aggregate executed with a cursor.
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
TARGETS = {"matrix page": (150, 15), "package page": (100, 15), "matrix API": (150, 15)}


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


def build_schema() -> None:
    """Tables from the current models (syncdb without migration files)."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)


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


def floor_sql(requests: int) -> tuple[float, float]:
    """The matrix page's cell aggregate as bare SQL (page 1, default filters)."""
    from django.db import connection

    from testing_app.selectors.matrix import MatrixFilters
    from testing_app.selectors.matrix import _scoped_cells
    from testing_app.selectors.matrix import list_matrix_packages
    from testing_app.selectors.matrix import list_supported_releases

    filters = MatrixFilters()
    release_ids = [r.pk for r in list_supported_releases()]
    package_ids = list(list_matrix_packages(filters, release_ids).values_list("pk", flat=True)[:50])
    from django.db.models import Count

    query = (
        _scoped_cells(filters, release_ids)
        .filter(package_id__in=package_ids)
        .order_by()
        .values_list("package_id", "torch_release_id", "verdict")
        .annotate(n=Count("pk"))
    )
    sql, params = query.query.sql_with_params()
    times = []
    with connection.cursor() as cursor:
        for index in range(requests + 3):
            start = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            if index >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 0.5), percentile(times, 0.95)


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

    build_schema()
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
    print(f"{'what':<50}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}   target")
    floor50, floor95 = floor_sql(args.requests)
    print(
        f"{'floor: bare SQL of the matrix cell aggregate':<50}{floor50:>9.1f}{floor95:>9.1f}{1:>9}"
    )
    for label, url in urls:
        p50, p95, queries, status = measure(client, url, args.requests)
        target = TARGETS.get(label)
        goal = f"p50 <= {target[0]} ms, <= {target[1]} queries" if target else ""
        note = "" if status == 200 else f"   HTTP {status}!"
        print(f"{label:<50}{p50:>9.1f}{p95:>9.1f}{queries:>9}   {goal}{note}")
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
