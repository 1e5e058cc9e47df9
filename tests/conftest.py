"""Shared fixtures: real PostgreSQL (pytest-django) and a dedicated, flushed Redis database."""

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings


def pytest_sessionstart(session):
    # Refuse to run against a Redis database that holds someone else's data (django-rq's rule).
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = client.dbsize()
    except redis.ConnectionError as exc:
        pytest.exit(f"Redis at {settings.REDIS_URL} is not reachable: {exc}", returncode=3)
    if keys and not settings.REDIS_URL.endswith(("/13", "/14", "/15")):
        pytest.exit(f"Redis database {settings.REDIS_URL} is not empty; refusing to flush it")


@pytest.fixture(scope="session", autouse=True)
def _sample_build_cache(tmp_path_factory):
    """The sample packages rattler-build makes (tests/testing_app/planning_world.py), kept by
    recipe hash and rattler-build version for the whole session: built once, not once per test
    (pytest's cache provider is off in this project, so the cache lives as long as the run)."""
    with override_settings(SAMPLE_BUILD_CACHE_DIR=tmp_path_factory.mktemp("sample-builds")):
        yield


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
