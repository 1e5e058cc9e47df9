"""The trusted publishers section of a package's CI tokens page (issue 21): its maintainers
register and remove the GitHub workflows trusted to call the "test this build" API."""

import pytest
from django.test import Client

from packages_app.models import TrustedPublisher
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def maintainer_client():
    user = factories.UserFactory(username="kornia-maintainer")
    maintainer = factories.MaintainerFactory(user=user)
    package = factories.PackageFactory(name="kornia")
    package.maintainers.add(maintainer)
    client = Client()
    client.force_login(user)
    client.maintainer = maintainer
    return client


def _register(client, **fields):
    data = {"repository": "kornia/kornia", "workflow": "release.yml", "environment": "", **fields}
    return client.post("/packages/kornia/tokens/publishers/", data)


def test_a_maintainer_registers_a_publisher_and_sees_it_listed(maintainer_client):
    response = _register(
        maintainer_client,
        repository="https://github.com/Kornia/kornia/",
        workflow=".github/workflows/release.yml",
        environment="conda-staging",
    )
    assert response.status_code == 302
    publisher = TrustedPublisher.objects.get()
    assert (publisher.repository, publisher.workflow, publisher.environment) == (
        "Kornia/kornia",
        "release.yml",
        "conda-staging",
    )
    assert publisher.created_by == maintainer_client.maintainer
    page = maintainer_client.get("/packages/kornia/tokens/").content.decode()
    assert "Kornia/kornia" in page
    assert "conda-staging" in page
    assert "Trusted publishing is off on this site" in page  # the default


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"repository": "kornia"}, "repository"),
        ({"repository": "kornia/kornia/extra"}, "repository"),
        ({"repository": "-bad/kornia"}, "repository"),
        ({"workflow": "release"}, "workflow"),
        ({"workflow": "../other/release.yml"}, "workflow"),
    ],
)
def test_malformed_fields_are_refused_with_the_reason(maintainer_client, fields, field):
    response = _register(maintainer_client, **fields)
    assert response.status_code == 400
    assert field in response.context["publisher_form"].errors
    assert not TrustedPublisher.objects.exists()


def test_the_same_workflow_twice_is_refused(maintainer_client):
    assert _register(maintainer_client).status_code == 302
    again = _register(maintainer_client, repository="KORNIA/Kornia", workflow="Release.yml")
    assert again.status_code == 400
    assert "already trusts this workflow" in again.content.decode()
    assert TrustedPublisher.objects.count() == 1


def test_a_maintainer_removes_a_publisher(maintainer_client):
    _register(maintainer_client)
    publisher = TrustedPublisher.objects.get()
    response = maintainer_client.post(f"/packages/kornia/tokens/publishers/{publisher.pk}/remove/")
    assert response.status_code == 302
    assert not TrustedPublisher.objects.exists()


def test_other_people_cannot_register_or_remove(maintainer_client):
    _register(maintainer_client)
    publisher = TrustedPublisher.objects.get()
    stranger = Client()
    stranger.force_login(factories.UserFactory(username="stranger"))
    assert _register(stranger, workflow="other.yml").status_code == 403
    assert (
        stranger.post(f"/packages/kornia/tokens/publishers/{publisher.pk}/remove/").status_code
        == 403
    )
    assert TrustedPublisher.objects.count() == 1


def test_the_page_shows_the_audience_when_trusted_publishing_is_on(maintainer_client, settings):
    settings.TRUSTED_PUBLISHING_ENABLED = True
    settings.TRUSTED_PUBLISHING_AUDIENCE = "https://distro.example.org"
    page = maintainer_client.get("/packages/kornia/tokens/").content.decode()
    assert "https://distro.example.org" in page
    assert "Trusted publishing is off" not in page
