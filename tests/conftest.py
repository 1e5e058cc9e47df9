"""Shared fixtures: real PostgreSQL (pytest-django) and a dedicated, flushed Redis database.

Parallel runs (pytest-xdist, `make test` runs `-n 4`): every test must be able to run beside
any other in another process.
- Databases: pytest-django gives each xdist worker its own test database (`_gw<N>` suffix) and
  distro_site/settings/test.py its own Redis database (REDIS_URL's minus N, or the N-th of
  TEST_REDIS_DBS); a subprocess a test starts (distro_worker, manage.py) gets both through its
  environment: pass `connection.settings_dict` and `settings.REDIS_URL` down, never the
  environment's DATABASE_URL (the xdist worker's own URL is derived from it, not equal to it).
- Ports: no fixed port number. A server the test binds itself binds port 0 and reads the port
  back; a server in another process gets `tests.ports.free_port()` (or the `free_port`
  fixture).
- Files: under `tmp_path` (private per test); never a fixed name under var/ or /tmp (the
  browser screenshots under var/screenshots/ have one name per test).
- Order: within pytest-django's order (rolled-back, then transactional, then database-free
  tests), the slowest kinds of test (fault runs, fuzzing, real workers, live servers, the
  browser) come first, so that xdist starts them early, on different workers, and the short
  tests fill the gaps (pytest_collection_modifyitems below).
"""

import os

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from tests import ports

# Redis databases that tests may flush even when they hold keys: the ones `make test` and its
# xdist workers use (15 minus the worker's index), and any listed in TEST_REDIS_DBS.
FLUSHABLE_REDIS_DBS = {12, 13, 14, 15}


def pytest_sessionstart(session):
    # Refuse to run against a Redis database that holds someone else's data (django-rq's rule).
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = client.dbsize()
    except redis.ConnectionError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)
    listed = {int(d) for d in os.environ.get("TEST_REDIS_DBS", "").split(",") if d.strip()}
    if keys and client.connection_pool.connection_kwargs.get("db", 0) not in (
        FLUSHABLE_REDIS_DBS | listed
    ):
        pytest.exit(f"Redis database {settings.REDIS_URL} is not empty; refusing to flush it")


@pytest.fixture(scope="session", autouse=True)
def _sample_build_cache(tmp_path_factory):
    """The sample packages rattler-build makes (tests/testing_app/planning_world.py), kept by
    recipe hash and rattler-build version for the whole session: built once, not once per test
    (pytest's cache provider is off in this project, so the cache lives as long as the run)."""
    with override_settings(SAMPLE_BUILD_CACHE_DIR=tmp_path_factory.mktemp("sample-builds")):
        yield


# Fixtures of the tests that take seconds to minutes: started processes and servers.
SLOW_FIXTURES = {"start_worker", "worker", "live_server", "browser", "page"}


def _database_group(item) -> int:
    """pytest-django's order (Django's): tests in a rolled-back transaction (0) before the
    transactional ones (1), whose flush at the end also empties the rows of data migrations
    (restore_migrated_groups), then tests without a database (2)."""
    marker = item.get_closest_marker("django_db")
    fixtures = set(getattr(item, "fixturenames", ()))
    transactional = bool(
        marker
        and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
        or marker
        and marker.kwargs.get("reset_sequences")
        or {"transactional_db", "live_server"} & fixtures
    )
    if transactional:
        return 1
    return 0 if marker or "db" in fixtures else 2


def _expected_weight(item) -> int:
    if item.get_closest_marker("faults") or item.get_closest_marker("slow"):
        return 0
    if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return 1
    return 2


def pytest_collection_modifyitems(config, items):
    """Within pytest-django's order, the long tests first (a stable sort: otherwise in
    collection order). With `-n`, xdist hands tests out in this order, round robin at first and
    then as workers become free, so the long ones start early, on different workers, and the
    short ones even out the end instead of one long test running alone at the end."""
    items.sort(key=lambda item: (_database_group(item), _expected_weight(item)))


@pytest.fixture
def free_port() -> int:
    """A free TCP port for a server in another process (tests/ports.py)."""
    return ports.free_port()


@pytest.fixture(autouse=True)
def _flush_redis():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _private_storage(tmp_path, settings):
    """Every folder the code writes under VAR_DIR by default, private to the test: tests in
    parallel processes (seed_demo's sample channel, a promotion's target) never share one."""
    settings.VAR_DIR = tmp_path / "var"
    settings.TARGET_CHANNEL_DIR = settings.VAR_DIR / "channels" / "target"
    settings.LOG_DIR = tmp_path / "logs"
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    settings.REPODATA_CACHE_DIR = tmp_path / "repodata-cache"


@pytest.fixture
def reference_data(db):
    """Variants, platforms, PyTorch releases (from the committed CSVs) and the demo channels."""
    call_command("seed_reference", stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.fixture(params=["json-contains", "no-json-contains"])
def json_lookup_modes(request, monkeypatch):
    """Run a test as PostgreSQL answers it, then again without the JSON containment lookup, as
    on SQLite (make demo's database), where distro_site.json_lists falls back to Python."""
    if request.param == "no-json-contains":
        from django.db import connection

        monkeypatch.setattr(connection.features, "supports_json_field_contains", False)
    return request.param
