"""Fixtures of the promotion tests: a pytest plugin, loaded by the test modules that use it with
`pytest_plugins = ["tests.testing_app.promotion_fixtures"]` (never imported directly)."""

import pytest
from django.contrib.auth.models import Group

from tests import factories
from tests.packages_app.proposal_helpers import restore_migrated_groups
from tests.testing_app.promotion_world import drain
from tests.testing_app.promotion_world import make_world


@pytest.fixture
def promo_settings(settings, tmp_path):
    """Install sets the small world can satisfy, no pauses between retries, private caches."""
    settings.INSTALL_SETS = [["pytorch"]]
    settings.INSTALL_CHECK_CHANNELS = []
    settings.PROMOTION_RETRY_BACKOFF_S = [0, 0]
    settings.PROMOTION_BACKEND = "auto"
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    return settings


@pytest.fixture
def world(db, tmp_path, promo_settings):
    return make_world(tmp_path)


@pytest.fixture
def release_manager(db):
    # A transactional test (browser tests) flushes the groups of the data migration: put them
    # back (idempotent) so that the permissions come from the real group definition.
    restore_migrated_groups()
    user = factories.UserFactory(username="rm")
    user.groups.add(Group.objects.get(name="release managers"))
    return user


@pytest.fixture
def maintainer_user(db):
    return factories.UserFactory(username="maintainer")


@pytest.fixture
def run_checks(django_capture_on_commit_callbacks):
    """Queue the gate's installability checks of `builds` and run them with a real worker."""
    from testing_app.services.installability import request_installability_checks

    def run(builds, *, user=None):
        with django_capture_on_commit_callbacks(execute=True):
            created = request_installability_checks(builds=builds, requested_by=user)
        drain("install")
        return created

    return run
