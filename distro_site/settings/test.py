"""Test settings: the real PostgreSQL and Redis of the machine, a dedicated Redis database."""

import os
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conda_distro")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")


def _per_worker_redis_url(url: str, worker: str, dbs: str) -> str:
    """The Redis database of one pytest-xdist worker ("gw<N>"): the N-th of TEST_REDIS_DBS
    (a comma-separated list) when set, else REDIS_URL's database minus N. Each worker flushes
    its database before and after every test, so two workers must never share one; Redis has
    16 databases (0-15), so `make test` runs at most 4 workers (15, 14, 13, 12 by default)."""
    index = int(worker.removeprefix("gw"))
    parts = urlsplit(url)
    if dbs:
        choices = [int(d) for d in dbs.split(",") if d.strip()]
        if index >= len(choices):
            raise RuntimeError(f"TEST_REDIS_DBS={dbs!r} has no database for xdist worker {worker}")
        number = choices[index]
    else:
        number = int(parts.path.strip("/") or 0) - index
    if number < 0:
        raise RuntimeError(f"no Redis database for xdist worker {worker} below {url}: use fewer -n")
    return urlunsplit(parts._replace(path=f"/{number}"))


# pytest-xdist runs tests in processes gw0, gw1, ...: pytest-django gives each its own test
# database (test_<name>_gw<N>), and this gives each its own Redis database. The chosen URL is
# written back to the environment (and marked done), so that the worker subprocesses a test
# starts, which inherit it, use it as it is and never derive a second time.
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("TEST_REDIS_PER_WORKER"):
    os.environ["REDIS_URL"] = _per_worker_redis_url(
        os.environ["REDIS_URL"],
        os.environ["PYTEST_XDIST_WORKER"],
        os.environ.get("TEST_REDIS_DBS", ""),
    )
    os.environ["TEST_REDIS_PER_WORKER"] = "1"

from .base import *  # noqa: E402,F403
from .base import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise RuntimeError("Tests run on PostgreSQL only; set DATABASE_URL to a postgres:// URL.")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests read pages right after changing the data; the page cache's own tests turn it on.
PAGE_CACHE_SECONDS = 0
