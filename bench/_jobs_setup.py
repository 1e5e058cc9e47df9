"""Shared setup of the job benchmarks: PostgreSQL and a Redis database of their own, and the
few reference rows a cell needs. Imported by bench/jobs_enqueue.py and bench/jobs_lifecycle.py.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.parse import urlunparse

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


def configure_environment() -> None:
    """Point Django at the benchmark database and Redis; refuse anything but PostgreSQL."""
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlparse(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgres:// URL, not {database_url!r}")
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(BASE_DIR))
    _ensure_database(database_url)

    import django

    django.setup()

    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _ensure_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunparse(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def require_empty_redis() -> None:
    """The benchmarks write many keys: only into a Redis database nobody else uses."""
    import redis
    from django.conf import settings

    if redis.Redis.from_url(settings.REDIS_URL).dbsize():
        sys.exit(f"Redis database {settings.REDIS_URL} is not empty; set REDIS_URL to an empty one")


def flush_redis() -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def cell_axes(subdir: str = "linux-64") -> dict:
    """Platform, cpu variant, PyTorch release and a build to hang benchmark jobs on."""
    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import TorchRelease
    from testing_app.models import Platform
    from testing_app.models import Variant

    platform, _ = Platform.objects.get_or_create(
        subdir=subdir, defaults={"os_name": subdir.split("-")[0], "arch": subdir.split("-")[1]}
    )
    variant, _ = Variant.objects.get_or_create(name="cpu", defaults={"kind": "cpu"})
    release, _ = TorchRelease.objects.get_or_create(version="2.5.1")
    channel, _ = Channel.objects.get_or_create(
        name="bench-staging", label="", defaults={"url": "file:///nonexistent", "role": "staging"}
    )
    build, _ = Build.objects.get_or_create(
        channel=channel,
        subdir="noarch",
        filename="benchpkg-1.0-0.conda",
        defaults={"name": "benchpkg", "version": "1.0", "build_string": "0", "record_digest": "b"},
    )
    return {"platform": platform, "variant": variant, "torch_release": release, "build": build}
