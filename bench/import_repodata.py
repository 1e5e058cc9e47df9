"""Benchmark: import the real 2,181-record pytorch snapshot into PostgreSQL, first and repeated.

Run as `.venv/bin/python bench/import_repodata.py`. It prints timings beside the targets and
asserts nothing. DATABASE_URL must be a postgres:// URL; the database is created if missing
(default postgres://postgres@127.0.0.1:5432/conda_distro_bench) and migrated.
"""

import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.parse import urlunparse

BASE_DIR = Path(__file__).resolve().parent.parent
SNAPSHOT = (
    BASE_DIR / "packages_app" / "demo_data" / "channels" / "pytorch-snapshot" / "linux-64"
) / "repodata.json"
CHANNEL_NAME = "bench-pytorch-snapshot"
REPEATS = 5
TARGET_FIRST_S = 3.0
TARGET_REPEATED_S = 1.0
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_bench"


def configure_environment() -> str:
    """Point Django at the benchmark database; refuse anything that is not PostgreSQL."""
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlparse(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgres:// URL, not {database_url!r}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(BASE_DIR))
    return database_url


def ensure_database(database_url: str) -> None:
    """CREATE DATABASE if it does not exist yet (connecting to the server's `postgres` db)."""
    import psycopg
    from psycopg import sql

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    maintenance_url = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    database_url = configure_environment()
    ensure_database(database_url)

    import django

    django.setup()

    from django.core.management import call_command

    from packages_app.adapters.repodata import read_repodata
    from packages_app.management.commands.seed_demo import DEMO_PACKAGES
    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.services.catalog import import_repodata
    from packages_app.services.packages import register_package

    call_command("migrate", verbosity=0)
    channel, _ = Channel.objects.update_or_create(
        name=CHANNEL_NAME,
        label="",
        defaults={"url": SNAPSHOT.parent.parent.as_uri(), "role": Channel.Role.UPSTREAM},
    )
    # Registered packages make the import link builds and recompute latest versions, as in
    # a seeded deployment.
    for name, (summary, abi_coupled) in DEMO_PACKAGES.items():
        register_package(name=name, summary=summary, abi_coupled=abi_coupled)
    Build.objects.filter(channel=channel).delete()

    source = str(SNAPSHOT)
    parse_s = min(timed(lambda: read_repodata(source)) for _ in range(REPEATS))
    reports = []
    first_s = timed(lambda: reports.append(import_repodata(channel=channel, source=source)))
    repeated = [
        timed(lambda: reports.append(import_repodata(channel=channel, source=source)))
        for _ in range(REPEATS)
    ]
    first, last = reports[0], reports[-1]

    print(f"snapshot: {SNAPSHOT.relative_to(BASE_DIR)} ({first.records} records)")
    print(f"database: {urlparse(database_url).path.lstrip('/')}")
    print(f"first import:    created={first.created} updated={first.updated}")
    print(f"repeated import: created={last.created} updated={last.updated}")
    print()
    print(f"{'measure':<34}{'seconds':>10}   target")
    print(f"{'parse only (py-rattler), min':<34}{parse_s:>10.3f}   -")
    print(f"{'first import':<34}{first_s:>10.3f}   < {TARGET_FIRST_S:.0f} s")
    print(
        f"{f'repeated import, min of {REPEATS}':<34}{min(repeated):>10.3f}   "
        f"< {TARGET_REPEATED_S:.0f} s"
    )
    print(
        f"{f'repeated import, median of {REPEATS}':<34}{statistics.median(repeated):>10.3f}   "
        f"< {TARGET_REPEATED_S:.0f} s"
    )


if __name__ == "__main__":
    main()
